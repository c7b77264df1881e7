"""The drill's data model: what one scenario and one run record, field by field.

The JSON evidence (``report.json``, ``drctl drill --json``) is ``DrillReport.to_record()``; the
Markdown report and the terminal table are drawn from the same record. A later report (HTML, a
step timeline) needs nothing else. Times are seconds. Every scenario time is *relative to the
failure instant* (negative before it), on the drill's time scale: a figure of 9 s at
``time_scale`` 100 stands for 900 s in production.

Scenario record (``ScenarioResult.to_record``), headline fields first:

- ``name``, ``title``, ``data_class``, ``dataset``: what was broken.
- ``met``: true only when ``data_verified`` and both measured figures are within the scaled
  objectives and no step failed (and, where a scenario has them, every tier and check is met).
- ``data_verified``: the exact data check passed (``data``).
- ``rpo_s``: failure instant minus the acknowledgement time of the newest acknowledged write
  (before the failure) that came back; ``null`` when none came back.
- ``rto_s``: failure instant until service was back (``service_back_s``); ``null`` when it never
  came back.
- ``objectives``: ``{"rpo_s", "rto_s"}`` scaled (what the figures are compared with) and
  ``{"declared_rpo_s", "declared_rto_s"}`` as the stack declares them.
- ``recovery_point``: the point the mechanism promises (``kind``: ``time`` | ``lsn`` | ``as-of``;
  ``value``; ``how``: how the drill established it, independently of the recovery).
- ``detection``: how the failure was detected (``by``, ``at_s``) or that nothing is declared.
- ``data``: the ``DataCheck`` (counts of promised writes back, missing, stale, wrong, back although
  written after the point, unknown; checksums; first keys of each problem).
- ``steps``: ``[{"name", "phase", "start_s", "end_s", "duration_s"}]`` in start order; ``phase``
  is one of ``PHASES``.
- ``faults``: the injected faults that targeted this scenario.
- ``tiers`` (priority-rebuild): per restoration tier ``{"tier", "met", "healthy", "elapsed_s",
  "rto_s", "declared_rto_s", "services"}``: the time from the failure instant until the tier's
  last service answered its health check, against that tier's own scaled RTO; empty elsewhere.
- ``checks`` (priority-rebuild): further named verdicts ``{"name", "ok", "detail"}`` (the status
  page at each step, each audience's notifications, no secret in any message); empty elsewhere.
- ``error``: why the scenario stopped, or ``null``; ``evidence``: raw figures per scenario.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Step phases, in the order a recovery passes through them. "verify" is the drill's own proof and
# runs after the RTO clock stops; "setup" and "load" run before the failure (negative times).
PHASES = (
    "setup",
    "load",
    "failure",
    "detection",
    "assess",
    "fence",
    "promote",
    "config",
    "dns",
    "restore",
    "replay",
    "copy-back",
    "recover",
    "service",
    "validate",
    "verify",
)


@dataclass
class Write:
    """One write the drill attempted: a ledger row or an object version.

    ``acked_at`` is the wall-clock time the acknowledgement arrived (the commit returned, the PUT
    answered); None when the outcome is unknown (the connection died under it). ``position`` is
    what the scenario needs to place the write against its recovery point (the transaction id of
    a row, the endpoint it went to); the data check itself never reads it.
    """

    key: str
    content: str
    sent_at: float
    acked_at: float | None
    position: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataCheck:
    """What recovery brought back against the recovery point's promise (see datacheck.py)."""

    point: str
    promised: int  # keys whose newest promised content must be back
    back: int  # of those, back with exactly that content
    missing: int  # promised keys that are not back at all
    stale: int  # back at an older version than promised (an overwrite not undone)
    wrong: int  # back with content no write of that key ever had
    after_point: int  # back with content written after the recovery point (PITR)
    unknown: int  # keys back that no write of the drill created
    uncertain: int  # in-flight writes (outcome unknown), allowed either way
    expected_checksum: str
    recovered_checksum: str
    verified: bool
    examples: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        if self.verified:
            return f"{self.back}/{self.promised} promised back exactly"
        parts = [
            f"{n} {label}"
            for n, label in (
                (self.missing, "missing"),
                (self.stale, "stale"),
                (self.wrong, "wrong"),
                (self.after_point, "after the point"),
                (self.unknown, "unknown"),
            )
            if n
        ]
        return f"{self.back}/{self.promised} back; " + ", ".join(parts)


@dataclass
class Step:
    """One step of a scenario, times relative to the failure instant (seconds)."""

    name: str
    phase: str
    start_s: float
    end_s: float

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "duration_s": round(self.end_s - self.start_s, 3),
        }


@dataclass
class ScenarioResult:
    name: str
    title: str
    data_class: str
    dataset: str
    incident: str
    recovery: str
    rpo_objective_s: float  # scaled
    rto_objective_s: float  # scaled
    declared_rpo_s: int
    declared_rto_s: int
    rpo_s: float | None = None
    rto_s: float | None = None
    data: DataCheck | None = None
    data_verified: bool = False
    met: bool = False
    recovery_point: dict[str, Any] = field(default_factory=dict)
    detection: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    error: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def finish(self) -> None:
        self.data_verified = bool(self.data and self.data.verified)
        self.met = (
            self.error is None
            and self.data_verified
            and within(self.rpo_s, self.rpo_objective_s)
            and within(self.rto_s, self.rto_objective_s)
            and all(t["met"] for t in self.tiers)
            and all(c["ok"] for c in self.checks)
        )

    def reasons(self) -> list[str]:
        """Why the scenario is NOT MET, in words (empty when met)."""
        found = []
        if self.error:
            found.append(self.error)
        if self.data is None:
            found.append("no data check: the scenario stopped before it")
        elif not self.data.verified:
            found.append(f"data not verified: {self.data.summary()}")
        if not within(self.rpo_s, self.rpo_objective_s):
            found.append(
                "no acknowledged write came back"
                if self.rpo_s is None
                else f"RPO {self.rpo_s:.3f} s > {self.rpo_objective_s:g} s"
            )
        if not within(self.rto_s, self.rto_objective_s):
            found.append(
                "service did not come back"
                if self.rto_s is None
                else f"RTO {self.rto_s:.3f} s > {self.rto_objective_s:g} s"
            )
        for tier in self.tiers:
            if not tier["met"]:
                shown = (
                    "not healthy by its deadline"
                    if tier["elapsed_s"] is None
                    else f"{tier['elapsed_s']:.3f} s > {tier['rto_s']:g} s"
                )
                found.append(f"tier {tier['tier']} NOT met: {shown}")
        found += [f"{c['name']}: {c['detail']}" for c in self.checks if not c["ok"]]
        return found

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "met": self.met,
            "data_verified": self.data_verified,
            "rpo_s": _round(self.rpo_s),
            "rto_s": _round(self.rto_s),
            "objectives": {
                "rpo_s": self.rpo_objective_s,
                "rto_s": self.rto_objective_s,
                "declared_rpo_s": self.declared_rpo_s,
                "declared_rto_s": self.declared_rto_s,
            },
            "title": self.title,
            "data_class": self.data_class,
            "dataset": self.dataset,
            "incident": self.incident,
            "recovery": self.recovery,
            "not_met_because": self.reasons(),
            "recovery_point": self.recovery_point,
            "detection": self.detection,
            "data": asdict(self.data) if self.data else None,
            "steps": [s.to_record() for s in sorted(self.steps, key=lambda s: s.start_s)],
            "faults": self.faults,
            "error": self.error,
            "tiers": self.tiers,
            "checks": self.checks,
            "evidence": self.evidence,
        }


def within(measured: float | None, objective: float) -> bool:
    return measured is not None and not math.isnan(measured) and measured <= objective


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass
class DrillReport:
    stack: str
    started_at: str
    time_scale: float
    objectives: dict[str, Any]
    mechanisms: dict[str, Any]
    simulated: list[str]
    scenarios: list[ScenarioResult]
    faults: list[str] = field(default_factory=list)
    setup_s: float = 0.0
    drill_s: float = 0.0
    teardown_s: float = 0.0
    host: dict[str, Any] = field(default_factory=dict)

    @property
    def all_met(self) -> bool:
        return bool(self.scenarios) and all(s.met for s in self.scenarios)

    def to_record(self) -> dict[str, Any]:
        return {
            "scenarios": [s.to_record() for s in self.scenarios],
            "all_met": self.all_met,
            "time_scale": self.time_scale,
            "stack": self.stack,
            "started_at": self.started_at,
            "objectives": self.objectives,
            "mechanisms": self.mechanisms,
            "faults": self.faults,
            "simulated": self.simulated,
            "durations_s": {
                "setup": round(self.setup_s, 3),
                "drill": round(self.drill_s, 3),
                "teardown": round(self.teardown_s, 3),
            },
            "host": self.host,
        }
