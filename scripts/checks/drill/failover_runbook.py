"""The one place the drill calls drctl's failover runbook (scripts/runbooks/failover.py).

The drill drives the runbook exactly as `drctl failover --execute --yes` does, through its public
functions (``load_plan``, ``run_failover``, ``Connections``), with moto for AWS and the local
DSNs. Only two things are the drill's: the plan's RPO/RTO are the *scaled* objectives (so the
runbook's lag check judges scaled lag against a scaled RPO), and the step times are read back
from the runbook's own journal, so a refused or failed run still shows what it did and when.
When the runbook's interface changes, this module is what follows it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scripts.common import DrctlError, ExitCode

# Runbook step -> the drill's step phase (model.PHASES).
PHASE_OF_STEP = {
    "assess": "assess",
    "isolate": "fence",
    "promote": "promote",
    "switch-config": "config",
    "switch-dns": "dns",
    "validate": "validate",
}


@dataclass
class RunbookOutcome:
    """What the runbook did: its journal rows, and why it stopped if it did not complete."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    refused: bool = False

    def step_times(self) -> list[tuple[str, str, float, float]]:
        """(title, phase, start, end) per step that ran, wall-clock seconds."""
        found = []
        for row in self.rows:
            if not row.get("started_at") or not row.get("finished_at"):
                continue
            start = dt.datetime.fromisoformat(row["started_at"]).timestamp()
            end = dt.datetime.fromisoformat(row["finished_at"]).timestamp()
            status = "" if row.get("status") == "completed" else f" ({row.get('status')})"
            title = f"runbook: {row.get('title', row['name'])}{status}"
            found.append((title, PHASE_OF_STEP.get(row["name"], "validate"), start, end))
        return found

    def result_of(self, step: str) -> dict[str, Any]:
        for row in self.rows:
            if row["name"] == step:
                return row.get("result") or {}
        return {}

    def finished_at(self, step: str) -> float | None:
        for row in self.rows:
            if row["name"] == step and row.get("status") == "completed" and row.get("finished_at"):
                return dt.datetime.fromisoformat(row["finished_at"]).timestamp()
        return None


def run_failover_runbook(
    stack: str,
    outputs: dict[str, Any],
    aws: Any,
    primary_conninfo: str,
    standby_conninfo: str,
    *,
    rpo_s: float,
    rto_s: float,
    journal: Path,
    samples: tuple[str, ...] = ("public.ledger",),
) -> RunbookOutcome:
    """Run the failover runbook to completion or to its first refusal/failure."""
    from scripts.runbooks.failover import Connections, load_plan, run_failover

    plan = replace(load_plan(stack, outputs), rpo_s=rpo_s, rto_s=rto_s)
    outcome = RunbookOutcome()
    try:
        run_failover(
            plan,
            aws,
            Connections(primary_conninfo, standby_conninfo),
            execute=True,
            yes=True,
            samples=samples,
            journal=journal,
        )
    except DrctlError as exc:
        outcome.error = f"failover runbook: {exc}"
        outcome.refused = exc.code == ExitCode.REFUSED
    if journal.exists():
        outcome.rows = json.loads(journal.read_text()).get("steps", [])
    return outcome
