"""What bounds the data a region loss can take, and what only notices it: the one model.

Every mechanism the rules find (policy/rules.py ``Mechanism``) carries a list of ``Bound``s. A
bound is one of two things, and the report never mixes them up:

- **enforced**: the system itself keeps the loss under ``loss_s`` while the stated condition
  holds, whatever anyone notices. Only these make a class verdict.
- **detected**: an alarm pages when a copy falls behind ``loss_s`` (its threshold), after
  ``detection_s`` seconds (its evaluation periods times its period, plus the time the metric takes
  to be published). An alarm bounds nothing: the writes behind the threshold are already at risk
  when it fires, and stay at risk until someone acts.

The kinds are first-class, so another mechanism reports through the same model (an RPO governor
that switches to synchronous commit is a ``synchronous`` bound).

Kinds (only ``enforced`` ones count towards the verdict):

- ``archive`` (enforced): WAL shipping. Every write is in a repository in another region within
  archive_timeout + the push timeout, or the push fails and Postgres retries.
- ``synchronous`` (enforced): synchronous replication, or an RPO governor that switches to it. A
  commit returns only once the copy in another region has it.
- ``failover-refusal`` (a guard, not a bound): ``drctl failover`` refuses to promote a copy whose
  measured lag exceeds the RPO unless ``--accept-data-loss``. It stops drctl from losing more than
  the RPO *silently*, but it bounds nothing on a real region loss: the writes behind the lag are
  already gone with the primary, and refusing only turns the loss into waiting for a region that
  may never come back. So it is shown, and never counts towards the verdict.
- ``service-sla`` (enforced): a provider's commitment. S3 Replication Time Control replicates
  99.99% of objects within 15 minutes.
- ``schedule`` (enforced): a scheduled copy (a logical dump) reaches another region at least this
  often, while each run completes.
- ``detected`` (not enforced): an alarm, with its detection delay.

Standard library only: the CrossGuard pack loads this file standalone from inside policy/.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ENFORCED_KINDS = ("archive", "synchronous", "service-sla", "schedule")
GUARD = "failover-refusal"
DETECTED = "detected"
KINDS = (*ENFORCED_KINDS, GUARD, DETECTED)


@dataclass(frozen=True)
class Bound:
    """One bound on a dataset's loss on region loss, or one alarm that detects it.

    kind: one of KINDS (``enforced`` says which count).
    loss_s: enforced: worst-case seconds of acknowledged writes lost; detected: the alarm's
        threshold, which is *not* a bound. None: no figure can be given.
    via: what enforces or detects it, in words (settings as the hosts and AWS receive them).
    holds_while: the condition an enforced bound needs; what happens when it fails.
    price: what enforcing it costs (RTO, commit latency); "" when nothing.
    detection_s: detected only: seconds from the threshold being crossed to the page.
    """

    kind: str
    loss_s: int | None
    via: str
    holds_while: str = ""
    price: str = ""
    detection_s: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"bound kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def enforced(self) -> bool:
        return self.kind in ENFORCED_KINDS

    def describe(self) -> str:
        if self.kind == GUARD:
            return f"guarded at failover (not a bound on region loss): {self.via}" + (
                f"; price: {self.price}" if self.price else ""
            )
        if not self.enforced:
            when = "" if self.detection_s is None else f" within {fmt(self.detection_s)}"
            return f"detected: {self.via}; pages{when} after the lag passes {fmt(self.loss_s)}"
        text = f"enforced ({self.kind}): {self.via}; loss at most {fmt(self.loss_s)}"
        if self.holds_while:
            text += f" while {self.holds_while}"
        if self.price:
            text += f"; price: {self.price}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "enforced": self.enforced,
            "guard": self.kind == GUARD,
            "loss_s": self.loss_s,
            "via": self.via,
            "holds_while": self.holds_while,
            "price": self.price,
            "detection_s": self.detection_s,
            "text": self.describe(),
        }


def enforced_loss_s(bounds: Iterable[Bound]) -> int | None:
    """The tightest enforced bound: a dataset loses no more than its best enforced mechanism
    allows. Alarms never count. None when nothing enforces a bound."""
    losses = [b.loss_s for b in bounds if b.enforced and b.loss_s is not None]
    return min(losses) if losses else None


def alarm_detection_s(props: Mapping[str, Any], publication_s: int) -> int | None:
    """Worst-case seconds from a breach to the alarm firing: the breaching datapoints it needs
    (DatapointsToAlarm, default EvaluationPeriods) times the period, plus the time the metric
    takes to be published. A breach that starts right after a period boundary shows in that
    period's Maximum, so no extra period is needed (CloudWatch User Guide, "Using Amazon
    CloudWatch alarms": https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
    AlarmThatSendsEmail.html)."""
    period = props.get("period")
    needed = props.get("datapointsToAlarm") or props.get("evaluationPeriods")
    if not isinstance(period, int | float) or not isinstance(needed, int | float):
        return None
    return int(period * needed) + int(publication_s)


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "unbounded"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
