"""Read the files the database hosts receive, so the rules judge what a host runs with.

The PostgresBackup component exports its rendered host files as ``artefacts`` (relative path ->
text): the postgresql.conf fragment, pgbackrest.conf, systemd services and timers, cron.d lines.
The database rules (policy/database.py) and posture's recovery estimates (policy/recovery.py)
take every number they need from these texts, parsed here the way the programs on the host
parse them, never from the component's inputs: a hand edit of a rendered value changes the
verdict.

Standard library only: the CrossGuard pack loads this file standalone from inside policy/.

What is read, and how the host's program reads it:

- postgresql.conf (``postgresql/**.conf``, merged in path order like ``include_dir``; the last
  setting wins): ``name = value``, quotes with '' escapes, ``#`` comments, units ``ms s min h d``
  (archive_timeout's default unit is seconds, 0 turns it off);
- pgbackrest.conf: INI sections; an option of the archive-push command is looked up in
  ``[stanza:archive-push]``, ``[stanza]``, ``[global:archive-push]``, ``[global]``, in that order,
  with pgBackRest's defaults (archive-timeout 60 s, archive-async off, no push queue limit);
- systemd timers (``OnCalendar=``, repeatable) and the services they start, and cron.d lines
  (``m h dom mon dow user command``): expanded into firing times over a whole cycle (a day, a
  week, or four years for month and day-of-month schedules), whose largest gap is what the
  rules use. Gaps are wall-clock gaps in the schedule's own zone (local time unless it names
  one); a daylight-saving change can stretch one of them by an hour a year.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Imported as policy.artefacts by drctl and the tests; loaded standalone by the Pulumi policy host
# from inside policy/ (the same switch as policy/rules.py).
if __package__:
    from .schedules import (  # noqa: F401 (ArtefactError, Schedule: this module's API too)
        ArtefactError,
        Schedule,
        max_gap_s,
        parse_cron,
        parse_on_calendar,
    )
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    from schedules import (  # type: ignore[no-redef]  # noqa: F401
        ArtefactError,
        Schedule,
        max_gap_s,
        parse_cron,
        parse_on_calendar,
    )

PGBACKREST_CONF = "pgbackrest/pgbackrest.conf"
REARM_PREFIX = "rearm/"  # components/pgbackrest_schedule.py REARM_DIR
GOVERNOR_CONFIG = "platform-dr/primary/rpo_governor.json"  # components/pg_host_agents.py
GOVERNOR_UNIT = "systemd/platform-dr-rpo-governor.service"
POSTGRESQL_PREFIX = "postgresql/"
# pgBackRest's own defaults (pgbackrest.org/configuration.html) for the options rules read.
PGBACKREST_DEFAULTS = {"archive-timeout": "60", "archive-async": "n"}
DAY_S, WEEK_S = 86400, 7 * 86400


# ---------------------------------------------------------------------------------------------
# postgresql.conf

_PG_LINE = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*(?:=\s*|\s+)"
    r"(?P<value>'(?:[^'\\]|''|\\.)*'|[^\s#']*)\s*(?:#.*)?$"
)
_PG_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400}
_PG_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")


def parse_postgresql_conf(text: str) -> dict[str, str]:
    """{lowercase name: value} of one postgresql.conf text; later lines win, as in Postgres."""
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PG_LINE.match(line)
        if not match:
            raise ArtefactError(f"postgresql.conf line {number} is not 'name = value': {raw!r}")
        value = match["value"]
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1].replace("''", "'"))
        settings[match["name"].lower()] = value
    return settings


def postgresql_settings(artefacts: Mapping[str, str]) -> dict[str, str]:
    """Every postgresql.conf fragment the host gets, merged in path order (include_dir order)."""
    merged: dict[str, str] = {}
    for path in sorted(p for p in artefacts if p.startswith(POSTGRESQL_PREFIX)):
        if path.endswith(".conf"):
            merged.update(parse_postgresql_conf(artefacts[path]))
    return merged


def pg_duration_s(value: str | None, default_unit: str = "s") -> float | None:
    """'300s', '5min', '300' (default unit) -> seconds; None when absent or not a duration."""
    if value is None:
        return None
    match = _PG_DURATION.match(value)
    if not match:
        return None
    return float(match[1]) * _PG_UNITS[match[2] or default_unit]


# ---------------------------------------------------------------------------------------------
# INI files: pgbackrest.conf and systemd units (a key may repeat: each value is kept)


def parse_ini(text: str, what: str = "file") -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise ArtefactError(f"{what} line {number} is not 'key=value' in a section: {raw!r}")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def pgbackrest_option(
    conf: Mapping[str, Mapping[str, list[str]]], stanza: str, command: str, key: str
) -> str | None:
    """The value pgBackRest uses for ``key`` when running ``command`` for ``stanza``."""
    for section in (f"{stanza}:{command}", stanza, f"global:{command}", "global"):
        values = (conf.get(section) or {}).get(key)
        if values:
            return values[-1]
    return PGBACKREST_DEFAULTS.get(key)


@dataclass(frozen=True)
class PgRepo:
    index: int
    type: str
    region: str | None  # s3 only
    bucket: str | None


def pgbackrest_repos(conf: Mapping[str, Mapping[str, list[str]]], stanza: str) -> list[PgRepo]:
    """The repositories pgbackrest.conf declares (``repoN-type``), in index order."""
    indexes = set()
    for section in conf.values():
        for key in section:
            match = re.fullmatch(r"repo(\d+)-type", key)
            if match:
                indexes.add(int(match[1]))
    repos = []
    for index in sorted(indexes):
        kind = pgbackrest_option(conf, stanza, "archive-push", f"repo{index}-type") or "posix"
        region = pgbackrest_option(conf, stanza, "archive-push", f"repo{index}-s3-region")
        bucket = pgbackrest_option(conf, stanza, "archive-push", f"repo{index}-s3-bucket")
        repos.append(
            PgRepo(index, kind, region if kind == "s3" else None, bucket if kind == "s3" else None)
        )
    return repos


# ---------------------------------------------------------------------------------------------
# WAL archiving as the host runs it


@dataclass
class Archiving:
    """What the primary's archiving does, read from postgresql.conf and pgbackrest.conf.

    archive_timeout_s: Postgres switches to a new WAL segment at least this often (None: off).
    push_timeout_s: pgBackRest archive-push's archive-timeout: how long a push may take before
        it fails and Postgres retries.
    queue_max: archive-push-queue-max, when set (pgBackRest then *drops* WAL past it).
    repos: the repositories every archive-push writes to.
    problems: why the archive does not hold the bound (empty when it does).
    """

    archive_timeout_s: float | None = None
    push_timeout_s: float | None = None
    asynchronous: bool = False
    queue_max: str | None = None
    stanza: str | None = None
    repos: list[PgRepo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def archiving(artefacts: Mapping[str, str]) -> Archiving:
    """Read the archiving the host gets; every reason it cannot hold a bound is a problem."""
    found = Archiving()
    try:
        pg = postgresql_settings(artefacts)
        conf = parse_ini(artefacts.get(PGBACKREST_CONF, ""), PGBACKREST_CONF)
    except ArtefactError as err:
        found.problems.append(str(err))
        return found
    if not any(p.startswith(POSTGRESQL_PREFIX) for p in artefacts):
        found.problems.append("no postgresql.conf fragment is rendered for the host")
        return found
    if PGBACKREST_CONF not in artefacts:
        found.problems.append(f"no {PGBACKREST_CONF} is rendered for the host")
        return found
    if pg.get("archive_mode") not in ("on", "always"):
        found.problems.append(f"archive_mode is {pg.get('archive_mode')!r}, not on")
    if pg.get("wal_level") not in ("replica", "logical"):
        found.problems.append(f"wal_level is {pg.get('wal_level')!r}: WAL cannot be archived")
    timeout = pg_duration_s(pg.get("archive_timeout"))
    if timeout is None or timeout <= 0:
        found.problems.append(
            f"archive_timeout is {pg.get('archive_timeout')!r}: a quiet primary never switches "
            "segments, so nothing bounds how long a write waits to be archived"
        )
    else:
        found.archive_timeout_s = timeout
    command = pg.get("archive_command") or ""
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    if "archive-push" not in argv or "%p" not in argv:
        found.problems.append(f"archive_command does not run pgbackrest archive-push: {command!r}")
        return found
    stanza = next((a.split("=", 1)[1] for a in argv if a.startswith("--stanza=")), None)
    found.stanza = stanza
    if not stanza or stanza not in conf:
        found.problems.append(
            f"archive_command pushes stanza {stanza!r}, which pgbackrest.conf does not declare"
        )
        return found
    push = pgbackrest_option(conf, stanza, "archive-push", "archive-timeout")
    found.push_timeout_s = pg_duration_s(push)
    if found.push_timeout_s is None or found.push_timeout_s <= 0:
        found.problems.append(f"pgBackRest archive-timeout is {push!r}, not a number of seconds")
    found.asynchronous = pgbackrest_option(conf, stanza, "archive-push", "archive-async") == "y"
    found.queue_max = pgbackrest_option(conf, stanza, "archive-push", "archive-push-queue-max")
    if found.queue_max:
        found.problems.append(
            f"archive-push-queue-max={found.queue_max}: past it pgBackRest drops WAL and reports "
            "success, so the archive gets a gap that no restore can cross"
        )
    found.repos = pgbackrest_repos(conf, stanza)
    if not found.repos:
        found.problems.append("pgbackrest.conf declares no repository")
    return found


@dataclass(frozen=True)
class SynchronousStandbys:
    """synchronous_standby_names as Postgres reads it: commits wait for ``count`` of ``names``
    (FIRST: by priority, ANY: quorum). ``text`` is the setting as written."""

    text: str
    count: int = 0
    names: tuple[str, ...] = ()

    def region_safe(self, name: str) -> bool:
        """Does every commit wait for standby ``name``? Only when no other standby can stand in
        for it: it is the only one named, or every named standby is required."""
        return name in self.names and self.count >= len(self.names) and "*" not in self.names


def synchronous_standbys(artefacts: Mapping[str, str]) -> SynchronousStandbys:
    """The standbys a commit waits for; none when synchronous_commit does not wait (off, local)."""
    pg = postgresql_settings(artefacts)
    text = (pg.get("synchronous_standby_names") or "").strip()
    if not text or pg.get("synchronous_commit", "on") in ("off", "local"):
        return SynchronousStandbys(text)
    # 'FIRST 2 (a, b)', 'ANY 1 (a, b)', '2 (a, b)' or a plain list 'a, b' (= FIRST 1).
    match = re.fullmatch(r"(?:(?:FIRST|ANY)\s+)?(\d+)\s*\((.*)\)", text, flags=re.I)
    count, inner = (int(match[1]), match[2]) if match else (1, text)
    names = tuple(n.strip().strip('"') for n in inner.split(",") if n.strip())
    return SynchronousStandbys(text, count, names)


@dataclass(frozen=True)
class RpoGovernor:
    """The rendered RPO governor (components/agents/rpo_governor.py): it switches the primary to
    synchronous commit to ``application_name`` once the standby's replay is ``engage_lag_s``
    behind, checking every ``interval_s``."""

    engage_lag_s: float
    interval_s: float
    application_name: str
    sync_commit: str
    problems: tuple[str, ...] = ()

    @property
    def loss_s(self) -> int:
        """Writes acknowledged before it engages: at most the threshold plus one tick."""
        return int(-(-(self.engage_lag_s + self.interval_s) // 1))


def rpo_governor(artefacts: Mapping[str, str]) -> RpoGovernor | None:
    """The governor the primary's host runs, read from its config and unit; None if neither is
    rendered. A governor whose unit does not restart it, or that does not wait for the standby on
    commit, is returned with problems."""
    import json

    text, unit = artefacts.get(GOVERNOR_CONFIG), artefacts.get(GOVERNOR_UNIT)
    if text is None and unit is None:
        return None
    problems = []
    try:
        conf = json.loads(text or "{}")
    except ValueError as err:
        conf, problems = {}, [f"{GOVERNOR_CONFIG}: not JSON ({err})"]
    if text is None:
        problems.append(f"{GOVERNOR_CONFIG} is not rendered")
    service = (parse_ini(unit, GOVERNOR_UNIT).get("Service") or {}) if unit else {}
    if unit is None:
        problems.append(f"{GOVERNOR_UNIT} is not rendered: nothing runs the governor")
    elif (service.get("Restart") or [""])[-1] != "always":
        problems.append(f"{GOVERNOR_UNIT}: no Restart=always, a crashed governor stays down")
    elif "rpo_governor" not in " ".join(service.get("ExecStart") or []):
        problems.append(f"{GOVERNOR_UNIT}: ExecStart does not run the governor")
    sync_commit = str(conf.get("sync_commit", ""))
    if conf and sync_commit not in ("on", "remote_write", "remote_apply"):
        problems.append(
            f"{GOVERNOR_CONFIG}: sync_commit {sync_commit!r} does not wait for the standby"
        )
    engage, interval = conf.get("engage_lag_s"), conf.get("interval_s")
    if conf and not all(isinstance(v, int | float) and v > 0 for v in (engage, interval)):
        problems.append(f"{GOVERNOR_CONFIG}: engage_lag_s and interval_s must be positive numbers")
        engage, interval = 0, 0
    return RpoGovernor(
        float(engage or 0),
        float(interval or 0),
        str(conf.get("application_name", "")),
        sync_commit,
        tuple(problems),
    )


# ---------------------------------------------------------------------------------------------
# Jobs: what each timer or cron line runs


@dataclass(frozen=True)
class Job:
    """One scheduled job the host runs: its kind, the repositories it writes, its schedule."""

    source: str  # "systemd/pgbackrest-full.timer" or "cron.d/pgbackrest:3"
    kind: str  # backup-full | backup-diff | backup-incr | dump | lag-monitor | other
    schedules: tuple[Schedule, ...]
    repos: frozenset[int] = frozenset()
    every_s: float | None = None  # a monotonic timer (OnUnitActiveSec): runs this often


def job_kind(command: str) -> tuple[str, frozenset[int]]:
    """(kind, pgBackRest repos it backs up to) of a service's or cron line's command."""
    command = command.replace("$$", "$")
    if re.search(r"\bpgbackrest\b.*\bbackup\b", command):
        kind = re.search(r"--type=(full|diff|incr)\b", command)
        loop = re.search(r"for (\w+) in ([\d ]+); do .*--repo=\$\{?\1\b", command)
        literal = re.findall(r"--repo=(\d+)", command)
        if loop:
            repos = frozenset(int(r) for r in loop[2].split())
        elif literal:
            repos = frozenset(int(r) for r in literal)
        else:
            repos = frozenset({1})  # pgBackRest backs up to repo1 unless told otherwise
        # pgBackRest's own default type is incr.
        return f"backup-{kind[1] if kind else 'incr'}", repos
    if "pg_dump" in command:
        return "dump", frozenset()
    if "put-metric-data" in command:
        return "lag-monitor", frozenset()
    return "other", frozenset()


def scheduled_jobs(artefacts: Mapping[str, str]) -> tuple[list[Job], list[str]]:
    """Every timer (with the service it starts) and cron line; unreadable ones are problems."""
    jobs, problems = [], []
    # rearm/ holds what a failover installs on the promoted DR primary, not what runs today.
    timers = (p for p in artefacts if p.endswith(".timer") and not p.startswith(REARM_PREFIX))
    for path in sorted(timers):
        try:
            timer = parse_ini(artefacts[path], path)
            specs = (timer.get("Timer") or {}).get("OnCalendar") or []
            every = (timer.get("Timer") or {}).get("OnUnitActiveSec") or []
            unit = ((timer.get("Timer") or {}).get("Unit") or [None])[-1]
            service_path = f"{path.rsplit('/', 1)[0]}/{unit}" if unit else path[:-6] + ".service"
            service = parse_ini(artefacts.get(service_path, ""), service_path)
            command = " ".join((service.get("Service") or {}).get("ExecStart") or [])
            if not command:
                problems.append(f"{path}: starts {service_path}, which is not rendered")
                continue
            kind, repos = job_kind(command)
            schedules = tuple(parse_on_calendar(s) for s in specs)
            every_s = pg_duration_s(every[-1]) if every else None
            if not schedules and not every_s:
                problems.append(
                    f"{path}: no OnCalendar and no OnUnitActiveSec, the timer never fires"
                )
            jobs.append(Job(path, kind, schedules, repos, every_s))
        except ArtefactError as err:
            problems.append(f"{path}: {err}")
    for path in sorted(p for p in artefacts if p.startswith("cron.d/")):
        for number, line in enumerate(artefacts[path].splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or re.match(r"^[A-Z_]+=", stripped):
                continue
            parts = stripped.split(None, 1 if stripped.startswith("@") else 5)
            try:
                if stripped.startswith("@"):
                    expression, rest = parts[0], parts[1]
                else:
                    expression, rest = " ".join(parts[:5]), parts[5]
                command = rest.split(None, 1)[1]  # cron.d lines name the user first
                kind, repos = job_kind(command)
                jobs.append(Job(f"{path}:{number}", kind, (parse_cron(expression),), repos))
            except (ArtefactError, IndexError) as err:
                problems.append(f"{path} line {number}: {err or 'not a cron.d line'}")
    return jobs, problems


BACKUP_LEVELS = ("full", "diff", "incr")


def backup_gaps(jobs: Iterable[Job], repo: int, via: str) -> dict[str, int | None]:
    """Per level, the longest wait between backups reaching ``repo`` that restore at least that
    level (a full also serves as a diff and an incr), over the jobs from ``via`` ("systemd/" or
    "cron.d/"): {"full": s, "diff": s, "incr": s}, None where no such backup runs."""
    mine = [j for j in jobs if j.source.startswith(via) and repo in j.repos]
    gaps = {}
    for depth, level in enumerate(BACKUP_LEVELS):
        kinds = {f"backup-{k}" for k in BACKUP_LEVELS[: depth + 1]}
        gaps[level] = max_gap_s(s for j in mine if j.kind in kinds for s in j.schedules)
    return gaps
