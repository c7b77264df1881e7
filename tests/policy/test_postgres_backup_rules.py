"""policy.rules.postgres_backup_mechanisms: the database under the critical class.

Synthetic resources give a compliant and a non-compliant case per backend; evaluations of the
real program check the worst-case RPO against components.pgbackrest_config's own derivation.
"""

from __future__ import annotations

import functools

import pytest

from components import pgbackrest_config as pgbr
from components.objectives import parse_objectives
from policy import rules
from scripts.local.evaluate import evaluate_stack, read_stack_config

OBJ = {"regions": {"primary": "us-east-1", "dr": "us-west-2", "third": "eu-west-1"}}
T = rules.POSTGRES_BACKUP_TYPE


def _r(type_, name, **props):
    return rules.Resource(type_, name, props)


def _self_managed(lock=True, timeout=300.0, push=60.0):
    comp = _r(T, "db", backend="self-managed", dataset="database", pitrWindowDays=7.0)
    if timeout is not None:
        comp.props.update(archiveTimeoutS=timeout, archivePushTimeoutS=push)
    lock_rule = {"defaultRetention": {"mode": "COMPLIANCE", "days": 14.0}}
    return [
        comp,
        _r("aws:s3/bucket:Bucket", "db-repo1-us-east-1", objectLockEnabled=lock),
        _r(
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
            "db-repo1-us-east-1-object-lock",
            rule=lock_rule,
        ),
        _r("aws:s3/bucket:Bucket", "db-repo2-us-west-2", objectLockEnabled=True),
        _r(
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
            "db-repo2-us-west-2-object-lock",
            rule=lock_rule,
        ),
    ]


def test_self_managed_compliant():
    (m,) = rules.postgres_backup_mechanisms(_self_managed(), OBJ)
    assert m.data_class == "critical" and m.dataset == "database"
    assert m.rpo_s == 360 and m.problems == []
    assert "worst case 6 min" in m.description and "PITR 7 d" in m.description
    assert "object lock COMPLIANCE 14 d" in m.description


def test_self_managed_non_compliant():
    (m,) = rules.postgres_backup_mechanisms(_self_managed(lock=False, timeout=None), OBJ)
    assert m.rpo_s is None
    assert "database: repo1 bucket has no object lock" in m.problems
    assert "database: archive_timeout not declared" in m.problems
    missing = [r for r in _self_managed() if "repo2" not in r.name]
    (m,) = rules.postgres_backup_mechanisms(missing, OBJ)
    assert "database: no pgBackRest repo2 bucket" in m.problems
    unlocked = [r for r in _self_managed() if r.name != "db-repo2-us-west-2-object-lock"]
    (m,) = rules.postgres_backup_mechanisms(unlocked, OBJ)
    assert m.problems == ["database: repo2 bucket has no object lock"]


def _rds(retention=7.0, encrypted=True, replicated=True):
    found = [
        _r(T, "db", backend="rds", dataset="database", pitrWindowDays=7.0),
        _r(
            "aws:rds/instance:Instance",
            "db-instance",
            backupRetentionPeriod=retention,
            storageEncrypted=encrypted,
        ),
    ]
    if replicated:
        found.append(
            _r(
                "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication",
                "db-backups-us-west-2",
                region="us-west-2",
            )
        )
    return found


def test_rds_compliant_claims_no_region_loss_bound_it_cannot_prove():
    (m,) = rules.postgres_backup_mechanisms(_rds(), OBJ)
    assert m.problems == [] and m.rpo_s is None and m.covers_region_loss
    assert "PITR 7 d" in m.description and "5 min" in m.description
    assert "replicated to us-west-2" in m.description


def test_rds_non_compliant():
    (m,) = rules.postgres_backup_mechanisms(
        _rds(retention=3.0, encrypted=False, replicated=False), OBJ
    )
    assert "database: backup retention 3 d is under the PITR window 7 d" in m.problems
    assert "database: RDS storage not encrypted" in m.problems
    assert "database: automated backups are not replicated out of region" in m.problems


def test_supabase_compliant_and_non_compliant():
    comp = _r(
        T, "db", backend="supabase", dataset="database", pitrWindowDays=7.0, dumpIntervalS=86400.0
    )
    pub = _r("postgresql:index/publication:Publication", "db-publication")
    sub = _r("postgresql:index/subscription:Subscription", "db-subscription")
    # Without a lag alarm only the daily dump bounds a region loss.
    (m,) = rules.postgres_backup_mechanisms([comp, pub, sub], OBJ)
    assert m.problems == [] and m.rpo_s == 86400
    assert "lag not bounded: no SubscriptionLagSeconds alarm" in m.description
    (m,) = rules.postgres_backup_mechanisms([comp, pub], OBJ)
    assert m.problems == ["database: no publication/subscription to a DR-region Postgres"]
    # With one, the alarm's threshold is the bound...
    alarm = _r(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "db-subscription-lag",
        region="us-west-2",
        namespace="platform-dr",
        metricName="SubscriptionLagSeconds",
        dimensions={"Subscription": "platform_dr_sub"},
        statistic="Maximum",
        comparisonOperator="GreaterThanThreshold",
        threshold=600.0,
        alarmActions=["arn:aws:sns:us-west-2:111122223333:alerts"],
        treatMissingData="breaching",
    )
    (m,) = rules.postgres_backup_mechanisms([comp, pub, sub, alarm], OBJ)
    assert m.problems == [] and m.rpo_s == 600
    assert "SubscriptionLagSeconds alarm at 10 min in us-west-2" in m.description
    # ...but not without a subscription to be lagging.
    (m,) = rules.postgres_backup_mechanisms([comp, pub, alarm], OBJ)
    assert m.rpo_s == 86400 and "no subscription" in m.description


@functools.cache
def _verdict(backend, rpo="15m"):
    ev = evaluate_stack("prod", overrides={"dbBackend": backend, "criticalRpo": rpo})
    resources = [rules.Resource(r.type, r.name, r.inputs) for r in ev.resources]
    objectives = rules.objectives_of(resources)
    (mechanism,) = rules.postgres_backup_mechanisms(resources, objectives)
    critical = next(v for v in rules.class_verdicts(resources, objectives) if v.name == "critical")
    return mechanism, critical


@pytest.mark.parametrize("rpo", ["15m", "3m", "1h"])
def test_declared_worst_case_equals_the_pgbackrest_derivation(rpo):
    mechanism, critical = _verdict("self-managed", rpo)
    raw = read_stack_config("prod") | {"platform-dr:criticalRpo": rpo}
    objectives = parse_objectives(raw, "prod")
    assert mechanism.rpo_s == pgbr.worst_case_rpo_s(objectives)
    assert mechanism.description in critical.mechanisms
    assert mechanism.problems == [] and "object lock COMPLIANCE 14 d" in mechanism.description
    assert critical.datasets["database"] == mechanism.rpo_s


def test_supabase_subscription_lag_alarm_bounds_the_database_at_the_rpo():
    # The daily dump alone would be 1 d; tests/policy/test_database_lag_bound.py removes the
    # alarm and shows that verdict.
    mechanism, critical = _verdict("supabase")
    assert mechanism.rpo_s == 900 and critical.met
    assert critical.datasets["database"] == 900


# -- RDS resource rules (compliant and non-compliant case each) -------------------------------

GOOD_RDS = {
    "storageEncrypted": True,
    "kmsKeyId": "arn:aws:kms:us-east-1:111122223333:key/mrk-1",
    "backupRetentionPeriod": 7.0,
    "deletionProtection": True,
    "publiclyAccessible": False,
    "skipFinalSnapshot": False,
}


@pytest.mark.parametrize(
    "check, bad, needle",
    [
        (rules.rds_encrypted_with_cmk, {"storageEncrypted": False}, "not encrypted"),
        (rules.rds_encrypted_with_cmk, {"kmsKeyId": None}, "AWS managed key"),
        (rules.rds_keeps_pitr_window, {"backupRetentionPeriod": 1.0}, "under the spec's 7-day"),
        (rules.rds_protected, {"deletionProtection": False}, "deletion protection is off"),
        (rules.rds_protected, {"publiclyAccessible": True}, "publicly accessible"),
        (rules.rds_protected, {"skipFinalSnapshot": True}, "no final snapshot"),
    ],
)
def test_rds_instance_rules(check, bad, needle):
    assert check(GOOD_RDS) == []
    problems = check({**GOOD_RDS, **bad})
    assert len(problems) == 1 and needle in problems[0]


def test_rds_force_ssl_and_backup_copy_rules():
    good = {"family": "postgres16", "parameters": [{"name": "rds.force_ssl", "value": "1"}]}
    assert rules.rds_postgres_forces_tls(good) == []
    assert rules.rds_postgres_forces_tls({**good, "parameters": []}) == ["rds.force_ssl is not 1"]
    assert rules.rds_postgres_forces_tls({"family": "mysql8.0", "parameters": []}) == []
    assert rules.rds_backup_copy_encrypted({"kmsKeyId": "arn:..."}) == []
    assert rules.rds_backup_copy_encrypted({}) == ["replicated backups have no customer key"]


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_declared_rds_backend_passes_every_resource_rule(stack):
    ev = evaluate_stack(stack, overrides={"dbBackend": "rds"})
    resources = [rules.Resource(r.type, r.name, r.inputs) for r in ev.resources]
    checked = {r.type for r in resources} & {rule.resource_type for rule in rules.RESOURCE_RULES}
    assert "aws:rds/parameterGroup:ParameterGroup" in checked
    assert rules.resource_violations(resources) == []
