"""A compliant and a non-compliant stack for each rule of policy/aws_semantics/inventory.py.

``CASES`` joins ``tests/policy/semantic_fixtures.CASES`` (so the family's own tests check every
rule's fixtures and its docstring); tests/policy/test_inventory_rules.py adds the rest.
"""

from __future__ import annotations

import json

from components.inventory import inventory_bucket_policy, inventory_key_policy
from policy.aws_semantics.inventory import AUDIT_FIELDS, PARQUET_SERDE, SYMLINK_INPUT
from policy.rules import Resource

ACCOUNT = "111122223333"
COPY = "creator-audio-us-east-1-abc"
SOURCE = f"arn:aws:s3:::{COPY}"
STORE = "platform-dr-inventory-us-east-1-abc"
STORE_ARN = f"arn:aws:s3:::{STORE}"
KEY = "arn:aws:kms:us-east-1:111122223333:key/0123"


def inventory_props(**changes) -> dict:
    props = {
        "bucket": COPY,
        "region": "us-east-1",
        "name": "audit-prod",
        "enabled": True,
        "includedObjectVersions": "All",
        "schedule": {"frequency": "Daily"},
        "optionalFields": list(AUDIT_FIELDS),
        "destination": {
            "bucket": {
                "bucketArn": STORE_ARN,
                "format": "Parquet",
                "prefix": "inventory",
                "encryption": {"sseKms": {"keyId": KEY}},
            }
        },
    }
    props.update(changes)
    return props


def inventory_stack(store_region="us-east-1", inventory=True, **changes) -> list[Resource]:
    """ObjectInventory 'inv' over one copy of 'audio', its inventory and its inventory bucket."""
    found = [
        Resource(
            "platform-dr:inventory:ObjectInventory",
            "inv",
            {"datasets": {"audio": {"copies": ["us-east-1"], "component": "audio"}}},
        ),
        Resource("aws:s3/bucket:Bucket", "audio-us-east-1", {"region": "us-east-1"}),
        Resource("aws:s3/bucket:Bucket", "inv-us-east-1", {"region": store_region}),
    ]
    if inventory:
        found.append(
            Resource(
                "aws:s3/inventory:Inventory", "inv-audio-us-east-1", inventory_props(**changes)
            )
        )
    return found


def unscoped(policy: str, key: str) -> str:
    doc = json.loads(policy)
    for statement in doc["Statement"]:
        for operator in (statement.get("Condition") or {}).values():
            operator.pop(key, None)
    return json.dumps(doc)


def grants_stack(drop_from_bucket: str = "", drop_from_key: str = "") -> list[Resource]:
    bucket_policy = inventory_bucket_policy(STORE_ARN, ACCOUNT, [SOURCE])
    key_policy = inventory_key_policy(ACCOUNT, [SOURCE])
    if drop_from_bucket:
        bucket_policy = unscoped(bucket_policy, drop_from_bucket)
    if drop_from_key:
        key_policy = unscoped(key_policy, drop_from_key)
    return [
        Resource(
            "aws:s3/bucketPolicy:BucketPolicy",
            "inv-us-east-1-policy",
            {"bucket": STORE, "policy": bucket_policy},
        ),
        Resource(
            "aws:kms/key:Key", "inv-us-east-1-key", {"region": "us-east-1", "policy": key_policy}
        ),
    ]


def workgroup(**changes) -> list[Resource]:
    config = {
        "enforceWorkgroupConfiguration": True,
        "bytesScannedCutoffPerQuery": 10**11,
        "resultConfiguration": {
            "outputLocation": f"s3://{STORE}/athena-results/",
            "encryptionConfiguration": {"encryptionOption": "SSE_KMS", "kmsKeyArn": KEY},
        },
    }
    config.update(changes)
    return [Resource("aws:athena/workgroup:Workgroup", "inv-wg", {"configuration": config})]


def table(partition_keys=("dt",), **descriptor_changes) -> list[Resource]:
    descriptor = {
        "location": f"s3://{STORE}/inventory/{COPY}/audit-prod/hive/",
        "inputFormat": SYMLINK_INPUT,
        "serDeInfo": {"serializationLibrary": PARQUET_SERDE},
    }
    descriptor.update(descriptor_changes)
    return [
        Resource(
            "aws:glue/catalogTable:CatalogTable",
            "inv-table",
            {
                "partitionKeys": [{"name": k, "type": "string"} for k in partition_keys],
                "storageDescriptor": descriptor,
            },
        )
    ]


# rule name -> (compliant stack, non-compliant stack, a phrase the problem must contain)
CASES = {
    "s3-inventory-every-copy": (
        inventory_stack(),
        inventory_stack(store_region="us-west-2"),
        "only delivers within the source region",
    ),
    "s3-inventory-auditable": (
        inventory_stack(),
        inventory_stack(includedObjectVersions="Current"),
        "'All'",
    ),
    "s3-service-grants-scoped": (
        grants_stack(),
        grants_stack(drop_from_bucket="aws:SourceArn"),
        "without aws:SourceArn",
    ),
    "athena-workgroup-enforced": (
        workgroup(),
        workgroup(enforceWorkgroupConfiguration=False),
        "enforceWorkgroupConfiguration",
    ),
    "glue-inventory-table-readable": (
        table(),
        table(inputFormat="org.apache.hadoop.mapred.TextInputFormat"),
        "SymlinkTextInputFormat",
    ),
}
