"""policy/bounds.py and the class verdict built on it: enforced bounds decide, alarms never do."""

from __future__ import annotations

import pytest

from policy import bounds, rules
from policy.bounds import Bound

OBJECTIVES = {
    "regions": {"primary": "us-east-1", "dr": "us-west-2", "third": "eu-west-1"},
    "classes": {"critical": {"name": "critical", "rpo_s": 900, "rto_s": 3600}},
}


def test_only_enforced_bounds_count_and_the_tightest_wins():
    found = [
        Bound("detected", 60, "an alarm at 1 min", detection_s=120),
        Bound("failover-refusal", 300, "refusal"),
        Bound("archive", 360, "archive"),
    ]
    assert bounds.enforced_loss_s(found) == 360
    assert bounds.enforced_loss_s(found[:1]) is None  # an alarm alone bounds nothing
    # The failover refusal guards a failover; it bounds nothing when the primary region is gone.
    assert bounds.enforced_loss_s(found[:2]) is None
    assert bounds.enforced_loss_s([Bound("archive", None, "?")]) is None


def test_kinds_are_checked_and_described():
    with pytest.raises(ValueError, match="not one of"):
        Bound("alarm", 60, "x")
    assert set(bounds.ENFORCED_KINDS) == set(bounds.KINDS) - {bounds.DETECTED, bounds.GUARD}
    guard = Bound("failover-refusal", 900, "drctl refuses", price="RTO")
    assert not guard.enforced and guard.to_dict()["guard"] is True
    assert guard.describe() == (
        "guarded at failover (not a bound on region loss): drctl refuses; price: RTO"
    )
    sync = Bound("synchronous", 0, "sync", holds_while="it is connected", price="latency")
    assert sync.enforced and sync.describe() == (
        "enforced (synchronous): sync; loss at most 0 s while it is connected; price: latency"
    )
    alarm = Bound("detected", 900, "ReplicaLag alarm", detection_s=120)
    assert not alarm.enforced
    assert alarm.describe() == (
        "detected: ReplicaLag alarm; pages within 2 min after the lag passes 15 min"
    )
    assert alarm.to_dict()["enforced"] is False and alarm.to_dict()["loss_s"] == 900


@pytest.mark.parametrize(
    ("props", "publication", "expected"),
    [
        ({"period": 60, "evaluationPeriods": 1}, 60, 120),
        ({"period": 300, "evaluationPeriods": 3}, 60, 960),
        ({"period": 60, "evaluationPeriods": 5, "datapointsToAlarm": 2}, 0, 120),
        ({"evaluationPeriods": 1}, 60, None),
    ],
)
def test_alarm_detection_delay(props, publication, expected):
    assert bounds.alarm_detection_s(props, publication) == expected


def test_a_mechanism_takes_its_rpo_from_its_enforced_bounds_only():
    mechanism = rules.Mechanism(
        "d", "critical", "d", 5, bounds=[Bound("detected", 5, "alarm"), Bound("archive", 600, "a")]
    )
    assert mechanism.rpo_s == 600  # the alarm's 5 s never becomes the bound
    alarm_only = rules.Mechanism("d", "critical", "d", 5, bounds=[Bound("detected", 5, "alarm")])
    assert alarm_only.rpo_s is None


def _mechanisms(*per_dataset):
    def extract(resources, objectives):
        return [
            rules.Mechanism(name, "critical", name, None, bounds=found)
            for name, found in per_dataset
        ]

    return extract


@pytest.fixture
def extractors(monkeypatch):
    """Only these datasets' mechanisms, and no AWS Backup coverage to judge."""
    monkeypatch.setattr(rules, "backup_coverage", lambda resources, objectives: {})

    def use(*extract):
        monkeypatch.setattr(rules, "MECHANISM_EXTRACTORS", list(extract))

    return use


def test_the_class_is_as_good_as_its_worst_dataset(extractors):
    extractors(
        _mechanisms(
            ("fast", [Bound("archive", 360, "a")]),
            ("slow", [Bound("service-sla", 900, "rtc")]),
        )
    )
    [verdict] = rules.class_verdicts([], OBJECTIVES)
    assert verdict.met and verdict.rpo_declared_s == 900  # the worst dataset, not the best
    assert verdict.datasets == {"fast": 360, "slow": 900}


def test_a_dataset_over_the_rpo_fails_the_class(extractors):
    extractors(
        _mechanisms(
            ("fast", [Bound("archive", 360, "a")]), ("slow", [Bound("schedule", 3600, "s")])
        )
    )
    [verdict] = rules.class_verdicts([], OBJECTIVES)
    assert not verdict.met and verdict.rpo_declared_s == 3600
    assert verdict.problems == ["slow: worst case 1 h exceeds the RPO 15 min"]


def test_a_dataset_with_only_an_alarm_fails_the_class(extractors):
    extractors(_mechanisms(("watched", [Bound("detected", 60, "alarm", detection_s=120)])))
    [verdict] = rules.class_verdicts([], OBJECTIVES)
    assert not verdict.met and verdict.rpo_declared_s is None
    assert verdict.problems == ["watched: nothing bounds data loss on region loss"]
    assert [b.kind for b in verdict.bounds["watched"]] == ["detected"]


def test_a_dataset_is_bounded_by_its_best_mechanism(extractors):
    def two(resources, objectives):
        return [
            rules.Mechanism("db", "critical", "a", None, bounds=[Bound("schedule", 3600, "s")]),
            rules.Mechanism("db", "critical", "b", None, bounds=[Bound("archive", 360, "a")]),
        ]

    extractors(two)
    [verdict] = rules.class_verdicts([], OBJECTIVES)
    assert verdict.met and verdict.datasets == {"db": 360}
