"""The database's region-loss bound on the asynchronous backends: the lag alarm at the RPO.

rds (the DR read replica, ``dr_standby_mechanisms``) and supabase (the DR-region subscriber,
``postgres_backup_mechanisms``) replicate asynchronously, so nothing bounds what a region loss
costs except an alarm on the copy's lag that pages. These tests evaluate the real program for
prod with each backend, check that posture now calls the critical class met, then mutate the
declared alarm (remove it, raise its threshold, break one of its settings) and check the class is
NOT MET again, with the reason in the problems.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

from policy import rules
from scripts.checks.posture import report
from scripts.local.evaluate import evaluate_stack

ALARM = {"rds": "dr-standby-replica-lag", "supabase": "database-subscription-lag"}
METRIC = {"rds": "ReplicaLag", "supabase": "SubscriptionLagSeconds"}


@functools.cache
def _evaluation(backend):
    return evaluate_stack("prod", overrides={"dbBackend": backend})


def _resources(backend):
    return [rules.Resource(r.type, r.name, r.inputs) for r in _evaluation(backend).resources]


def _critical(resources):
    objectives = rules.objectives_of(resources)
    return next(v for v in rules.class_verdicts(resources, objectives) if v.name == "critical")


def _tamper(resources, name, **props):
    assert any(r.name == name for r in resources), name
    return [
        dataclasses.replace(r, props={**r.props, **props}) if r.name == name else r
        for r in resources
    ]


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_posture_for_prod_is_met_and_names_what_bounds_the_database(backend):
    posture = report(_evaluation(backend))
    critical = next(c for c in posture["classes"] if c["name"] == "critical")
    assert critical["met"] is True, critical["problems"]
    assert critical["datasets"]["database"] == 900
    text = "\n".join(critical["mechanisms"])
    if backend == "rds":
        assert "read replica in us-west-2, ReplicaLag alarm at 15 min" in text
    else:
        assert "lag bounded by the SubscriptionLagSeconds alarm at 15 min in us-west-2" in text


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_without_the_alarm_the_database_is_not_bounded_by_the_copy(backend):
    resources = [r for r in _resources(backend) if r.name != ALARM[backend]]
    critical = _critical(resources)
    assert not critical.met
    if backend == "rds":
        assert "database: nothing bounds data loss on region loss" in critical.problems
        assert critical.datasets["database"] is None
    else:
        # The daily dump is all that is left.
        assert "database: worst case 1 d exceeds the RPO 15 min" in critical.problems
    assert any(f"lag not bounded: no {METRIC[backend]} alarm" in m for m in critical.mechanisms)


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_an_alarm_above_the_rpo_does_not_meet_it(backend):
    resources = _tamper(_resources(backend), ALARM[backend], threshold=3600.0)
    critical = _critical(resources)
    assert not critical.met and critical.datasets["database"] == 3600
    assert "database: worst case 1 h exceeds the RPO 15 min" in critical.problems
    # Tighter than the RPO is fine, and is what posture then declares.
    critical = _critical(_tamper(_resources(backend), ALARM[backend], threshold=300.0))
    assert critical.met and critical.datasets["database"] == 300


@pytest.mark.parametrize("backend", ["rds", "supabase"])
@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"alarmActions": []}, "notifies no one"),
        ({"treatMissingData": "notBreaching"}, "ignores missing data"),
        ({"threshold": None}, "has no threshold"),
        ({"statistic": "Average"}, "takes the Average"),
        ({"region": "us-east-1"}, "is in us-east-1, not us-west-2"),
        ({"comparisonOperator": "LessThanThreshold"}, "fires LessThanThreshold"),
        ({"dimensions": {}}, "dimension"),
        ({"metricName": "CPUUtilization"}, "watches"),
    ],
)
def test_an_alarm_that_cannot_page_on_the_lag_is_no_bound(backend, change, why):
    resources = _tamper(_resources(backend), ALARM[backend], **change)
    critical = _critical(resources)
    assert not critical.met
    assert any(f"{METRIC[backend]} alarm" in m and why in m for m in critical.mechanisms), (
        critical.mechanisms
    )


def test_rds_replica_lag_needs_the_replica_itself():
    # An alarm with no sound replica behind it bounds nothing.
    resources = _tamper(_resources("rds"), "dr-standby-replica", storageEncrypted=False)
    critical = _critical(resources)
    assert not critical.met
    assert "database: nothing bounds data loss on region loss" in critical.problems


@pytest.mark.parametrize(("rpo", "seconds"), [("5m", 300), ("30m", 1800)])
@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_the_alarm_follows_the_critical_rpo(backend, rpo, seconds):
    ev = evaluate_stack("prod", overrides={"dbBackend": backend, "criticalRpo": rpo})
    assert ev.named(ALARM[backend]).inputs["threshold"] == seconds
    resources = [rules.Resource(r.type, r.name, r.inputs) for r in ev.resources]
    assert _critical(resources).datasets["database"] == seconds
