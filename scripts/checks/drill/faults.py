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
        "the restore to latest stops before the newest archived WAL pgbackrest info lists: "
        "refused, the copy must not be used",
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
    Fault(
        "unhealthy-service",
        "priority-rebuild",
        "the first critical service's health endpoint answers 500 however long it runs",
        "the critical tier is not healthy by its deadline (tier NOT met); the next tier starts "
        "only once that deadline has passed",
    ),
    Fault(
        "slow-tier",
        "priority-rebuild",
        "the important tier's services take 1.5 x that tier's scaled RTO to warm up",
        "the important tier exceeds its RTO while the critical tier stays met",
    ),
    Fault(
        "missing-dependency",
        "priority-rebuild",
        "the DR-region copy of the user-assets dataset is lost (every version, then the bucket) "
        "at the failure",
        "the services that need it never start (tier NOT met) and its objects are missing: "
        "data not verified",
    ),
    Fault(
        "status-page-down",
        "priority-rebuild",
        "no copy of the status page can be written (all three buckets are gone)",
        "no version of the page was published: the status-page check fails; the services "
        "still come back",
    ),
    Fault(
        "receiver-down",
        "priority-rebuild",
        "the webhook receiver behind the chat relay, pager, board and press subscriptions is down",
        "no audience was told: the notification checks fail; the services still come back",
    ),
    Fault(
        "secret-in-template",
        "priority-rebuild",
        "the team's incident-opened template has the level-0 pager's webhook URL (token "
        "included) pasted into it by hand",
        "the token reaches the team's chat and pager messages: the no-secret check fails",
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
