"""The AWS-semantics family (policy/aws_semantics): every rule can pass and can fail.

- every registered rule has a compliant and a non-compliant fixture (semantic_fixtures.CASES),
  and its docstring names an AWS document with a URL and the constraint;
- prod and dr, with each of the three database backends, pass every rule;
- the defects the last review found, put back into the real stacks one at a time (a config or a
  component fault, never an edited verdict), each make the rule that catches them fail.
"""

from __future__ import annotations

import copy
import json

import pytest

from policy import aws_semantics, rules
from scripts.local.evaluate import evaluate_stack
from tests.policy import semantic_fixtures as fx
from tests.policy.semantic_fixtures import CASES

RULES = {rule.name: rule for rule in aws_semantics.RULES}


def _problems(name, resources):
    return RULES[name].check(aws_semantics.Stack(resources))


def test_every_registered_rule_has_both_fixtures():
    assert sorted(RULES) == sorted(CASES), "add a compliant and a non-compliant case per rule"


def test_rule_names_are_unique_and_registered_for_the_pack_and_posture():
    assert len(RULES) == len(aws_semantics.RULES)
    assert rules.SEMANTIC_RULES is aws_semantics.RULES
    assert not set(RULES) & {r.name for r in rules.RESOURCE_RULES}


@pytest.mark.parametrize("name", sorted(RULES))
def test_docstring_names_the_aws_document_and_the_constraint(name):
    document = RULES[name].document
    assert "Document" in document and "https://" in document
    assert "Constraint" in document


@pytest.mark.parametrize("name", sorted(CASES))
def test_compliant_fixture_passes(name):
    compliant, _, _ = CASES[name]
    assert _problems(name, compliant) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_non_compliant_fixture_fails_for_the_stated_reason(name):
    _, bad, phrase = CASES[name]
    problems = _problems(name, bad)
    assert problems, f"{name} accepted its non-compliant fixture"
    assert any(phrase in message for _, message in problems), problems


# -- the real stacks ------------------------------------------------------------------------------

STACKS = [(s, b) for s in ("prod", "dr") for b in ("self-managed", "rds", "supabase")]


@pytest.fixture(scope="module")
def evaluations(prod, dr):
    found = {("prod", "self-managed"): prod, ("dr", "self-managed"): dr}
    for stack, backend in STACKS:
        if (stack, backend) not in found:
            found[(stack, backend)] = evaluate_stack(stack, overrides={"dbBackend": backend})
    return found


def _resources(evaluation):
    return [rules.Resource(r.type, r.name, copy.deepcopy(r.inputs)) for r in evaluation.resources]


@pytest.mark.parametrize(("stack", "backend"), STACKS)
def test_every_rule_passes_on_the_real_stacks(evaluations, stack, backend):
    resources = _resources(evaluations[(stack, backend)])
    assert rules.semantic_violations(resources) == []
    # And the rules really looked at something: the stacks exercise every family.
    touched = {r.type for r in resources}
    assert {
        "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
        "aws:backup/reportPlan:ReportPlan",
        "aws:route53/healthCheck:HealthCheck",
        "aws:cfg/recorder:Recorder",
        "platform-dr:dr_network:DrNetwork",
    } <= touched


def _named(resources, name):
    (found,) = [r for r in resources if r.name == name]
    return found


def _edit_policy(resource, change):
    document = json.loads(resource.props["policy"])
    change(document)
    resource.props["policy"] = json.dumps(document)


def test_object_arn_context_with_bucket_keys_fails_replication(prod):
    """The old replication policy: the object ARN (<bucket>/*) as context with Bucket Keys on."""
    resources = _resources(prod)

    def object_context(document):
        for statement in document["Statement"]:
            like = (statement.get("Condition") or {}).get("StringLike") or {}
            if "kms:EncryptionContext:aws:s3:arn" in like:
                like["kms:EncryptionContext:aws:s3:arn"] = [
                    f"{arn}/*" for arn in like["kms:EncryptionContext:aws:s3:arn"]
                ]

    _edit_policy(_named(resources, "creator-audio-replication-policy"), object_context)
    problems = _problems("s3-replication-kms", resources)
    assert problems and all(r == "creator-audio-replication" for r, _ in problems)
    assert any("kms:Decrypt on source key" in m for _, m in problems)


def test_source_account_condition_on_the_topic_key_fails_eventbridge(prod):
    """The old topic key: publishers only under aws:SourceAccount, which they do not send."""
    resources = _resources(prod)

    def source_account(document):
        document["Statement"][1]["Condition"] = {
            "StringEquals": {"aws:SourceAccount": "111122223333"}
        }

    for region in ("us-east-1", "us-west-2", "eu-west-1"):
        _edit_policy(_named(resources, f"alerts-key-{region}"), source_account)
    problems = _problems("sns-publishers-deliver", resources)
    assert any("events.amazonaws.com call kms:GenerateDataKey" in m for _, m in problems)
    assert any("cloudwatch.amazonaws.com" in m for _, m in problems)


def test_reports_bucket_without_the_reports_role_fails_delivery(prod):
    resources = _resources(prod)
    policy = _named(resources, "backup-reports-us-east-1-policy")
    _edit_policy(
        policy,
        lambda d: d.update(
            Statement=[
                s for s in d["Statement"] if "AWSServiceRoleForBackupReports" not in json.dumps(s)
            ]
        ),
    )
    problems = _problems("delivery-targets-writable", resources)
    assert {r for r, _ in problems} == {
        f"backup-{report}-report" for report in ("compliance", "backup", "copy", "restore")
    }


def test_reports_key_without_the_reports_role_fails_delivery(prod):
    resources = _resources(prod)
    for r in resources:
        if r.name.startswith("backup-reports-key-") and r.type.startswith("aws:kms/"):
            _edit_policy(r, lambda d: d.update(Statement=d["Statement"][:1] + d["Statement"][2:]))
    problems = _problems("delivery-targets-writable", resources)
    assert any(
        "does not let backup-reports" in m and "kms:GenerateDataKey" in m for _, m in problems
    )


def test_a_tcp_check_on_the_private_primary_fails(prod):
    resources = _resources(prod)
    check = _named(resources, "dr-standby-primary-check")
    check.props.clear()
    check.props.update({"type": "TCP", "fqdn": "localhost", "port": 5432})
    problems = _problems("route53-health-check-evaluable", resources)
    assert problems and "can never pass" in problems[0][1]


def test_a_probe_alarm_that_ignores_silence_fails(prod):
    resources = _resources(prod)
    _named(resources, "dr-standby-primary-down").props["treatMissingData"] = "notBreaching"
    problems = _problems("route53-health-check-evaluable", resources)
    assert problems and "a silent probe keeps the record healthy" in problems[0][1]


@pytest.mark.parametrize(
    ("backend", "dropped", "phrase"),
    [
        ("self-managed", "dr-standby-network-peering-accept", "never accepted"),
        ("self-managed", "dr-standby-network-to-primary", "no route to the primary CIDR"),
        ("self-managed", "dr-standby-network-primary-from-dr", "admits nothing from"),
        ("supabase", "dr-standby-network-private-internet-ipv6", "egress-only internet gateway"),
        ("rds", "dr-standby-network-private-internet", "NAT gateway"),
    ],
)
def test_a_missing_network_path_fails(evaluations, backend, dropped, phrase):
    resources = [r for r in _resources(evaluations[("prod", backend)]) if r.name != dropped]
    problems = _problems("database-network-path", resources)
    assert any(phrase in m for _, m in problems), problems


def test_an_overlapping_dr_cidr_is_refused_before_anything_is_declared():
    from components.dr_network import parse_primary_network
    from components.objectives import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_primary_network(
            {
                "primaryVpcId": "vpc-0e7a3b1c2d4f50617",
                "primaryVpcCidr": "10.42.0.0/20",
                "primaryRouteTableIds": "rtb-0e7a3b1c2d4f50617",
                "primaryDbSecurityGroupId": "sg-0e7a3b1c2d4f50617",
            },
            "us-east-1",
            "10.42.0.0/16",
        )
    assert raised.value.key == "primaryVpcCidr" and "overlap" in str(raised.value)


def test_the_dr_stack_overlapping_its_source_is_caught_by_the_rule(dr):
    resources = _resources(dr)
    _named(resources, "dr-standby-network").props["vpcCidr"] = "10.42.0.0/16"
    problems = _problems("database-network-path", resources)
    assert any("overlaps the primary's 10.42.0.0/16" in m for _, m in problems)


def test_organization_recording_is_a_declared_prerequisite_not_a_recorder():
    evaluation = evaluate_stack("prod", overrides={"awsConfigRecording": "organization"})
    resources = _resources(evaluation)
    assert not [r for r in resources if r.type.startswith("aws:cfg/")]
    assert _problems("backup-audit-config", resources) == []
    # Without that declaration, frameworks with no recorder fail.
    for r in resources:
        if r.type == "platform-dr:backup_plan:BackupPlan":
            r.props["config_recording"] = "stack"
    assert _problems("backup-audit-config", resources)


def test_an_archive_profile_on_the_repository_fails_readability(prod):
    resources = _resources(prod)
    lifecycle = _named(resources, "database-repo2-us-west-2-lifecycle")
    lifecycle.props["rules"][0]["transitions"].append({"days": 365, "storageClass": "DEEP_ARCHIVE"})
    problems = _problems("pgbackrest-repository-readable", resources)
    assert problems == [
        (
            "database-repo2-us-west-2-lifecycle",
            f"pgBackRest repository {lifecycle.props['bucket']}: objects go to DEEP_ARCHIVE after "
            "365 d, which pgBackRest cannot read",
        )
    ]


def test_the_dr_stack_does_not_reconfigure_what_it_adopts(dr):
    resources = _resources(dr)
    assert _problems("adopted-not-reconfigured", resources) == []
    adopted = dr.outputs["buckets"]["creator-audio"]["us-west-2"]
    assert not [
        r
        for r in resources
        if r.props.get("bucket") == adopted
        and "Bucket" in r.type
        and not r.type.endswith(":BucketReplicationConfig")
    ]
    resources.append(
        rules.Resource(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            "creator-audio-us-west-2-lifecycle",
            {"bucket": adopted, "rules": []},
        )
    )
    assert _problems("adopted-not-reconfigured", resources)


def _set(name, **props):
    def change(resources):
        _named(resources, name).props.update(props)

    return change


def _drop(name):
    def change(resources):
        resources.remove(_named(resources, name))

    return change


# Rules found by reading each declared type: each fails on the real rds stack when the
# constraint it encodes is broken in the declared resources.
PER_TYPE_FAULTS = {
    "rds-parameter-group-family": (_set("database-params", family="postgres15"), "postgres16"),
    "rds-subnet-group-azs": (
        lambda rs: _named(rs, "dr-standby-network-private-1").props.update(
            availabilityZone=_named(rs, "dr-standby-network-private-0").props["availabilityZone"]
        ),
        "1 Availability Zone",
    ),
    "backup-role-policies": (
        _drop("backup-backup-role-AWSBackupServiceRolePolicyForS3Backup"),
        "lacks AWSBackupServiceRolePolicyForS3Backup",
    ),
    "kms-multi-region-replicas": (
        _set("creator-audio-key-us-east-1", multiRegion=False),
        "not multi-Region",
    ),
    "alarm-metric-region": (_set("dr-standby-replica-lag", region="us-east-1"), "never sees"),
    "s3-endpoint-on-private-routes": (
        _set("dr-standby-network-s3-endpoint", routeTableIds=["rtb-main"]),
        "no S3 gateway endpoint",
    ),
    "same-region-references": (
        lambda rs: _named(rs, "dr-standby-replica-lag").props.update(
            alarmActions=["arn:aws:sns:us-east-1:111122223333:alerts-us-east-1"]
        ),
        "is not in us-west-2",
    ),
    "kms-key-in-region": (
        lambda rs: _named(rs, "database-backups-us-west-2").props.update(
            kmsKeyId=_named(rs, "database-instance").props["kmsKeyId"]
        ),
        "the data is in us-west-2",
    ),
}


@pytest.mark.parametrize("name", sorted(PER_TYPE_FAULTS))
def test_rules_for_each_declared_type_fail_on_a_broken_real_stack(evaluations, name):
    resources = _resources(evaluations[("prod", "rds")])
    assert _problems(name, resources) == []
    change, phrase = PER_TYPE_FAULTS[name]
    change(resources)
    problems = _problems(name, resources)
    assert any(phrase in message for _, message in problems), problems


# -- the variants the issue names: Bucket Keys on and off, every publisher, every writer ---------


@pytest.mark.parametrize(
    ("bucket_keys", "suffix", "ok"),
    [
        (True, "", True),  # Bucket Keys: the context is the bucket ARN
        (True, "/*", False),  # ... not the object ARN (the review's defect)
        (False, "/*", True),  # no Bucket Keys: the object ARN
        (False, "", False),  # ... and the bucket ARN alone matches no object
    ],
)
def test_replication_context_follows_the_bucket_key_setting(bucket_keys, suffix, ok):
    resources = fx.replication_stack(context_suffix=suffix, bucket_keys=bucket_keys)
    assert (_problems("s3-replication-kms", resources) == []) is ok


def test_the_component_writes_the_context_s3_sends_with_and_without_bucket_keys():
    from components.s3_policies import replication_policy

    def contexts(bucket_keys):
        document = json.loads(
            replication_policy(
                fx.SRC_ARN,
                "us-east-1",
                ["k"],
                [["us-west-2", fx.DST_ARN, "d"]],
                bucket_keys=bucket_keys,
            )
        )
        return [
            s["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]
            for s in document["Statement"]
            if "Condition" in s
        ]

    assert contexts(True) == [[fx.SRC_ARN], [fx.DST_ARN]]
    assert contexts(False) == [[f"{fx.SRC_ARN}/*"], [f"{fx.DST_ARN}/*"]]
    assert contexts(None) == [[fx.SRC_ARN, f"{fx.SRC_ARN}/*"], [fx.DST_ARN, f"{fx.DST_ARN}/*"]]


def _with_backup_notifications(topic_allows_backup):
    resources = fx.sns_stack()
    for r in resources:
        if r.type == "aws:sns/topicPolicy:TopicPolicy" and topic_allows_backup:
            document = json.loads(r.props["policy"])
            document["Statement"].append(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "backup.amazonaws.com"},
                    "Action": "sns:Publish",
                    "Resource": fx.TOPIC_ARN,
                }
            )
            r.props["policy"] = json.dumps(document)
        if r.type.startswith("aws:kms/key"):
            document = json.loads(r.props["policy"])
            document["Statement"][1]["Principal"]["Service"].append("backup.amazonaws.com")
            r.props["policy"] = json.dumps(document)
    resources.append(
        rules.Resource(
            "aws:backup/vaultNotifications:VaultNotifications",
            "vault-events",
            {"region": "us-east-1", "snsTopicArn": fx.TOPIC_ARN, "backupVaultEvents": []},
        )
    )
    return resources


def test_aws_backup_as_a_publisher_needs_the_topic_policy_too():
    assert _problems("sns-publishers-deliver", _with_backup_notifications(True)) == []
    problems = _problems("sns-publishers-deliver", _with_backup_notifications(False))
    assert any("does not let backup.amazonaws.com publish" in m for _, m in problems)


def _batch_operations(role_may_write):
    statement = {
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{fx.REPORTS}/batch-reports/*",
    }
    key_use = {
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Encrypt"],
        "Resource": fx.key_arn("reports-key", "us-east-1"),
    }
    policy = fx.doc(*([statement, key_use] if role_may_write else [key_use]))
    role_arn = f"arn:aws:iam::{fx.ACCOUNT}:role/batch-ops"
    return [
        *fx.delivery_stack(),
        rules.Resource("aws:iam/role:Role", "batch-ops", {"arn": role_arn}),
        rules.Resource(
            "aws:iam/rolePolicy:RolePolicy",
            "batch-ops-policy",
            {"role": "batch-ops-id", "policy": policy},
        ),
        rules.Resource(
            "platform-dr:inventory:Inventory",
            "audio-inventory-jobs",
            {
                "deliveries": [
                    {
                        "writer": "s3-batch-operations",
                        "bucket": fx.REPORTS,
                        "prefix": "batch-reports",
                        "roleArn": role_arn,
                    }
                ]
            },
        ),
    ]


def test_s3_batch_operations_reports_are_written_by_the_jobs_own_role():
    """The hook another component (S3 Inventory / Batch Operations) uses: a `deliveries` output."""
    assert _problems("delivery-targets-writable", _batch_operations(True)) == []
    problems = _problems("delivery-targets-writable", _batch_operations(False))
    assert problems and problems[0][0] == "audio-inventory-jobs"


def test_s3_inventory_needs_the_key_for_its_reports():
    problems = _problems("delivery-targets-writable", fx.delivery_stack(inventory_key_grant=False))
    assert [r for r, _ in problems] == ["audio-inventory"]
    assert "kms:GenerateDataKey" in problems[0][1]


# -- through the CrossGuard pack ---------------------------------------------------------------


def test_the_pack_runs_each_semantic_rule_as_a_mandatory_stack_policy(prod):
    """The pack's stack policies over prod: silent; with the old topic key: the rule reports."""
    from policy import pack
    from tests.policy.test_pack import _run, _stack_args

    policies = {p.name: p for p in pack.build_policies()}
    for rule in aws_semantics.RULES:
        assert _run(policies[rule.name], _stack_args(prod.resources)) == [], rule.name
    broken = copy.deepcopy(prod.resources)
    for r in broken:
        if r.name.startswith("alerts-key-") and r.type.startswith("aws:kms/"):
            document = json.loads(r.inputs["policy"])
            document["Statement"][1]["Condition"] = {
                "StringEquals": {"aws:SourceAccount": "111122223333"}
            }
            r.inputs["policy"] = json.dumps(document)
    reported = _run(policies["sns-publishers-deliver"], _stack_args(broken))
    assert reported and all(m.startswith("alerts-key-") for m in reported)


def test_an_unknown_arn_in_a_preview_does_not_stop_every_rule(prod):
    """During a preview a new resource's ARN is unknown; indexing must not raise for all rules."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

    from policy import pack
    from tests.policy.test_pack import _run, _stack_args

    resources = copy.deepcopy(prod.resources)
    for r in resources:
        if r.type == "aws:iam/role:Role":
            r.inputs["arn"] = UNKNOWN_STRING_VALUE
            r.inputs["id"] = UNKNOWN_STRING_VALUE
    policies = {p.name: p for p in pack.build_policies()}
    outcomes = {}
    for rule in aws_semantics.RULES:
        try:
            outcomes[rule.name] = _run(policies[rule.name], _stack_args(resources))
        except UnknownValueError:
            outcomes[rule.name] = "deferred"
    assert outcomes["route53-health-check-evaluable"] == []
    assert all(v in ([], "deferred") for v in outcomes.values()), outcomes
