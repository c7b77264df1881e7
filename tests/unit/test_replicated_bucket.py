"""ReplicatedBucket, read off the resource inputs the real program declares under Pulumi mocks."""

from __future__ import annotations

import json

import pytest

from components.objectives import parse_objectives
from components.replicated_bucket import ObjectLock, lifecycle_plan
from scripts.local.evaluate import evaluate_stack

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
DATASETS = {
    "creator-audio": "critical",
    "user-assets": "important",
    "generated-archive": "important",
}


def _copy_resources(ev, dataset, region):
    prefix = f"{dataset}-{region}"
    return {r.name[len(prefix) + 1 :]: r for r in ev.resources if r.name.startswith(prefix + "-")}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("region", REGIONS)
def test_every_copy_is_secured_on_its_own(prod, dataset, region):
    bucket = prod.named(f"{dataset}-{region}")
    assert bucket.type == "aws:s3/bucket:Bucket" and bucket.region == region
    assert bucket.tags["backup-class"] == DATASETS[dataset]
    assert bucket.inputs.get("forceDestroy") is False
    parts = _copy_resources(prod, dataset, region)
    assert parts["versioning"].inputs["versioningConfiguration"]["status"] == "Enabled"
    sse = parts["encryption"].inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert sse["sseAlgorithm"] == "aws:kms"
    key_arn = prod.outputs["bucketKeyArns"][dataset][region]
    assert sse["kmsMasterKeyId"] == key_arn and f":{region}:" in key_arn
    block = parts["public-access"].inputs
    assert all(
        block[f] is True
        for f in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    assert parts["ownership"].inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    policy = json.loads(parts["policy"].inputs["policy"])
    deny_http = [s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport"][0]
    assert deny_http["Effect"] == "Deny"
    assert deny_http["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rule = parts["lifecycle"].inputs["rules"][0]
    assert rule["transitions"] and rule["noncurrentVersionExpiration"]["noncurrentDays"] >= 7
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7
    assert all(p.region == region for p in parts.values() if "region" in p.inputs)


def test_keys_are_multi_region_with_rotation_and_replicas(prod):
    primary = prod.named("creator-audio-key-us-east-1")
    assert primary.inputs["multiRegion"] is True and primary.inputs["enableKeyRotation"] is True
    for region in REGIONS[1:]:
        replica = prod.named(f"creator-audio-key-{region}")
        assert replica.type == "aws:kms/replicaKey:ReplicaKey" and replica.region == region


def test_replication_is_v2_one_rule_per_destination_with_rtc_for_15_minute_rpo(prod):
    config = prod.named("creator-audio-replication")
    assert config.type == "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
    assert config.region == "us-east-1"
    rules = config.inputs["rules"]
    assert [r["id"] for r in rules] == ["to-us-west-2", "to-eu-west-1"]
    assert len({r["priority"] for r in rules}) == 2
    keys = prod.outputs["bucketKeyArns"]["creator-audio"]
    arns = prod.outputs["bucketArns"]["creator-audio"]
    for rule, region in zip(rules, REGIONS[1:], strict=True):
        assert "filter" in rule and rule["status"] == "Enabled"
        assert rule["deleteMarkerReplication"]["status"] == "Enabled"
        criteria = rule["sourceSelectionCriteria"]
        assert criteria["replicaModifications"]["status"] == "Enabled"
        assert criteria["sseKmsEncryptedObjects"]["status"] == "Enabled"
        destination = rule["destination"]
        assert destination["bucket"] == arns[region]
        assert destination["encryptionConfiguration"]["replicaKmsKeyId"] == keys[region]
        assert destination["replicationTime"] == {"status": "Enabled", "time": {"minutes": 15}}
        assert destination["metrics"]["status"] == "Enabled"


def test_rtc_on_every_class_because_nothing_else_bounds_s3_replication(prod):
    """Without RTC a copy's lag is only detected by an alarm, and an alarm bounds nothing."""
    for dataset in ("user-assets", "generated-archive"):  # important class, RPO 1 h
        rules = prod.named(f"{dataset}-replication").inputs["rules"]
        assert all(r["destination"]["replicationTime"]["status"] == "Enabled" for r in rules)
    relaxed = evaluate_stack("prod", overrides={"criticalRpo": "2h"})
    rules = relaxed.named("creator-audio-replication").inputs["rules"]
    assert all(r["destination"]["replicationTime"]["status"] == "Enabled" for r in rules)


def test_replication_role_is_least_privilege(prod):
    role = prod.named("creator-audio-replication-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "s3.amazonaws.com"}
    policy = prod.named("creator-audio-replication-policy")
    statements = json.loads(policy.inputs["policy"])["Statement"]

    def listed(value):
        return [value] if isinstance(value, str) else value

    actions = [a for s in statements for a in listed(s["Action"])]
    assert not [a for a in actions if "*" in a]
    resources = {r for s in statements for r in listed(s["Resource"])}
    arns = prod.outputs["bucketArns"]["creator-audio"]
    keys = prod.outputs["bucketKeyArns"]["creator-audio"]
    expected = {arns["us-east-1"], f"{arns['us-east-1']}/*"}
    expected |= {f"{arns[r]}/*" for r in REGIONS[1:]} | set(keys.values())
    assert resources == expected


def test_replication_waits_for_versioning_on_both_sides(prod):
    """depends_on is not visible to mocks; the dependency is carried by resource order instead:
    every versioning resource is registered before the replication config that needs it."""
    order = [r.name for r in prod.resources]
    replication = order.index("creator-audio-replication")
    for region in REGIONS:
        assert order.index(f"creator-audio-{region}-versioning") < replication


def test_alarms_on_latency_and_failures_go_to_the_encrypted_topic(prod):
    topic = prod.outputs["alertTopicArns"]["us-east-1"]
    for region in REGIONS[1:]:
        latency = prod.named(f"creator-audio-latency-{region}").inputs
        failed = prod.named(f"creator-audio-failed-{region}").inputs
        assert latency["metricName"] == "ReplicationLatency" and latency["threshold"] == 900
        assert failed["metricName"] == "OperationsFailedReplication" and failed["threshold"] == 0
        assert latency["alarmActions"] == [topic] == failed["alarmActions"]
        assert latency["dimensions"]["RuleId"] == f"to-{region}"
    # RTC everywhere: the alarm pages when a copy falls behind RTC's 15 minutes, even in a class
    # whose RPO is longer.
    assert prod.named("user-assets-latency-us-west-2").inputs["threshold"] == 900
    topics = prod.of_type("aws:sns/topic:Topic")
    assert topics and all(t.inputs.get("kmsMasterKeyId") for t in topics)


def test_object_lock_on_source_and_replicas():
    """Backup buckets turn object lock on; every copy gets the same default retention."""
    import pulumi

    from components.replicated_bucket import ReplicatedBucket, ReplicatedBucketArgs
    from scripts.local.evaluate import RecordingMocks

    objectives = parse_objectives(
        {
            "platform-dr:primaryRegion": "us-east-1",
            "platform-dr:drRegion": "us-west-2",
            "platform-dr:thirdRegion": "eu-west-1",
        },
        "t",
    )
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="platform-dr", stack="t", preview=False)

    @pulumi.runtime.test
    def declare():
        bucket = ReplicatedBucket(
            "backups",
            ReplicatedBucketArgs(
                objectives, "critical", "backups", object_lock=ObjectLock("COMPLIANCE", 14)
            ),
        )
        return bucket.primary_bucket_name

    declare()
    by_name = {r.name: r for r in mocks.records}
    for region in REGIONS:
        assert by_name[f"backups-{region}"].inputs["objectLockEnabled"] is True
        lock = by_name[f"backups-{region}-object-lock"].inputs
        assert lock["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 14}
    policy = [r for r in mocks.records if r.type == "aws:iam/rolePolicy:RolePolicy"][0]
    assert "s3:GetObjectRetention" in policy.inputs["policy"]


def test_bad_arguments_are_refused_with_the_argument_named():
    from components.objectives import ConfigError

    with pytest.raises(ConfigError, match="objectLock.mode"):
        ObjectLock("LOCKED", 7)
    objective = parse_objectives(
        {
            "platform-dr:primaryRegion": "us-east-1",
            "platform-dr:drRegion": "us-west-2",
            "platform-dr:thirdRegion": "eu-west-1",
        },
        "t",
    ).of("important")
    with pytest.raises(ConfigError, match="archiveProfile"):
        lifecycle_plan(objective, "forever")


def test_archive_heavy_goes_cold_early(prod):
    archive = prod.named("generated-archive-us-east-1-lifecycle").inputs["rules"][0]
    assets = prod.named("user-assets-us-east-1-lifecycle").inputs["rules"][0]
    assert archive["transitions"][0]["days"] < assets["transitions"][1]["days"]
    assert archive["transitions"][-1]["storageClass"] == "DEEP_ARCHIVE"
