"""pgBackRest's backup schedule on a database host, from ``objectives.schedule`` (full weekly, diff
daily, incr hourly) as systemd timers or cron lines, and the complete set of non-secret host files
it ships with (``render_all``; ``render_rearm`` for the promoted DR primary). The settings and
pgbackrest.conf themselves come from components/pgbackrest_config.py.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components.objectives import DAY, HOUR, ConfigError, Objectives, format_duration
from components.pgbackrest_config import (
    PgBackRestSettings,
    rearm_settings,
    render_pgbackrest_conf,
    render_postgres_conf,
)


@dataclass(frozen=True)
class BackupJob:
    """One scheduled backup type, as a systemd OnCalendar and a cron expression."""

    type: str  # full | diff | incr
    interval_s: int
    on_calendar: str
    cron: str


_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


# Full and diff start at 01:00 local, incr at half past each hour. pgBackRest runs one backup per
# stanza at a time: an incr that finds a long full still running fails on the lock (and alarms)
# rather than queueing; the next hour's incr catches up.
BACKUP_HOUR = 1


def _job(kind: str, key: str, interval_s: int) -> BackupJob:
    if kind == "full" and interval_s == 7 * DAY:
        return BackupJob(
            kind, interval_s, f"Sun *-*-* 0{BACKUP_HOUR}:00:00", f"0 {BACKUP_HOUR} * * 0"
        )
    if kind == "diff" and interval_s == DAY:
        # Sunday's slot belongs to the full: one backup at a time per stanza.
        return BackupJob(
            kind, interval_s, f"Mon..Sat *-*-* 0{BACKUP_HOUR}:00:00", f"0 {BACKUP_HOUR} * * 1-6"
        )
    if kind == "incr" and interval_s % HOUR == 0 and DAY % interval_s == 0:
        step = interval_s // HOUR
        hours = "*" if step == 1 else f"0/{step}"
        cron_hours = "*" if step == 1 else f"*/{step}"
        return BackupJob(kind, interval_s, f"*-*-* {hours}:30:00", f"30 {cron_hours} * * *")
    allowed = {
        "full": "7d (weekly)",
        "diff": "1d (daily)",
        "incr": "a whole number of hours dividing 24",
    }[kind]
    raise ConfigError(key, format_duration(interval_s), allowed)


def backup_jobs(objectives: Objectives) -> list[BackupJob]:
    """Full weekly, diff daily, incr hourly, from ``objectives.schedule``."""
    sched = objectives.schedule
    return [
        _job("full", "schedule.full_s", sched.full_s),
        _job("diff", "schedule.differential_s", sched.differential_s),
        _job("incr", "schedule.log_backup_s", sched.log_backup_s),
    ]


def _backup_shell(settings: PgBackRestSettings, kind: str, dollar: str) -> str:
    """Back up to every repo in turn; a repo that fails (its region is down) does not stop the
    next one, but the run still exits non-zero so the failure alarms."""
    cmd = shlex.join([*settings.base_command, f"--type={kind}"])
    indexes = " ".join(str(r.index) for r in settings.repos)
    return (
        f"rc=0; for r in {indexes}; do {cmd} --repo={dollar}r backup || rc=1; done; exit {dollar}rc"
    )


def render_systemd_units(objectives: Objectives, settings: PgBackRestSettings) -> dict[str, str]:
    """{unit file name: text}: a oneshot service and a timer per backup type."""
    units: dict[str, str] = {}
    for job in backup_jobs(objectives):
        name = f"pgbackrest-{job.type}"
        # systemd expands $VAR in ExecStart itself; $$ passes a literal $ to the shell.
        script = _backup_shell(settings, job.type, "$$")
        units[f"{name}.service"] = "\n".join(
            [
                "[Unit]",
                f"Description=pgBackRest {job.type} backup of stanza {settings.stanza} "
                "to every repository",
                "After=network-online.target postgresql.service",
                "Wants=network-online.target",
                "",
                "[Service]",
                "Type=oneshot",
                "User=postgres",
                "Group=postgres",
                f"ExecStart=/bin/sh -c {shlex.quote(script)}",
                "",
            ]
        )
        units[f"{name}.timer"] = "\n".join(
            [
                "[Unit]",
                f"Description=pgBackRest {job.type} backup, "
                f"every {format_duration(job.interval_s)}",
                "",
                "[Timer]",
                f"OnCalendar={job.on_calendar}",
                "Persistent=true",
                "RandomizedDelaySec=0",
                "",
                "[Install]",
                "WantedBy=timers.target",
                "",
            ]
        )
    return units


def render_cron(objectives: Objectives, settings: PgBackRestSettings) -> str:
    """/etc/cron.d/pgbackrest text (runs as postgres), the alternative to the systemd timers."""
    lines = [
        "# Rendered by components/pgbackrest_config.py; full weekly, diff daily, incr hourly.",
        "SHELL=/bin/sh",
    ]
    for job in backup_jobs(objectives):
        lines.append(f"{job.cron} postgres {_backup_shell(settings, job.type, '$')}")
    return "\n".join(lines) + "\n"


def render_all(objectives: Objectives, settings: PgBackRestSettings) -> dict[str, str]:
    """Every non-secret artefact, keyed by a relative file path (for ``drctl render``).

    ``rearm/`` holds what the failover's re-arm step installs on the promoted DR primary
    (``rearm_settings``): its pgBackRest config and backup timers.
    """
    files = {
        "pgbackrest/pgbackrest.conf": render_pgbackrest_conf(settings),
        "postgresql/conf.d/pgbackrest-archiving.conf": render_postgres_conf(objectives, settings),
        "cron.d/pgbackrest": render_cron(objectives, settings),
    }
    for unit, text in render_systemd_units(objectives, settings).items():
        files[f"systemd/{unit}"] = text
    files.update(render_rearm(objectives, rearm_settings(settings)))
    return files


REARM_DIR = "rearm"


def render_rearm(objectives: Objectives, settings: PgBackRestSettings) -> dict[str, str]:
    """The promoted primary's pgBackRest config and backup timers (``rearm_settings``)."""
    files = {f"{REARM_DIR}/pgbackrest/pgbackrest.conf": render_pgbackrest_conf(settings)}
    for unit, text in render_systemd_units(objectives, settings).items():
        files[f"{REARM_DIR}/systemd/{unit}"] = text
    return files
