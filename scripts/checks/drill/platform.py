"""The embedded platform every scenario starts from, and the drill's clock.

- ``DrillContext``: the objectives and mechanisms (both scaled), local AWS, a work dir, the
  faults of the current scenario, and the step clock: every step is recorded with wall-clock
  start and end and reported relative to the failure instant.
- ``PgSite``: a PostgreSQL 15 primary archiving through pgBackRest into repo1 and repo2 (two
  directories standing for the primary and the DR region), settings rendered by
  components/pgbackrest_config.py with the declared archive timing scaled, a seeded ``ledger``,
  a full backup, optionally a streaming standby through a physical slot.
- ``wal_commits``: the observer's ground truth. After the failure the drill reads the old
  primary's ``pg_wal`` with ``pg_waldump`` to learn where (LSN) and when each acknowledged
  transaction committed, so every write can be placed exactly against the recovery point.
  Recovery never reads it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from components.objectives import Objectives
from scripts.checks.drill.faults import ScenarioFaults
from scripts.checks.drill.model import ScenarioResult, Step, Write
from scripts.checks.drill.timescale import Mechanisms
from scripts.checks.drill.writers import DbWriter
from scripts.common import DrctlError, progress

STACK = "prod"  # the drill measures against prod's declared objectives and mechanisms
SEED_ROWS = 5000
LOAD_RPO_FACTOR = 1.25  # database write load before the failure, in scaled critical RPOs
WAL_SEGMENT_BYTES = 16 * 1024 * 1024
# The observer reads the old primary's pg_wal after the failure; keep it all (recovery never
# reads it, and the drill's primaries are thrown away).
OBSERVER_SETTINGS = {"wal_keep_size": "1GB"}


class DrillContext:
    """What every scenario gets, and the clock its steps are timed by. Objectives are kept as
    declared; ``scaled_rpo``/``scaled_rto`` and ``mechanisms`` are on the drill's time scale."""

    def __init__(
        self,
        objectives: Objectives,
        declared: Mechanisms,
        time_scale: float,
        aws: Any,
        workdir: Path,
        keep: bool,
    ):
        self.objectives = objectives
        self.declared_mechanisms = declared  # as the stack declares them
        self.mechanisms = declared.scaled(time_scale)  # what the drill runs with
        self.time_scale = time_scale
        self.aws = aws
        self.workdir = workdir
        self.keep = keep
        self.faults = ScenarioFaults("", ())
        self.failure_at: float | None = None
        self.service_back_at: float | None = None
        self.cleanups: list[Callable[[], None]] = []
        self._steps: list[tuple[str, str, float, float]] = []

    # -- per scenario -------------------------------------------------------------------------

    def begin(self, faults: ScenarioFaults) -> None:
        self.faults = faults
        self.failure_at = self.service_back_at = None
        self._steps = []

    def finish(self, result: ScenarioResult) -> None:
        """Steps relative to the failure instant; RTO from it to service back."""
        origin = self.failure_at if self.failure_at is not None else time.time()
        result.steps = [Step(n, p, s - origin, e - origin) for n, p, s, e in self._steps]
        if self.failure_at is not None and self.service_back_at is not None:
            result.rto_s = self.service_back_at - self.failure_at
        self.run_cleanups()

    def run_cleanups(self) -> None:
        """Stop what the current scenario started (servers, threads), newest first."""
        while self.cleanups:
            with contextlib.suppress(Exception):
                self.cleanups.pop()()

    # -- the clock -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, label: str, phase: str) -> Iterator[None]:
        """A timed step: a spinner on stderr while it runs, a line and a record after."""
        started = time.time()
        with progress.status(f"  {label}...", spinner="dots"):
            yield
        self.add_step(label, phase, started, time.time())

    def add_step(self, label: str, phase: str, start: float, end: float) -> None:
        self._steps.append((label, phase, start, end))
        at = "" if self.failure_at is None else f" [dim]t={end - self.failure_at:+.2f} s[/]"
        progress.print(
            f"  [green]✓[/] {label} [dim]{end - start:.2f} s[/]{at}", markup=True, highlight=False
        )

    def mark_failure(self, label: str) -> float:
        """The failure instant: every later figure is measured from here."""
        self.failure_at = time.time()
        self._steps.append((label, "failure", self.failure_at, self.failure_at))
        return self.failure_at

    def service_back(self, at: float) -> None:
        self.service_back_at = at

    # -- scaled objectives and load -------------------------------------------------------------

    @property
    def primary_region(self) -> str:
        return self.objectives.regions.primary

    @property
    def dr_region(self) -> str:
        return self.objectives.regions.dr

    def scaled_rpo(self, data_class: str) -> float:
        return self.objectives.of(data_class).rpo_s / self.time_scale

    def scaled_rto(self, data_class: str) -> float:
        return self.objectives.of(data_class).rto_s / self.time_scale

    @property
    def db_load_s(self) -> float:
        """Long enough that losing everything since the load began exceeds the RPO."""
        return LOAD_RPO_FACTOR * self.scaled_rpo("critical")


class PgSite:
    """A healthy database platform: primary archiving to repo1 and repo2, a full backup, a
    seeded ``ledger``, optionally a streaming standby through a physical slot."""

    def __init__(self, ctx: DrillContext, name: str):
        self.ctx = ctx
        self.dir = ctx.workdir / name
        self.primary: Any = None
        self.standby: Any = None
        self.pgbackrest: Any = None
        self.settings: Any = None
        self.seed: list[Write] = []
        self.backup_done_at: float | None = None

    def repo_dir(self, index: int) -> Path:
        region = self.ctx.primary_region if index == 1 else self.ctx.dr_region
        return self.dir / f"repo{index}-{region}"

    def start(self, *, backups: tuple[int, ...] = (1, 2), standby: bool = False) -> PgSite:
        """WAL always goes to both repos; ``backups`` says which repos get a full backup now."""
        from components.pgbackrest_config import posix_settings, postgres_settings
        from scripts.dataops.pgbackrest import PgBackRest, require_binaries, write_config
        from scripts.local.postgres import LocalCluster, make_postgres_dir

        require_binaries()
        mech = self.ctx.mechanisms
        make_postgres_dir(self.dir, 0o755)
        dirs = {r: str(make_postgres_dir(self.dir / r)) for r in ("spool", "lock", "log")}
        for index in (1, 2):
            make_postgres_dir(self.repo_dir(index))
        self.primary = LocalCluster("primary", base_dir=self.dir)
        self.ctx.cleanups.append(self.stop)
        settings = posix_settings(
            self.ctx.objectives,
            repo1_path=str(self.repo_dir(1)),
            repo2_path=str(self.repo_dir(2)),
            pg_path=str(self.primary.data_dir),
            pg_socket_path=str(self.primary.socket_dir),
            spool_path=dirs["spool"],
            lock_path=dirs["lock"],
            log_path=dirs["log"],
            process_max=2,
        )
        passes = {1: secrets.token_urlsafe(24), 2: secrets.token_urlsafe(24)}
        conf_dir = make_postgres_dir(self.dir / "pgbackrest", 0o755)
        settings = write_config(settings, conf_dir, passes)
        scale_push_timeout(Path(settings.config_path), mech.effective_push_timeout_s)
        pg = postgres_settings(self.ctx.objectives, settings)
        pg["archive_timeout"] = f"{mech.effective_archive_timeout_s}s"
        self.primary.settings.update({**pg, **OBSERVER_SETTINGS})
        self.primary.init()
        self.primary.start()
        # pgBackRest reaches Postgres on the socket named after the port picked at start.
        self.settings = write_config(replace(settings, pg_port=self.primary.port), conf_dir, passes)
        scale_push_timeout(Path(self.settings.config_path), mech.effective_push_timeout_s)
        self.pgbackrest = PgBackRest.from_settings(self.settings)
        self.primary.execute("create database app")
        self.primary.execute(
            "create table ledger (id bigint primary key, payload text not null, "
            "written_at timestamptz not null default clock_timestamp())",
            dbname="app",
        )
        rows = [(i, secrets.token_hex(12)) for i in range(1, SEED_ROWS + 1)]
        sent = time.time()
        with self.primary.connect("app") as conn, conn.cursor() as cur:
            with cur.copy("copy ledger (id, payload) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
        acked = time.time()
        self.seed = [Write(str(i), p, sent, acked, {"seed": True}) for i, p in rows]
        self.pgbackrest.stanza_create()
        for repo in backups:
            self.pgbackrest.backup("full", repo)
        self.backup_done_at = time.time()
        if standby:
            self.standby = self.primary.create_standby("standby", slot="dr_standby")
            self.standby.wait_for("select pg_last_wal_replay_lsn() is not null")
        return self

    def writer(self, *, reconnect: bool, connect: Callable[[], tuple[Any, str]] | None = None):
        primary = self.primary

        def direct() -> tuple[Any, str]:
            return connect_app(primary.conninfo("app")), "primary"

        return DbWriter(connect or direct, SEED_ROWS + 1, reconnect=reconnect)

    def wal_position(self) -> str:
        return self.primary.scalar("select pg_current_wal_lsn()::text")

    def adopt_restore(self, data_dir: Path, name: str) -> Any:
        """Start a restored copy as a server of this site (stopped with it)."""
        copy = self.primary.adopt(data_dir, name)
        copy.start()
        return copy

    def stop(self) -> None:
        if self.primary is not None:
            with contextlib.suppress(Exception):
                self.primary.cleanup()


def poll(probe: Callable[[], Any], timeout: float, every: float = 0.02) -> Any:
    """The first non-None value ``probe`` returns within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(every)
    return None


def scale_push_timeout(conf: Path, seconds: float) -> None:
    """Scale the WAL push timeout only. The rendered ``archive-timeout`` sits in [global], where
    archive-get (the restore side) reads it too; waiting for a fetch is machine work, not a
    mechanism interval, so the restore keeps the declared patience and only archive-push gets
    the scaled one, in its own section."""
    text = conf.read_text()
    section = "[global:archive-push]\n"
    if section not in text:
        raise DrctlError(f"{conf} has no {section.strip()} section to scale the push timeout in")
    conf.write_text(text.replace(section, f"{section}archive-timeout={seconds:g}\n", 1))


def set_and_reload(cluster: Any, setting: str, value: str) -> None:
    """ALTER SYSTEM on a running server and reload it: how a host's config changes under it."""
    cluster.execute(f"alter system set {setting} = '{value}'")
    cluster.execute("select pg_reload_conf()")


def connect_app(conninfo: str):
    import psycopg

    return psycopg.connect(conninfo, autocommit=True, connect_timeout=3)


def ledger_rows(cluster: Any) -> dict[str, str]:
    """Every row of ``ledger`` as id -> payload; empty when the table is gone."""
    import psycopg

    try:
        rows = cluster.query("select id, payload from ledger", dbname="app")
    except psycopg.errors.UndefinedTable:
        return {}
    return {str(i): p for i, p in rows}


# -- the observer ---------------------------------------------------------------------------------

_COMMIT = re.compile(
    r"len \(rec/tot\):\s*\d+/\s*(?P<len>\d+), tx:\s*(?P<xid>\d+), lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+)"
    r".*desc: COMMIT (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC"
)


def lsn_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def parse_commits(text: str) -> dict[int, tuple[int, dt.datetime]]:
    """pg_waldump lines -> {xid: (end LSN of the commit record, commit time UTC)}."""
    found = {}
    for line in text.splitlines():
        match = _COMMIT.search(line)
        if match:
            end = lsn_int(match.group("lsn")) + int(match.group("len"))
            when = dt.datetime.fromisoformat(match.group("time")).replace(tzinfo=dt.UTC)
            found[int(match.group("xid"))] = (end, when)
    return found


def wal_commits(data_dir: Path, start_lsn: str) -> dict[int, tuple[int, dt.datetime]]:
    """Every commit in ``data_dir``'s pg_wal from ``start_lsn`` to the end of valid WAL."""
    from scripts.local.postgres import PG_BIN, run_as_postgres

    proc = run_as_postgres(
        [PG_BIN / "pg_waldump", "-p", data_dir / "pg_wal", "-s", start_lsn, "-t", "1"]
        + ["-r", "Transaction"],
        check=False,
        env={"TZ": "UTC"},  # pg_waldump prints commit times in its own time zone
        timeout=120,
    )
    # pg_waldump ends with an error at the end of valid WAL (or of the files): expected.
    return parse_commits(proc.stdout)


def commit_of(write: Write, commits: dict[int, tuple[int, dt.datetime]]) -> tuple[int, dt.datetime]:
    xid = write.position.get("xid")
    if xid not in commits:
        raise DrctlError(
            f"observer: the commit of acknowledged write {write.key} (xid {xid}) is not in the "
            "old primary's WAL; the drill cannot place it against the recovery point"
        )
    return commits[xid]


def archived_until(repo: Path, stanza: str = "main") -> int:
    """End LSN of the newest WAL segment a posix repository holds (0 when none)."""
    newest = -1
    for path in (repo / "archive" / stanza).glob("*/*/*"):
        match = re.match(r"^([0-9A-F]{24})-[0-9a-f]{40}", path.name)
        if match:
            name = match.group(1)
            newest = max(newest, int(name[8:16], 16) * 0x100 + int(name[16:24], 16))
    return (newest + 1) * WAL_SEGMENT_BYTES if newest >= 0 else 0


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
