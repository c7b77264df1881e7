"""database.dr_standby_mechanisms and rules.standby_mode: compliant and non-compliant cases."""

from __future__ import annotations

import dataclasses

import pytest

from policy import database, rules
from scripts.local.evaluate import evaluate_stack


def _resources(ev):
    return [rules.Resource(r.type, r.name, r.inputs) for r in ev.resources]


def _standby(found):
    (mechanism,) = [m for m in found if "DR standby" in m.description]
    return mechanism


def test_standby_mode_boundary():
    assert rules.standby_mode(3600, 3600) == rules.WARM_STANDBY
    assert rules.standby_mode(3601, 3600) == rules.PILOT_LIGHT


def test_prod_is_compliant_and_posture_shows_the_choice_and_reason(prod):
    resources = _resources(prod)
    objectives = rules.objectives_of(resources)
    mechanism = _standby(database.dr_standby_mechanisms(resources, objectives))
    assert mechanism.problems == [] and mechanism.data_class == "critical"
    assert "warm-standby, because critical RTO 1h" in mechanism.description
    critical = [v for v in rules.class_verdicts(resources, objectives) if v.name == "critical"][0]
    assert any("DR standby in us-west-2" in m for m in critical.mechanisms)


@pytest.fixture(scope="module")
def rds_prod():
    return evaluate_stack("prod", overrides={"dbBackend": "rds"})


def test_rds_replica_is_checked(rds_prod):
    resources = _resources(rds_prod)
    objectives = rules.objectives_of(resources)
    assert _standby(database.dr_standby_mechanisms(resources, objectives)).problems == []
    without = [r for r in resources if r.name != "dr-standby-replica"]
    problems = _standby(database.dr_standby_mechanisms(without, objectives)).problems
    assert problems == ["dr-standby: no cross-region read replica"]


def _tamper(resources, name, **props):
    return [
        dataclasses.replace(r, props={**r.props, **props}) if r.name == name else r
        for r in resources
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("dr-standby", {"mode": "pilot-light"}), "needs warm-standby"),
        (("dr-standby-primary", {"failoverRoutingPolicies": []}), "failover records"),
        (("dr-standby-primary", {"healthCheckId": None}), "no health check"),
        (("dr-standby-primary-unhealthy", {"region": "us-west-2"}), "us-east-1"),
        (("dr-standby-primary-unhealthy", {"alarmActions": []}), "notifies no one"),
    ],
)
def test_non_compliant_standby_is_reported_and_fails_the_critical_class(prod, change, expected):
    name, props = change
    resources = _tamper(_resources(prod), name, **props)
    objectives = rules.objectives_of(resources)
    problems = _standby(database.dr_standby_mechanisms(resources, objectives)).problems
    assert len(problems) == 1 and expected in problems[0]
    violations = rules.objective_violations(resources)
    assert any(expected in v.message and v.resource == "class critical" for v in violations)
