"""The database on the asynchronous backends: nothing enforced, a guard, and an alarm that detects.

rds (the DR read replica) and supabase (the DR-region subscriber) replicate asynchronously.
``drctl failover`` refuses to promote a copy whose lag exceeds the critical RPO (without
--accept-data-loss), but that is a guard, not a bound: on a real region loss the writes behind the
lag are gone with the primary. The lag alarms only *detect*: they are shown with their detection
delay and never become the declared worst case, whatever their threshold. So on these backends the
critical class is NOT MET unless something enforces a bound. These tests evaluate the real program
for prod with each backend, and check the verdict follows the guard, the alarm and the dump.
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


def _kinds(critical):
    return {(b.kind, b.loss_s) for b in critical.bounds["database"]}


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_the_refusal_guards_the_alarm_detects_and_nothing_bounds_a_region_loss(backend):
    posture = report(_evaluation(backend))
    critical = next(c for c in posture["classes"] if c["name"] == "critical")
    assert critical["verdict"] == "not met"
    # rds: nothing else; supabase: the daily dump, two days and the replication of the last one.
    assert critical["datasets"]["database"] == {"rds": None, "supabase": 2895 * 60}[backend]
    bounds = critical["bounds"]["database"]
    refusal = next(b for b in bounds if b["kind"] == "failover-refusal")
    assert refusal["guard"] and not refusal["enforced"] and refusal["loss_s"] == 900
    assert "--accept-data-loss" in refusal["via"] and "RTO" in refusal["price"]
    assert "not a bound on region loss" in refusal["text"]
    [alarm] = [b for b in bounds if b["kind"] == "detected"]
    assert not alarm["enforced"] and METRIC[backend] in alarm["via"]
    # Period 60 s x 1 datapoint, plus the minute the metric takes to be published.
    assert alarm["detection_s"] == 120
    assert "pages within 2 min after the lag passes 15 min" in alarm["text"]


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_an_alarm_tighter_than_the_rpo_is_never_the_bound(backend):
    """Were the alarm counted, a 5-minute threshold would become the declared worst case."""
    critical = _critical(_tamper(_resources(backend), ALARM[backend], threshold=300.0))
    assert not critical.met and critical.datasets["database"] != 300
    assert ("detected", 300) in _kinds(critical)


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_the_refusal_is_never_the_bound_however_tight(backend):
    """Were the guard counted, a 5-minute RPO would be met by construction on an async copy."""
    ev = evaluate_stack("prod", overrides={"dbBackend": backend, "criticalRpo": "5m"})
    critical = _critical([rules.Resource(r.type, r.name, r.inputs) for r in ev.resources])
    assert ("failover-refusal", 300) in _kinds(critical)
    assert not critical.met and critical.datasets["database"] != 300


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_without_the_alarm_nothing_detects_and_the_guard_stays(backend):
    resources = [r for r in _resources(backend) if r.name != ALARM[backend]]
    critical = _critical(resources)
    assert not critical.met and ("failover-refusal", 900) in _kinds(critical)
    assert not any(b.kind == "detected" for b in critical.bounds["database"])
    assert any(f"detected: nothing (no {METRIC[backend]} alarm)" in m for m in critical.mechanisms)


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
def test_an_alarm_that_cannot_page_detects_nothing(backend, change, why):
    critical = _critical(_tamper(_resources(backend), ALARM[backend], **change))
    assert not any(b.kind == "detected" for b in critical.bounds["database"])
    assert not critical.met
    assert any(f"{METRIC[backend]} alarm" in m and why in m for m in critical.mechanisms)


@pytest.mark.parametrize(
    ("backend", "remove"),
    [
        ("rds", lambda r: r.name == "dr-standby-replica"),
        ("supabase", lambda r: r.type.endswith("/subscription:Subscription")),
    ],
)
def test_without_a_sound_standby_there_is_no_guard_either(backend, remove):
    critical = _critical([r for r in _resources(backend) if not remove(r)])
    assert not critical.met
    assert not any(b.kind == "failover-refusal" for b in critical.bounds["database"])
    if backend == "rds":
        assert "database: nothing bounds data loss on region loss" in critical.problems
        assert critical.datasets["database"] is None
    else:  # the daily dump is all that is left: two days and the replication of the last one
        assert "database: worst case 2895 min exceeds the RPO 15 min" in critical.problems


def test_rds_replica_outside_the_dr_region_or_unencrypted_is_no_guard():
    for change in ({"region": "us-east-1"}, {"storageEncrypted": False}):
        critical = _critical(_tamper(_resources("rds"), "dr-standby-replica", **change))
        assert not critical.met and critical.datasets["database"] is None
        assert not any(b.kind == "failover-refusal" for b in critical.bounds["database"])


@pytest.mark.parametrize(("rpo", "seconds"), [("5m", 300), ("30m", 1800)])
@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_the_refusal_and_the_alarm_follow_the_critical_rpo(backend, rpo, seconds):
    ev = evaluate_stack("prod", overrides={"dbBackend": backend, "criticalRpo": rpo})
    assert ev.named(ALARM[backend]).inputs["threshold"] == seconds
    critical = _critical([rules.Resource(r.type, r.name, r.inputs) for r in ev.resources])
    assert {("failover-refusal", seconds), ("detected", seconds)} <= _kinds(critical)
    assert critical.datasets["database"] != seconds
