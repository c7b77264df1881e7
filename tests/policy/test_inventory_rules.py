"""The object-scale audit's rules in the AWS-semantics family (policy/aws_semantics/inventory.py).

Their compliant and non-compliant fixtures (tests/policy/inventory_fixtures.py) are in the
family's CASES, so test_aws_semantics.py checks them with every other rule. Here: each requirement
of a rule failing on its own, and the real prod graph with one fault put back at a time (a fault
in a declared resource, never an edited verdict) making posture NOT MET.
"""

from __future__ import annotations

import copy
import json

import pytest

from policy import aws_semantics, rules
from tests.policy import inventory_fixtures as fx

RULES = {rule.name: rule for rule in aws_semantics.RULES}


def _problems(name, resources):
    return [m for _, m in RULES[name].check(aws_semantics.Stack(resources))]


@pytest.mark.parametrize(
    ("rule", "stack", "phrase"),
    [
        ("s3-inventory-every-copy", fx.inventory_stack(inventory=False), "no S3 Inventory"),
        (
            "s3-inventory-every-copy",
            fx.inventory_stack(region="us-west-2"),
            "declared in us-west-2",
        ),
        ("s3-inventory-auditable", fx.inventory_stack(schedule={"frequency": "Weekly"}), "'Daily'"),
        ("s3-inventory-auditable", fx.inventory_stack(enabled=False), "disabled"),
        ("s3-inventory-auditable", fx.inventory_stack(optionalFields=["Size"]), "ETag"),
        (
            "s3-inventory-auditable",
            fx.inventory_stack(
                destination={"bucket": {"bucketArn": fx.STORE_ARN, "format": "CSV"}}
            ),
            "SSE-KMS",
        ),
        (
            "s3-service-grants-scoped",
            fx.grants_stack(drop_from_key="aws:SourceAccount"),
            "key policy",
        ),
        ("athena-workgroup-enforced", fx.workgroup(bytesScannedCutoffPerQuery=None), "cost bound"),
        (
            "athena-workgroup-enforced",
            fx.workgroup(
                resultConfiguration={
                    "outputLocation": "s3://b/r/",
                    "encryptionConfiguration": {"encryptionOption": "SSE_S3"},
                }
            ),
            "'SSE_S3'",
        ),
        ("glue-inventory-table-readable", fx.table(partition_keys=()), "dt"),
    ],
)
def test_each_requirement_of_a_rule_fails_on_its_own(rule, stack, phrase):
    assert any(phrase in p for p in _problems(rule, stack)), _problems(rule, stack)


def test_a_wildcard_grant_to_s3_is_still_judged():
    (policy, key) = fx.grants_stack()
    doc = json.loads(policy.props["policy"])
    grant = next(
        s for s in doc["Statement"] if s.get("Principal") == {"Service": "s3.amazonaws.com"}
    )
    grant["Action"] = "s3:Put*"
    grant.pop("Condition")
    broken = [
        rules.Resource(policy.type, policy.name, {**policy.props, "policy": json.dumps(doc)}),
        key,
    ]
    assert any("aws:SourceAccount" in p for p in _problems("s3-service-grants-scoped", broken))


def test_a_table_that_is_not_over_an_inventory_is_not_judged():
    assert _problems("glue-inventory-table-readable", fx.table(location="s3://b/other/")) == []


# -- the real prod graph, one fault at a time -----------------------------------------------------


def _resources(evaluation):
    return [rules.Resource(r.type, r.name, copy.deepcopy(r.inputs)) for r in evaluation.resources]


def _patch(resources, name, change):
    for i, r in enumerate(resources):
        if r.name == name:
            props = copy.deepcopy(dict(r.props))
            change(props)
            resources[i] = rules.Resource(r.type, r.name, props)
            return
    raise KeyError(name)


def _violations(resources):
    return [(v.rule, v.resource, v.message) for v in rules.semantic_violations(resources)]


def test_prod_declares_an_auditable_deliverable_inventory_for_every_copy(prod):
    resources = _resources(prod)
    assert _violations(resources) == []
    verdicts = rules.class_verdicts(resources, rules.objectives_of(resources))
    critical = next(v for v in verdicts if v.name == "critical")
    audit = [m for m in critical.mechanisms if "S3 Inventory" in m]
    assert audit and "creator-audio" in audit[0] and "3 copies" in audit[0]


def _drop_statement(sid):
    def change(props):
        doc = json.loads(props["policy"])
        doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != sid]
        props["policy"] = json.dumps(doc)

    return change


@pytest.mark.parametrize(
    ("name", "change", "rule"),
    [
        # The generic delivery rule of the family sees S3 Inventory's reports too.
        (
            "inventory-us-west-2-policy",
            _drop_statement("S3InventoryPutObject"),
            "delivery-targets-writable",
        ),
        (
            "inventory-eu-west-1-key",
            _drop_statement("S3InventoryEncryptsReports"),
            "delivery-targets-writable",
        ),
        ("inventory-us-west-2", lambda p: p.update(region="us-east-2"), "s3-inventory-every-copy"),
        (
            "inventory-creator-audio-us-east-1",
            lambda p: p.update(region="us-west-2"),
            "s3-inventory-every-copy",
        ),
        (
            "inventory-creator-audio-eu-west-1",
            lambda p: p.update(includedObjectVersions="Current"),
            "s3-inventory-auditable",
        ),
        (
            "inventory-us-east-1-workgroup",
            lambda p: p["configuration"].update(enforceWorkgroupConfiguration=False),
            "athena-workgroup-enforced",
        ),
    ],
)
def test_a_broken_inventory_is_reported_by_its_rule(prod, name, change, rule):
    resources = _resources(prod)
    _patch(resources, name, change)
    assert rule in {found[0] for found in _violations(resources)}


def test_a_copy_without_an_inventory_is_reported(prod):
    resources = [r for r in _resources(prod) if r.name != "inventory-creator-audio-us-west-2"]
    found = _violations(resources)
    assert (
        "s3-inventory-every-copy",
        "inventory",
        "creator-audio: no S3 Inventory on the us-west-2 copy",
    ) in found


def test_the_audit_mechanism_bounds_no_loss(prod):
    """Detection only: without replication the dataset is unbounded despite its inventory."""
    resources = [r for r in _resources(prod) if r.name != "creator-audio-replication"]
    verdicts = rules.class_verdicts(resources, rules.objectives_of(resources))
    critical = next(v for v in verdicts if v.name == "critical")
    assert not critical.met
    assert any("creator-audio" in p and "bounds" in p for p in critical.problems), critical.problems
