"""Faults the drill can inject (``drctl drill --local --inject FAULT``, ``--list-faults``).

A fault changes the *environment* a scenario runs in (a failing archive_command, a paused
standby, an unreadable WAL segment, a lossy copy, a skipped key), never a verdict. The scenario
then measures and checks exactly as it always does; each fault must turn the scenario it targets
to NOT MET (tests/integration/test_drill_faults.py proves it for every fault). The scenario code
asks ``ScenarioFaults.active(name)`` at the point where the fault acts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from scripts.common import DrctlError, ExitCode


@dataclass(frozen=True)
class Fault:
    name: str
    scenario: str  # the scenario it targets
    changes: str  # what it does to the environment
    caught_by: str  # what the drill is expected to notice

    def to_record(self) -> dict[str, str]:
        return asdict(self)


FAULTS: tuple[Fault, ...] = (
    Fault(
        "archive-stalled",
        "database-corruption",
        "archive_command fails on the primary (ALTER SYSTEM to /bin/false) from the start of the "
        "write load, so no WAL segment reaches repo1 or repo2",
        "repo2 holds nothing written after the backup: the RPO exceeds the objective",
    ),
    Fault(
        "restore-short",
        "database-corruption",
        "the WAL segments repo2 archived after the backup cannot be read while the restore "
        "replays, so recovery ends early; Postgres and pgBackRest report a normal end",
        "writes the archive promised are missing: data not verified",
    ),
    Fault(
        "replay-paused",
        "data-centre-outage",
        "pg_wal_replay_pause() on the DR standby from the start of the write load",
        "the received WAL was never replayed: the runbook refuses (lag beyond the RPO) and the "
        "promised writes are missing",
    ),
    Fault(
        "replication-stopped",
        "data-centre-outage",
        "streaming replication to the DR region stops at the start of the write load (the "
        "standby's primary_conninfo is emptied)",
        "the standby's lag exceeds the RPO: the runbook refuses and the RPO exceeds the objective",
    ),
    Fault(
        "copy-back-lossy",
        "human-error",
        "the copy of the table from the restored copy back into the primary drops every 20th "
        "row in transit",
        "rows acknowledged before the PITR target are missing: data not verified",
    ),
    Fault(
        "object-recovery-skipped",
        "accidental-file-deletion",
        "the object recovery skips every third key of its plan, as a throttled or cut-short run "
        "would",
        "deleted objects stay deleted: data not verified",
    ),
    Fault(
        "backup-unlocked",
        "security-breach",
        "the backup bucket is created without object lock",
        "the attacker's deletes of backup versions succeed: data not verified",
    ),
)
FAULT_NAMES = tuple(f.name for f in FAULTS)
_BY_NAME = {f.name: f for f in FAULTS}


def fault(name: str) -> Fault:
    return _BY_NAME[name]


def check_faults(names: Iterable[str], scenarios: Iterable[str]) -> list[str]:
    """The requested faults, deduplicated; exit 2 naming any unknown fault, or one whose target
    scenario is not selected (it would change nothing)."""
    chosen = list(dict.fromkeys(names))
    selected = set(scenarios)
    for name in chosen:
        if name not in _BY_NAME:
            raise DrctlError(
                f"--inject {name!r} is not valid: one of {', '.join(FAULT_NAMES)} "
                "(drctl drill --list-faults)",
                ExitCode.INVALID_CONFIG,
            )
        target = _BY_NAME[name].scenario
        if target not in selected:
            raise DrctlError(
                f"--inject {name} targets scenario {target!r}, which this run does not select "
                f"(add --scenario {target})",
                ExitCode.INVALID_CONFIG,
            )
    return chosen


class ScenarioFaults:
    """The faults that target one scenario; ``active`` is asked where each one acts."""

    def __init__(self, scenario: str, names: Iterable[str]):
        self.names = [n for n in names if _BY_NAME[n].scenario == scenario]

    def active(self, name: str) -> bool:
        if name not in _BY_NAME:
            raise KeyError(f"unknown fault {name!r}")
        return name in self.names
