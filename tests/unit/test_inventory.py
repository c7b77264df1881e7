"""ObjectInventory and BatchRoles, read off what the real program declares under Pulumi mocks."""

from __future__ import annotations

import json

import pytest

from components.inventory import (
    ATHENA_PREFIX,
    BATCH_PREFIX,
    INVENTORY_COLUMNS,
    INVENTORY_PREFIX,
    OPTIONAL_FIELDS,
)
from policy.aws_semantics.inventory import AUDIT_FIELDS, PARQUET_SERDE, SYMLINK_INPUT

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
DATASETS = ("creator-audio", "user-assets", "generated-archive")
ACCOUNT = "111122223333"


def _listed(value):
    return [value] if isinstance(value, str) else list(value)


def _statements(resource, field="policy"):
    return json.loads(resource.inputs[field])["Statement"]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("region", REGIONS)
def test_every_copy_has_a_daily_parquet_all_versions_inventory_in_its_region(prod, dataset, region):
    inventory = prod.named(f"inventory-{dataset}-{region}")
    assert inventory.type == "aws:s3/inventory:Inventory" and inventory.region == region
    props = inventory.inputs
    assert props["bucket"] == prod.outputs["buckets"][dataset][region]
    assert props["name"] == "audit-prod" and props["enabled"] is True
    assert props["includedObjectVersions"] == "All"
    assert props["schedule"] == {"frequency": "Daily"}
    assert set(props["optionalFields"]) == set(OPTIONAL_FIELDS) >= set(AUDIT_FIELDS)
    destination = props["destination"]["bucket"]
    store = prod.outputs["inventory"]["buckets"][region]
    assert destination["bucketArn"] == f"arn:aws:s3:::{store}"
    assert destination["format"] == "Parquet" and destination["prefix"] == INVENTORY_PREFIX
    assert destination["accountId"] == ACCOUNT
    key = prod.outputs["inventory"]["keyArns"][region]
    assert destination["encryption"]["sseKms"]["keyId"] == key and f":{region}:" in key


@pytest.mark.parametrize("region", REGIONS)
def test_each_inventory_bucket_is_secured_like_every_copy(prod, region):
    store = f"inventory-{region}"
    bucket = prod.named(store)
    assert bucket.region == region and bucket.inputs["forceDestroy"] is False
    assert bucket.tags["backup-class"] == "operational"
    assert prod.named(f"{store}-versioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"
    }
    sse = prod.named(f"{store}-encryption").inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert (
        sse["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
        == (prod.outputs["inventory"]["keyArns"][region])
    )
    block = prod.named(f"{store}-public-access").inputs
    assert all(block[f] is True for f in ("blockPublicAcls", "blockPublicPolicy"))
    assert all(block[f] is True for f in ("ignorePublicAcls", "restrictPublicBuckets"))
    ownership = prod.named(f"{store}-ownership").inputs["rule"]["objectOwnership"]
    assert ownership == "BucketOwnerEnforced"
    key = prod.named(f"{store}-key")
    assert key.inputs["enableKeyRotation"] is True and key.region == region
    rules = {r["id"]: r for r in prod.named(f"{store}-lifecycle").inputs["rules"]}
    assert rules["inventory-reports"]["filter"] == {"prefix": f"{INVENTORY_PREFIX}/"}
    assert rules["inventory-reports"]["expiration"] == {"days": 14}
    assert rules["athena-results"]["expiration"] == {"days": 7}
    assert rules["batch-manifests-and-reports"]["expiration"] == {"days": 90}
    assert rules["clean-up"]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}


@pytest.mark.parametrize("region", REGIONS)
def test_only_s3_may_deliver_and_only_for_this_regions_copies(prod, region):
    store = f"inventory-{region}"
    statements = {s["Sid"]: s for s in _statements(prod.named(f"{store}-policy"))}
    assert statements["DenyInsecureTransport"]["Effect"] == "Deny"
    grant = statements["S3InventoryPutObject"]
    store_name = prod.outputs["inventory"]["buckets"][region]
    assert grant["Principal"] == {"Service": "s3.amazonaws.com"}
    assert grant["Action"] == "s3:PutObject"
    assert grant["Resource"] == f"arn:aws:s3:::{store_name}/{INVENTORY_PREFIX}/*"
    copies = {prod.outputs["bucketArns"][d][region] for d in DATASETS}
    assert set(grant["Condition"]["ArnLike"]["aws:SourceArn"]) == copies
    assert grant["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    key_grant = {s["Sid"]: s for s in _statements(prod.named(f"{store}-key"))}
    encrypt = key_grant["S3InventoryEncryptsReports"]
    assert encrypt["Action"] == ["kms:GenerateDataKey"]
    assert set(encrypt["Condition"]["ArnLike"]["aws:SourceArn"]) == copies
    assert encrypt["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


@pytest.mark.parametrize("region", ("us-east-1", "us-west-2"))
def test_glue_and_athena_in_the_primary_and_dr_regions_cover_every_copy(prod, region):
    athena = prod.outputs["inventory"]["athena"][region]
    assert athena["workgroup"] == "platform-dr-prod-audit"
    assert athena["database"] == "platform_dr_prod_inventory"
    assert prod.named(f"inventory-{region}-database").region == region
    for dataset in DATASETS:
        for copy in REGIONS:
            table = prod.named(f"inventory-{region}-{dataset}-{copy}")
            assert table.region == region
            assert table.inputs["name"] == athena["tables"][dataset][copy]
            descriptor = table.inputs["storageDescriptor"]
            source = prod.outputs["buckets"][dataset][copy]
            store = prod.outputs["inventory"]["buckets"][copy]
            assert descriptor["location"] == f"s3://{store}/inventory/{source}/audit-prod/hive/"
            assert descriptor["inputFormat"] == SYMLINK_INPUT
            assert descriptor["serDeInfo"]["serializationLibrary"] == PARQUET_SERDE
            assert [c["name"] for c in descriptor["columns"]] == [
                c for c, _, _ in INVENTORY_COLUMNS
            ]
            assert table.inputs["partitionKeys"] == [{"name": "dt", "type": "string"}]
            assert table.inputs["parameters"]["projection.dt.type"] == "injected"
    workgroup = prod.named(f"inventory-{region}-workgroup").inputs["configuration"]
    assert workgroup["enforceWorkgroupConfiguration"] is True
    results = workgroup["resultConfiguration"]
    store = prod.outputs["inventory"]["buckets"][region]
    assert results["outputLocation"] == f"s3://{store}/{ATHENA_PREFIX}/"
    assert results["encryptionConfiguration"] == {
        "encryptionOption": "SSE_KMS",
        "kmsKeyArn": prod.outputs["inventory"]["keyArns"][region],
    }
    assert workgroup["bytesScannedCutoffPerQuery"] > 0
    assert "eu-west-1" not in prod.outputs["inventory"]["athena"]


def test_batch_replication_role_may_only_initiate_replication_of_primary_copies(prod):
    role = prod.named("inventory-batch-replication")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    statements = {
        s["Sid"]: s for s in _statements(prod.named("inventory-batch-replication-policy"))
    }
    primaries = {prod.outputs["bucketArns"][d]["us-east-1"] for d in DATASETS}
    assert statements["InitiateReplication"]["Action"] == "s3:InitiateReplication"
    assert set(statements["InitiateReplication"]["Resource"]) == {f"{a}/*" for a in primaries}
    generator = statements["GenerateManifestFromReplicationConfig"]
    assert set(generator["Resource"]) == primaries
    store = prod.outputs["inventory"]["buckets"]["us-east-1"]
    assert statements["ManifestsAndReports"]["Resource"] == [
        f"arn:aws:s3:::{store}/{BATCH_PREFIX}/*"
    ]
    actions = {a for s in statements.values() for a in _listed(s["Action"])}
    assert actions == {
        "s3:InitiateReplication",
        "s3:GetReplicationConfiguration",
        "s3:PutInventoryConfiguration",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }


def test_batch_restore_role_reads_and_writes_back_only_the_dataset_copies(prod):
    statements = _statements(prod.named("inventory-batch-restore-policy"))
    by_sid = {s["Sid"]: s for s in statements}
    copies = {prod.outputs["bucketArns"][d][r] for d in DATASETS for r in REGIONS}
    assert set(by_sid["WriteBackOnTop"]["Resource"]) == {f"{a}/*" for a in copies}
    assert set(by_sid["ReadVersions"]["Resource"]) == {f"{a}/*" for a in copies}
    assert "s3:DeleteObject" not in {a for s in statements for a in _listed(s["Action"])}
    kms = [s for s in statements if "kms:Decrypt" in _listed(s["Action"])]
    for statement in kms:
        region = statement["Condition"]["StringEquals"]["kms:ViaService"].split(".")[1]
        assert all(f":{region}:" in key for key in _listed(statement["Resource"]))


def test_operator_policy_names_the_workgroups_tables_and_batch_roles(prod):
    statements = {s["Sid"]: s for s in _statements(prod.named("inventory-operator"))}
    assert statements["AthenaUseast1"]["Resource"] == (
        f"arn:aws:athena:us-east-1:{ACCOUNT}:workgroup/platform-dr-prod-audit"
    )
    assert (
        f"arn:aws:glue:us-west-2:{ACCOUNT}:table/platform_dr_prod_inventory/*"
        in statements["GlueUswest2"]["Resource"]
    )
    roles = set(statements["PassBatchRoles"]["Resource"])
    assert roles == {
        prod.outputs["inventory"]["batchReplicationRoleArn"],
        prod.outputs["inventory"]["batchRestoreRoleArn"],
    }


def test_dr_inventories_its_adopted_copies_under_its_own_configuration(prod, dr):
    """A rebuild stack adds its own inventory to prod's copies instead of taking over prod's."""
    for region in ("us-west-2", "eu-west-1"):
        inventory = dr.named(f"inventory-creator-audio-{region}").inputs
        assert inventory["bucket"] == prod.outputs["buckets"]["creator-audio"][region]
        assert (
            inventory["name"]
            == "audit-dr"
            != prod.named(f"inventory-creator-audio-{region}").inputs["name"]
        )
    assert set(dr.outputs["inventory"]["athena"]) == {"us-west-2", "eu-west-1"}
    assert dr.outputs["inventory"]["datasets"]["creator-audio"]["primaryRegion"] == "us-west-2"


def test_outputs_carry_what_drctl_audit_needs(prod):
    out = prod.outputs["inventory"]
    assert out["configId"] == "audit-prod" and out["prefix"] == INVENTORY_PREFIX
    audio = out["datasets"]["creator-audio"]
    assert audio["dataClass"] == "critical" and audio["primaryRegion"] == "us-east-1"
    assert audio["noncurrentExpiryDays"] == 365
    assert audio["copies"] == prod.outputs["buckets"]["creator-audio"]
