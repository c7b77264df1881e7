"""The object-scale audit's AWS-semantics rules (policy/inventory_rules.py).

``INVENTORY_CASES`` (compliant props, non-compliant props, a phrase the problem must contain) joins
``tests/policy/test_rules.CASES``, so every rule is checked by the shared tests there and in
test_pack.py. The delivery check of the inventory mechanism is tested here on the real prod stack,
each requirement broken on its own: the class must turn NOT MET.
"""

from __future__ import annotations

import copy
import json

import pytest

from components.inventory import inventory_bucket_policy, inventory_key_policy
from policy import inventory_rules, rules

ACCOUNT = "111122223333"
SOURCE = "arn:aws:s3:::creator-audio-us-east-1-abc"
STORE = "arn:aws:s3:::platform-dr-inventory-us-east-1-abc"
KEY = "arn:aws:kms:us-east-1:111122223333:key/0123"


def _inventory(**changes) -> dict:
    props = {
        "bucket": "creator-audio-us-east-1-abc",
        "region": "us-east-1",
        "name": "audit-prod",
        "enabled": True,
        "includedObjectVersions": "All",
        "schedule": {"frequency": "Daily"},
        "optionalFields": list(inventory_rules.AUDIT_FIELDS),
        "destination": {
            "bucket": {
                "bucketArn": STORE,
                "format": "Parquet",
                "prefix": "inventory",
                "encryption": {"sseKms": {"keyId": KEY}},
            }
        },
    }
    props.update(changes)
    return props


def _workgroup(**changes) -> dict:
    config = {
        "enforceWorkgroupConfiguration": True,
        "bytesScannedCutoffPerQuery": 10**11,
        "resultConfiguration": {
            "outputLocation": "s3://store/athena-results/",
            "encryptionConfiguration": {"encryptionOption": "SSE_KMS", "kmsKeyArn": KEY},
        },
    }
    config.update(changes)
    return {"name": "wg", "configuration": config}


def _table(**descriptor_changes) -> dict:
    descriptor = {
        "location": "s3://store/inventory/creator-audio/audit-prod/hive/",
        "inputFormat": inventory_rules.SYMLINK_INPUT,
        "serDeInfo": {"serializationLibrary": inventory_rules.PARQUET_SERDE},
    }
    descriptor.update(descriptor_changes)
    return {
        "name": "t",
        "partitionKeys": [{"name": "dt", "type": "string"}],
        "storageDescriptor": descriptor,
    }


def _unscoped(policy: str, *keys: str) -> str:
    doc = json.loads(policy)
    for statement in doc["Statement"]:
        for operator in (statement.get("Condition") or {}).values():
            for key in keys:
                operator.pop(key, None)
    return json.dumps(doc)


INVENTORY_CASES: dict[str, tuple[dict, dict, str]] = {
    "s3-inventory-auditable": (
        _inventory(),
        _inventory(includedObjectVersions="Current"),
        "'All'",
    ),
    "s3-inventory-delivery-scoped": (
        {"bucket": "b", "policy": inventory_bucket_policy(STORE, ACCOUNT, [SOURCE])},
        {
            "bucket": "b",
            "policy": _unscoped(inventory_bucket_policy(STORE, ACCOUNT, [SOURCE]), "aws:SourceArn"),
        },
        "aws:SourceArn",
    ),
    "kms-s3-service-scoped": (
        {"enableKeyRotation": True, "policy": inventory_key_policy(ACCOUNT, [SOURCE])},
        {
            "enableKeyRotation": True,
            "policy": _unscoped(inventory_key_policy(ACCOUNT, [SOURCE]), "aws:SourceAccount"),
        },
        "aws:SourceAccount",
    ),
    "athena-workgroup-enforced": (
        _workgroup(),
        _workgroup(enforceWorkgroupConfiguration=False),
        "enforceWorkgroupConfiguration",
    ),
    "glue-inventory-table-readable": (
        _table(),
        _table(inputFormat="org.apache.hadoop.mapred.TextInputFormat"),
        "SymlinkTextInputFormat",
    ),
}

# Rules that pass a resource setting nothing, and why (see test_rules.test_empty_props).
EMPTY_IS_COMPLIANT = {
    "s3-inventory-delivery-scoped": "a bucket policy without an S3 delivery grant grants nothing",
    "kms-s3-service-scoped": "a key policy without an S3 service grant grants S3 nothing",
    "glue-inventory-table-readable": "a table with no location is not an inventory table",
}


@pytest.mark.parametrize(
    ("rule", "props", "phrase"),
    [
        ("s3-inventory-auditable", _inventory(schedule={"frequency": "Weekly"}), "'Daily'"),
        ("s3-inventory-auditable", _inventory(enabled=False), "disabled"),
        ("s3-inventory-auditable", _inventory(optionalFields=["Size"]), "ETag"),
        (
            "s3-inventory-auditable",
            _inventory(destination={"bucket": {"bucketArn": STORE, "format": "CSV"}}),
            "SSE-KMS",
        ),
        ("athena-workgroup-enforced", _workgroup(bytesScannedCutoffPerQuery=None), "cost bound"),
        (
            "athena-workgroup-enforced",
            _workgroup(
                resultConfiguration={
                    "outputLocation": "s3://b/r/",
                    "encryptionConfiguration": {"encryptionOption": "SSE_S3"},
                }
            ),
            "'SSE_S3'",
        ),
        ("glue-inventory-table-readable", {**_table(), "partitionKeys": []}, "dt"),
    ],
)
def test_each_requirement_of_a_rule_fails_on_its_own(rule, props, phrase):
    (found,) = [r for r in rules.RESOURCE_RULES if r.name == rule]
    problems = found.check(props)
    assert any(phrase in p for p in problems), problems


def test_a_service_grant_with_a_wildcard_action_is_still_judged():
    doc = json.loads(inventory_bucket_policy(STORE, ACCOUNT, [SOURCE]))
    grant = doc["Statement"][-1]
    grant["Action"] = "s3:Put*"
    grant.pop("Condition")
    problems = inventory_rules.s3_inventory_delivery_scoped({"policy": json.dumps(doc)})
    assert any("aws:SourceAccount" in p for p in problems)


# ---------------------------------------------------------------------------------------------
# The delivery check on the real prod graph: each broken requirement makes the class NOT MET.


def _resources(evaluation):
    return [rules.Resource(r.type, r.name, copy.deepcopy(r.inputs)) for r in evaluation.resources]


def _verdict(resources, data_class="critical"):
    objectives = rules.objectives_of(resources)
    return {v.name: v for v in rules.class_verdicts(resources, objectives)}[data_class]


def _patch(resources, name, change):
    for i, r in enumerate(resources):
        if r.name == name:
            props = copy.deepcopy(dict(r.props))
            change(props)
            resources[i] = rules.Resource(r.type, r.name, props)
            return
    raise KeyError(name)


def test_prod_declares_a_deliverable_inventory_for_every_copy(prod):
    resources = _resources(prod)
    verdict = _verdict(resources)
    assert verdict.met, verdict.problems
    audit = [m for m in verdict.mechanisms if "S3 Inventory" in m]
    assert audit and "creator-audio" in audit[0] and "3 copies" in audit[0]


def _drop_statement(sid):
    def change(props):
        doc = json.loads(props["policy"])
        doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != sid]
        props["policy"] = json.dumps(doc)

    return change


def _narrow_source(sid):
    def change(props):
        doc = json.loads(props["policy"])
        for s in doc["Statement"]:
            if s.get("Sid") == sid:
                s["Condition"]["ArnLike"]["aws:SourceArn"] = ["arn:aws:s3:::someone-else"]
        props["policy"] = json.dumps(doc)

    return change


@pytest.mark.parametrize(
    ("name", "change", "phrase"),
    [
        ("inventory-us-west-2-policy", _drop_statement("S3InventoryDelivers"), "bucket policy"),
        ("inventory-us-west-2-policy", _narrow_source("S3InventoryDelivers"), "bucket policy"),
        ("inventory-eu-west-1-key", _drop_statement("S3InventoryEncryptsReports"), "key's policy"),
        ("inventory-us-west-2", lambda p: p.update(region="us-east-2"), "only delivers within"),
        (
            "inventory-creator-audio-eu-west-1",
            lambda p: p.update(includedObjectVersions="Current"),
            "'All'",
        ),
        (
            "inventory-creator-audio-us-east-1",
            lambda p: p.update(region="us-west-2"),
            "declared in",
        ),
    ],
)
def test_a_broken_delivery_makes_the_class_not_met(prod, name, change, phrase):
    resources = _resources(prod)
    _patch(resources, name, change)
    verdict = _verdict(resources)
    assert not verdict.met
    assert any(phrase in p for p in verdict.problems), verdict.problems


def test_a_copy_without_an_inventory_makes_the_class_not_met(prod):
    resources = [r for r in _resources(prod) if r.name != "inventory-creator-audio-us-west-2"]
    verdict = _verdict(resources)
    assert not verdict.met
    assert "creator-audio: no S3 Inventory on the us-west-2 copy" in verdict.problems


def test_the_audit_mechanism_bounds_no_loss(prod):
    """Detection only: removing replication leaves the dataset unbounded despite its inventory."""
    resources = [r for r in _resources(prod) if r.name != "creator-audio-replication"]
    verdict = _verdict(resources)
    assert not verdict.met
    assert "creator-audio: nothing bounds data loss on region loss" in verdict.problems
