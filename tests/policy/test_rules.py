"""Every secure-default rule in policy/rules.py: one compliant and one non-compliant case each.

CASES is keyed by rule name. ``test_every_registered_rule_has_cases`` fails for a rule added to
RESOURCE_RULES without cases here, so no rule reaches the policy pack untested.
"""

from __future__ import annotations

import json

import pytest

from policy import rules
from tests.policy.test_status_page_rules import STATUS_PAGE_CASES, STATUS_PAGE_EMPTY_IS_COMPLIANT

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/mrk-0123"


def _tls_policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALLOW_READ = {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
DENY_PLAIN_HTTP = {
    "Sid": "TlsOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def _replication_rule(**overrides) -> dict:
    rule = {
        "id": "to-us-west-2",
        "status": "Enabled",
        "priority": 1,
        "filter": {},
        "deleteMarkerReplication": {"status": "Enabled"},
        "sourceSelectionCriteria": {
            "replicaModifications": {"status": "Enabled"},
            "sseKmsEncryptedObjects": {"status": "Enabled"},
        },
        "destination": {
            "bucket": "arn:aws:s3:::b-us-west-2",
            "encryptionConfiguration": {"replicaKmsKeyId": KEY_ARN},
        },
    }
    rule.update(overrides)
    return rule


def _role_policy(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Use", "Effect": "Allow", "Action": list(actions), "Resource": "*"}
            ],
        }
    )


# rule name -> (compliant props, non-compliant props, a phrase the problem must contain)
CASES: dict[str, tuple[dict, dict, str]] = {
    "s3-versioning-enabled": (
        {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}},
        {"bucket": "b", "versioningConfiguration": {"status": "Suspended"}},
        "'Suspended'",
    ),
    "s3-sse-kms-cmk": (
        {
            "bucket": "b",
            "rules": [
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "aws:kms",
                        "kmsMasterKeyId": KEY_ARN,
                    },
                    "bucketKeyEnabled": True,
                }
            ],
        },
        {
            "bucket": "b",
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
        },
        "SSE-KMS",
    ),
    "s3-public-access-blocked": (
        {
            "bucket": "b",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        {
            "bucket": "b",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": False,
        },
        "restrictPublicBuckets",
    ),
    "s3-owner-enforced": (
        {"bucket": "b", "rule": {"objectOwnership": "BucketOwnerEnforced"}},
        {"bucket": "b", "rule": {"objectOwnership": "ObjectWriter"}},
        "'ObjectWriter'",
    ),
    "s3-tls-only": (
        {"bucket": "b", "policy": _tls_policy(ALLOW_READ, DENY_PLAIN_HTTP)},
        {"bucket": "b", "policy": _tls_policy(ALLOW_READ)},
        "SecureTransport",
    ),
    "s3-replication-complete": (
        {"bucket": "b", "role": "arn:aws:iam::1:role/r", "rules": [_replication_rule()]},
        {
            "bucket": "b",
            "role": "arn:aws:iam::1:role/r",
            "rules": [_replication_rule(deleteMarkerReplication={"status": "Disabled"})],
        },
        "delete markers",
    ),
    "kms-rotation": (
        {"description": "k", "enableKeyRotation": True, "multiRegion": True},
        {"description": "k", "enableKeyRotation": False, "multiRegion": True},
        "rotation",
    ),
    "sns-encrypted": (
        {"name": "alerts", "kmsMasterKeyId": KEY_ARN},
        {"name": "alerts"},
        "KMS",
    ),
    "iam-role-policy-no-wildcard": (
        {"role": "r", "policy": _role_policy("s3:GetObject", "s3:ReplicateObject")},
        {"role": "r", "policy": _role_policy("s3:GetObject", "s3:*")},
        "'s3:*'",
    ),
    "iam-policy-no-wildcard": (
        {"policy": _role_policy("backup:StartBackupJob")},
        {"policy": _role_policy("*")},
        "'*'",
    ),
    "rds-sse-cmk": (
        {"storageEncrypted": True, "kmsKeyId": KEY_ARN},
        {"storageEncrypted": True},
        "AWS managed key",
    ),
    "rds-pitr-7d": ({"backupRetentionPeriod": 7.0}, {"backupRetentionPeriod": 1.0}, "7-day"),
    "rds-protected": (
        {"deletionProtection": True, "publiclyAccessible": False, "skipFinalSnapshot": False},
        {"deletionProtection": True, "publiclyAccessible": True, "skipFinalSnapshot": False},
        "publicly accessible",
    ),
    "rds-force-ssl": (
        {"family": "postgres16", "parameters": [{"name": "rds.force_ssl", "value": "1"}]},
        {"family": "postgres16", "parameters": [{"name": "rds.force_ssl", "value": "0"}]},
        "rds.force_ssl",
    ),
    "rds-backup-replication-cmk": ({"kmsKeyId": KEY_ARN}, {"retentionPeriod": 7.0}, "customer key"),
}
CASES.update(STATUS_PAGE_CASES)  # the status page's rules (policy/status_page_rules.py)

RULES = {rule.name: rule for rule in rules.RESOURCE_RULES}


def test_every_registered_rule_has_cases():
    missing = sorted(set(RULES) - set(CASES))
    assert not missing, f"rules without a compliant and a non-compliant case in CASES: {missing}"
    stale = sorted(set(CASES) - set(RULES))
    assert not stale, f"CASES for rules that are no longer registered: {stale}"


def test_rule_names_are_unique():
    names = [rule.name for rule in rules.RESOURCE_RULES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(RULES))
def test_compliant_case_passes(name):
    if name not in CASES:
        pytest.fail(f"rule {name} has no cases (see test_every_registered_rule_has_cases)")
    compliant, _, _ = CASES[name]
    assert RULES[name].check(compliant) == []


@pytest.mark.parametrize("name", sorted(RULES))
def test_non_compliant_case_is_reported(name):
    if name not in CASES:
        pytest.fail(f"rule {name} has no cases (see test_every_registered_rule_has_cases)")
    _, bad, phrase = CASES[name]
    problems = RULES[name].check(bad)
    assert problems, f"{name} accepted {bad}"
    assert any(phrase in p for p in problems), problems


# Rules for which a resource that sets nothing is compliant, and why.
EMPTY_IS_COMPLIANT = {
    "iam-role-policy-no-wildcard": "a policy without statements grants nothing",
    "iam-policy-no-wildcard": "a policy without statements grants nothing",
    **STATUS_PAGE_EMPTY_IS_COMPLIANT,
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_empty_props(name):
    """A resource that sets nothing is not secure by accident (and no rule crashes on it)."""
    problems = RULES[name].check({})
    if name in EMPTY_IS_COMPLIANT:
        assert problems == []
    else:
        assert problems, f"{name} accepts a resource with no properties"


def test_resource_violations_routes_by_type():
    compliant, bad, _ = CASES["s3-versioning-enabled"]
    found = rules.resource_violations(
        [
            rules.Resource(RULES["s3-versioning-enabled"].resource_type, "good", compliant),
            rules.Resource(RULES["s3-versioning-enabled"].resource_type, "bad", bad),
            # Same props on another type: no rule of that type, nothing to report.
            rules.Resource("aws:s3/bucket:Bucket", "other", bad),
        ]
    )
    assert [(v.rule, v.resource) for v in found] == [("s3-versioning-enabled", "bad")]


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_real_stacks_keep_every_secure_default(stack, request):
    evaluation = request.getfixturevalue(stack)
    resources = [rules.Resource(r.type, r.name, r.inputs) for r in evaluation.resources]
    assert rules.resource_violations(resources) == []
    checked = {r.type for r in resources} & {rule.resource_type for rule in rules.RESOURCE_RULES}
    # The stacks really exercise the rules: at least the bucket, key and topic rules apply.
    assert {
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:kms/key:Key",
        "aws:sns/topic:Topic",
    } <= checked
