"""Bounds and leftovers of long database work: how long a restore, its WAL replay or a backup may
run, and what an interrupted restore leaves behind.

**Timeouts come from the objectives.** A restore and its WAL replay share one deadline, by default
``RESTORE_TIMEOUT_RTO_FACTOR`` times the critical class's RTO (the class the database holds).
Past the RTO itself the objective is already missed, but the data is still wanted, so the work is
not cut there: the operator is told once, and the restore goes on until the deadline, where it is
more likely hung than slow. A backup may run as long as its schedule interval (a full a week, a
diff a day, an incr an hour), after which it would overlap the next one of its kind. ``--timeout``
overrides both, and the message when a deadline is hit names that flag.

**A partial restore is marked.** When a restore stops before it is done (Ctrl-C, or the deadline)
the new data directory stays, with a ``DRCTL-PARTIAL`` file saying what ran, when and why it
stopped. pgBackRest restores ``global/pg_control`` last, so such a directory cannot be started by
mistake; drctl refuses to restore into it again without ``--resume`` (pgBackRest ``--delta``:
files already restored and matching the backup are kept) and prints the command to remove it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.objectives import ConfigError, Objectives, format_duration, parse_duration
from scripts.common import DrctlError, ExitCode, progress

TIMEOUT_FLAG = "--timeout"
# Twice the RTO: long enough that a slow restore still finishes (late data beats no data), short
# enough that a hung one is stopped the same shift.
RESTORE_TIMEOUT_RTO_FACTOR = 2
DATABASE_CLASS = "critical"  # the data class of the database (components/postgres_backup.py)
PARTIAL_MARKER = "DRCTL-PARTIAL"
# What a directory needs for pgBackRest --delta to trust it as a data directory (restore docs:
# "--delta ... unable to find 'PG_VERSION' or 'backup.manifest'").
DELTA_EVIDENCE = ("PG_VERSION", "backup.manifest")


class WorkTimeout(DrctlError):
    """A deadline was hit; the message names the flag that extends it."""

    def __init__(self, message: str):
        super().__init__(message, ExitCode.STEP_FAILED)


@dataclass
class Deadline:
    """One time budget for a piece of long work, and where its length came from.

    ``source`` reads after the duration in messages, e.g. "twice the critical RTO of 1h".
    ``objective_s`` (optional) is the objective inside the budget: crossing it is reported once.
    """

    timeout_s: float
    source: str
    objective_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    _objective_told: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not self.started:
            self.start()

    def start(self) -> None:
        self.started = self.clock()
        self._objective_told = False

    def fresh(self) -> Deadline:
        """The same budget, starting now (one per repository of a backup)."""
        return Deadline(self.timeout_s, self.source, self.objective_s, self.clock)

    def remaining_s(self) -> float:
        return self.timeout_s - (self.clock() - self.started)

    def expired(self) -> bool:
        self.tell_objective_missed()
        return self.remaining_s() <= 0

    def tell_objective_missed(self) -> None:
        if self.objective_s is None or self._objective_told:
            return
        if self.clock() - self.started > self.objective_s:
            self._objective_told = True
            progress.print(
                f"[yellow]warning:[/] past the {DATABASE_CLASS} RTO of "
                f"{format_duration(self.objective_s)}: the objective is missed; the work goes on "
                f"until {format_duration(self.timeout_s)} ({TIMEOUT_FLAG})",
                markup=True,
            )

    def timeout_error(self, what: str) -> WorkTimeout:
        longer = format_duration(max(int(self.timeout_s) * 2, 60))
        return WorkTimeout(
            f"{what} did not finish within {format_duration(self.timeout_s)} ({self.source}); "
            f"if it was making progress, allow longer with {TIMEOUT_FLAG} {longer}"
        )


def parse_timeout(value: str | None) -> int | None:
    """``--timeout 2h`` -> 7200; None when the option is absent."""
    if value is None:
        return None
    try:
        return parse_duration(TIMEOUT_FLAG, value)
    except ConfigError as exc:
        raise DrctlError(str(exc), ExitCode.INVALID_CONFIG) from None


def restore_deadline(objectives: Objectives, timeout_s: int | None = None) -> Deadline:
    """The budget of a restore plus its replay: ``--timeout`` or a multiple of the RTO."""
    rto = objectives.of(DATABASE_CLASS).rto_s
    if timeout_s is not None:
        return Deadline(timeout_s, f"{TIMEOUT_FLAG} {format_duration(timeout_s)}", rto)
    factor = {2: "twice"}.get(RESTORE_TIMEOUT_RTO_FACTOR, f"{RESTORE_TIMEOUT_RTO_FACTOR} times")
    return Deadline(
        RESTORE_TIMEOUT_RTO_FACTOR * rto,
        f"default: {factor} the {DATABASE_CLASS} RTO of {format_duration(rto)} of stack "
        f"{objectives.stack}",
        rto,
    )


def backup_deadline(
    objectives: Objectives, backup_type: str, timeout_s: int | None = None
) -> Deadline:
    """The budget of one backup: ``--timeout`` or the schedule interval of its type."""
    if timeout_s is not None:
        return Deadline(timeout_s, f"{TIMEOUT_FLAG} {format_duration(timeout_s)}")
    schedule = objectives.schedule
    interval = {
        "full": schedule.full_s,
        "diff": schedule.differential_s,
        "incr": schedule.log_backup_s,
    }[backup_type]
    return Deadline(
        interval,
        f"default: the {backup_type} schedule interval, after which the next one is due",
    )


# -- the partial-restore marker --------------------------------------------------------------------


def partial_record(target: Path) -> dict[str, Any] | None:
    """The marker's content when ``target`` holds a partial restore drctl left, else None."""
    marker = target / PARTIAL_MARKER
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        record = {}
    return record if isinstance(record, dict) else {}


def mark_partial(
    target: Path, *, phase: str, reason: str, resume: str, details: dict[str, Any]
) -> Path:
    """Write the marker into the partial directory; returns its path."""
    marker = target / PARTIAL_MARKER
    record = {
        "what": "a drctl restore that did not finish; do not start or use this directory",
        "phase": phase,  # restore (pgBackRest copying files) or replay (WAL recovery)
        "reason": reason,  # interrupted (SIGINT) or timeout
        "stopped_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "resume": resume,
        "remove": f"rm -rf {target}",
        **details,
    }
    marker.write_text(json.dumps(record, indent=2) + "\n")
    return marker


def partial_hint(target: Path, record: dict[str, Any], resume: str) -> str:
    """What a rerun says instead of a bare "not empty"."""
    when = record.get("stopped_at", "at an unknown time")
    phase = record.get("phase", "restore")
    reason = record.get("reason", "stopped")
    return (
        f"--to {target} holds a partial restore ({reason} during {phase} at {when}; see "
        f"{target / PARTIAL_MARKER}). Resume it, keeping the files already restored: {resume}  "
        f"-- or remove it and start over: rm -rf {target}"
    )


def can_delta(target: Path) -> bool:
    """pgBackRest --delta needs PG_VERSION or backup.manifest to trust the directory."""
    return any((target / name).exists() for name in DELTA_EVIDENCE)


def clear_directory(target: Path) -> None:
    """Empty a partial directory that pgBackRest cannot resume (it stopped before it wrote
    anything it could check), keeping the directory itself and its owner."""
    for entry in target.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
