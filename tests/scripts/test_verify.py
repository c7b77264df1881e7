"""`drctl verify` against a live-looking prod: moto for what it implements, Stubber for the rest.

The world is built from the prod stack's real outputs (the evaluated program's ``buckets``,
``bucketArns``, ``bucketKeyArns``, ``backupVaultNames``, ``secretArns``,
``configParameterNames``...): moto holds the S3 copies with their backup-class tags, the Secrets
Manager secrets with their replicas, the SSM parameters in both regions, the backup vaults with
their locks and an RDS instance.

moto lacks or mangles four things verify reads, so botocore's Stubber (which validates every
request and response against the real service model) answers them, and each test that relies on
it says so:
- S3 ``GetBucketReplication``: moto 5 drops SourceSelectionCriteria and reports
  DeleteMarkerReplication "Disabled" whatever was put, so the field-by-field comparison would
  compare against moto's loss rather than AWS's answer;
- AWS Backup ``ListRecoveryPointsByBackupVault`` (moto 5 has no recovery points);
- CloudWatch ``GetMetricStatistics`` for the ``AWS/S3`` replication metrics (S3 publishes them;
  moto's S3 never replicates, so it has none);
- RDS ``DescribeDBInstanceAutomatedBackups`` for the DR replica of automated backups (moto does
  not replicate them), and a stale ``LatestRestorableTime`` (moto always reports "now").
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import shutil

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from typer.testing import CliRunner

from components.backup_plan import vault_lock_settings
from components.replicated_bucket import replication_rules
from scripts.checks import verify
from scripts.checks.verify.backup import VAULT_LOCKS
from scripts.checks.verify.replication import api_shape
from scripts.cli import app
from scripts.common import ExitCode

PRIMARY, DR, THIRD = "us-east-1", "us-west-2", "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/replication"
NOW = dt.datetime.now(dt.UTC)
CLASSES = ("critical", "important", "operational")
POINT_ARN = f"arn:aws:backup:{PRIMARY}:123456789012:recovery-point"


class Routed:
    """A moto client whose calls to the APIs moto lacks go to a Stubber-backed client instead."""

    def __init__(self, moto_client, stubbed_client, apis: set[str]):
        self._moto, self._stubbed, self._apis = moto_client, stubbed_client, apis

    def get_paginator(self, name: str):
        return (self._stubbed if name in self._apis else self._moto).get_paginator(name)

    def __getattr__(self, name: str):
        return getattr(self._stubbed if name in self._apis else self._moto, name)


class FixedDatabase:
    """The injected database source, as data; the real one (PgBackRestSource) is exercised on a
    local pgBackRest repository in tests/integration/test_verify_pgbackrest.py."""

    def __init__(self, state: verify.DatabaseState):
        self.state = state

    def read(self) -> verify.DatabaseState:
        return self.state


def fresh_database(**changes) -> verify.DatabaseState:
    stop = int((NOW - dt.timedelta(minutes=20)).timestamp())
    backup = {
        "label": "20261126-000000F",
        "type": "full",
        "timestamp": {"start": stop - 5, "stop": stop},
    }
    state = verify.DatabaseState(
        backups={1: [backup], 2: [backup]},
        archive={
            1: {"max_wal": "000000010000000000000005", "lag_segments": 0},
            2: {"max_wal": "000000010000000000000005", "lag_segments": 0},
        },
        last_archived_time=NOW - dt.timedelta(minutes=3),
        unarchived_writes=True,
    )
    for key, value in changes.items():
        setattr(state, key, value)
    return state


# One boto3 session for every test: botocore caches the service models it loads per session,
# which makes the per-test world a few times faster to build. Regions are set per client.
_SESSION = boto3.session.Session(region_name=PRIMARY)


class _Regional:
    def __init__(self, region: str):
        self.region = region

    def client(self, service: str):
        return _SESSION.client(service, region_name=self.region)


class World:
    """Healthy prod in moto plus the stubbed APIs; tests break one thing and run the checks."""

    def __init__(self, prod, objectives):
        self.objectives = objectives
        self.outputs = copy.deepcopy(prod.outputs)
        self.classes = {
            d: prod.named(f"{d}-{PRIMARY}").inputs["tags"]["backup-class"]
            for d in self.outputs["buckets"]
        }
        self.sessions = {r: _Regional(r) for r in (PRIMARY, DR, THIRD)}
        self.moto = {}
        self.recovery_point_age: dict[str, dt.timedelta | None] = {
            c: dt.timedelta(minutes=30) for c in CLASSES
        }
        self.latency: dict[str, float] = {}
        self.failed_operations: dict[str, float] = {}
        self.rds_stub = None
        self.rules: dict[str, list[dict]] = {}  # dataset -> live rules, as S3 answers them
        self.changeable_for_days = 3
        self._build()

    def client(self, service, region):
        key = (service, region)
        if key not in self.moto:
            self.moto[key] = self.sessions[region].client(service)
        return self.moto[key]

    def _build(self):
        for dataset, copies in self.outputs["buckets"].items():
            for region, bucket in copies.items():
                s3 = self.client("s3", region)
                extra = (
                    {}
                    if region == PRIMARY
                    else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                )
                s3.create_bucket(Bucket=bucket, **extra)
                s3.put_bucket_versioning(
                    Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
                )
                s3.put_bucket_tagging(
                    Bucket=bucket,
                    Tagging={"TagSet": [{"Key": "backup-class", "Value": self.classes[dataset]}]},
                )
            self.put_replication(dataset, [DR, THIRD])
        lock = vault_lock_settings(self.objectives)
        for region, vault in self.outputs["backupVaultNames"].items():
            backup = self.client("backup", region)
            backup.create_backup_vault(BackupVaultName=vault)
            backup.put_backup_vault_lock_configuration(
                BackupVaultName=vault,
                MinRetentionDays=lock.min_retention_days,
                MaxRetentionDays=lock.max_retention_days,
                ChangeableForDays=lock.changeable_for_days,
            )
        sm = self.client("secretsmanager", PRIMARY)
        for name in self.outputs["secretArns"]:
            created = sm.create_secret(
                Name=name,
                SecretString="not printed",
                AddReplicaRegions=[{"Region": DR}],
                Tags=[{"Key": "backup-class", "Value": "critical"}],
            )
            self.outputs["secretArns"][name][PRIMARY] = created["ARN"]
        for region in (PRIMARY, DR):
            for name in self.outputs["configParameterNames"]:
                self.client("ssm", region).put_parameter(
                    Name=name, Value=f"value of {name}", Type="String"
                )
        # The live prerequisites (scripts/checks/verify/prerequisites.py, each failing case is in
        # test_prerequisites.py): AWS Config recording and the Backup reports role, on moto.
        config = self.client("config", PRIMARY)
        config.put_configuration_recorder(
            ConfigurationRecorder={
                "name": "platform-dr-prod",
                "roleARN": ROLE,
                "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": False},
            }
        )
        config.put_delivery_channel(
            DeliveryChannel={"name": "platform-dr-prod", "s3BucketName": "reports"}
        )
        config.start_configuration_recorder(ConfigurationRecorderName="platform-dr-prod")
        self.client("iam", PRIMARY).create_role(
            RoleName="AWSServiceRoleForBackupReports",
            Path="/aws-service-role/reports.backup.amazonaws.com/",
            AssumeRolePolicyDocument="{}",
        )

    def put_replication(self, dataset, regions):
        """The rules the program declares for ``regions``, as GetBucketReplication returns
        them (Filter comes back as an empty prefix); tests then break one field."""
        declared = replication_rules(
            regions,
            self.outputs["bucketArns"][dataset],
            self.outputs["bucketKeyArns"][dataset],
            rtc=True,
        )
        self.rules[dataset] = [{**api_shape(r), "Filter": {"Prefix": ""}} for r in declared]

    def rule(self, dataset, region):
        return next(r for r in self.rules[dataset] if r["ID"] == f"to-{region}")

    def factory(self):
        """(service, region) -> client, with the stubs queued for the calls verify will make."""
        cloudwatch = self.sessions[PRIMARY].client("cloudwatch")
        cw_stub = Stubber(cloudwatch)
        s3_stubbed = self.sessions[PRIMARY].client("s3")
        s3_stub = Stubber(s3_stubbed)
        for dataset, copies in sorted(self.outputs["buckets"].items()):
            s3_stub.add_response(
                "get_bucket_replication",
                {"ReplicationConfiguration": {"Role": ROLE, "Rules": self.rules[dataset]}},
                {"Bucket": copies[PRIMARY]},
            )
            # verify reads the metrics of each declared rule the bucket has, in rule order.
            live = {r["ID"] for r in self.rules[dataset]}
            for region in [r for r in (DR, THIRD) if f"to-{r}" in live]:
                destination = copies[region]
                rule_id = f"to-{region}"
                dims = [
                    {"Name": "SourceBucket", "Value": copies[PRIMARY]},
                    {"Name": "DestinationBucket", "Value": destination},
                    {"Name": "RuleId", "Value": rule_id},
                ]
                for metric, stat, value in (
                    ("ReplicationLatency", "Maximum", self.latency.get(destination, 40.0)),
                    (
                        "OperationsFailedReplication",
                        "Sum",
                        self.failed_operations.get(destination, 0.0),
                    ),
                ):
                    points = [] if value is None else [{"Timestamp": NOW, stat: value}]
                    cw_stub.add_response(
                        "get_metric_statistics",
                        {"Datapoints": points},
                        {
                            "Namespace": "AWS/S3",
                            "MetricName": metric,
                            "Dimensions": dims,
                            "StartTime": ANY,
                            "EndTime": ANY,
                            "Period": 300,
                            "Statistics": [stat],
                        },
                    )
        # Stubber (like the replication metrics): the primary probe's minutes, in the DR region.
        cw_stub.add_response(
            "get_metric_statistics",
            {"Datapoints": [{"Timestamp": NOW, "Minimum": 1.0, "SampleCount": 1.0}]},
            {
                "Namespace": "platform-dr",
                "MetricName": "PrimaryDatabaseUp",
                "Dimensions": [
                    {"Name": "Database", "Value": self.outputs["drStandby"]["recordName"]}
                ],
                "StartTime": ANY,
                "EndTime": ANY,
                "Period": 60,
                "Statistics": ["Minimum", "SampleCount"],
            },
        )
        cw_stub.activate()
        self.cw_stub = cw_stub
        s3_stub.activate()
        self.s3_stub = s3_stub

        backup_stubbed = self.sessions[PRIMARY].client("backup")
        bk_stub = Stubber(backup_stubbed)
        vault = self.outputs["backupVaultNames"][PRIMARY]
        for cls in CLASSES:
            plan_id = self.outputs["backupPlanIds"][cls]
            if self.recovery_point_age[cls] is None:
                bk_stub.add_response(
                    "list_recovery_points_by_backup_vault",
                    {"RecoveryPoints": []},
                    {"BackupVaultName": vault, "ByBackupPlanId": plan_id},
                )
                continue
            created = NOW - self.recovery_point_age[cls]
            bk_stub.add_response(
                "list_recovery_points_by_backup_vault",
                {
                    "RecoveryPoints": [
                        {
                            "RecoveryPointArn": f"{POINT_ARN}:{cls}-1",
                            "ResourceArn": f"arn:aws:s3:::{cls}-bucket",
                            "ResourceType": "S3",
                            "CreationDate": created,
                            "Status": "COMPLETED",
                        },
                        {
                            "RecoveryPointArn": f"{POINT_ARN}:{cls}-0",
                            "ResourceArn": f"arn:aws:s3:::{cls}-bucket",
                            "ResourceType": "S3",
                            "CreationDate": created - dt.timedelta(days=1),
                            "Status": "COMPLETED",
                        },
                    ]
                },
                {"BackupVaultName": vault, "ByBackupPlanId": plan_id},
            )
        # Stubber: DescribeRegionSettings (the Backup opt-in prerequisite; moto lacks it).
        settings = {"ResourceTypeOptInPreference": {"S3": True, "RDS": True}}
        bk_stub.add_response("describe_region_settings", settings, {})
        bk_stub.activate()
        self.bk_stub = bk_stub
        dr_backup = self.sessions[DR].client("backup")
        dr_stub = Stubber(dr_backup)
        dr_stub.add_response("describe_region_settings", settings, {})
        dr_stub.activate()

        def clients(service, region):
            if service == "cloudwatch":
                return cloudwatch
            if service == "s3" and region == PRIMARY:
                return Routed(self.client("s3", PRIMARY), s3_stubbed, {"get_bucket_replication"})
            if service == "backup" and region == PRIMARY:
                return Routed(
                    self.client("backup", PRIMARY),
                    backup_stubbed,
                    {"list_recovery_points_by_backup_vault", "describe_region_settings"},
                )
            if service == "backup" and region == DR:
                return Routed(self.client("backup", DR), dr_backup, {"describe_region_settings"})
            if service == "rds" and self.rds_stub and region in self.rds_stub:
                return self.rds_stub[region]
            return self.client(service, region)

        return clients

    def run(self, database=None, outputs=None, now=NOW):
        """Run every check. ``outputs`` replaces the stack outputs verify is given (the stubs
        are still queued from the world's own, so unused ones are expected then)."""
        checks = verify.run_checks(
            "prod",
            self.objectives,
            self.outputs if outputs is None else outputs,
            self.factory(),
            database=FixedDatabase(database or fresh_database()),
            now=now,
        )
        if outputs is None:
            self.cw_stub.assert_no_pending_responses()
            self.bk_stub.assert_no_pending_responses()
            self.s3_stub.assert_no_pending_responses()
        return checks


@pytest.fixture
def objectives():
    return verify.objectives_of_stack("prod")


@pytest.fixture
def world(prod, objectives, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    # moto's AWS Backup clock reads NOW, so a vault lock's LockDate is NOW + its grace period,
    # as AWS would report it to a verify run at NOW.
    monkeypatch.setattr("moto.backup.models.unix_time", NOW.timestamp)
    with mock_aws():
        yield World(prod, objectives)


def failing(checks):
    return sorted((c.check, c.target) for c in checks if not c.ok)


def test_healthy_prod_passes_every_check(world):
    """Stubber: recovery points and replication metrics (see the module docstring)."""
    checks = world.run()
    assert failing(checks) == []
    kinds = {c.check for c in checks}
    assert kinds == {
        "backup-recovery-point",
        "pgbackrest-last-backup",
        "pgbackrest-archive-lag",
        "s3-replication",
        "s3-replication-rule",
        "s3-replication-metrics",
        "secret-replica",
        "config-in-sync",
        "vault-lock",
        "aws-config-recording",
        "backup-reports-role",
        "backup-opt-in",
        "primary-probe",
    }
    assert verify.verdict(checks) is verify.Status.PASS
    per_class = {c.data_class for c in checks if c.check == "backup-recovery-point"}
    assert per_class == set(CLASSES)
    audio = next(c for c in checks if c.check == "s3-replication" and "creator-audio" in c.target)
    assert audio.data_class == "critical" and audio.measured == 2 and audio.objective == 2
    assert len([c for c in checks if c.check == "secret-replica"]) == 5
    for c in checks:
        assert set(c.to_dict()) == {
            "check",
            "class",
            "target",
            "measured",
            "objective",
            "status",
            "ok",
            "detail",
        }


def test_stale_recovery_point_fails_its_class(world):
    """Stubber: ListRecoveryPointsByBackupVault. Important (RPO 1 h): newest point 2 h old."""
    world.recovery_point_age["important"] = dt.timedelta(hours=2)
    checks = world.run()
    [bad] = [c for c in checks if not c.ok]
    assert (bad.check, bad.data_class, bad.objective) == (
        "backup-recovery-point",
        "important",
        3600,
    )
    assert bad.measured == pytest.approx(7200, abs=1)


def test_a_class_without_any_recovery_point_fails(world):
    """Stubber: ListRecoveryPointsByBackupVault answers no points for the operational plan."""
    world.recovery_point_age["operational"] = None
    checks = world.run()
    [bad] = [c for c in checks if not c.ok]
    assert (bad.check, bad.data_class, bad.status) == (
        "backup-recovery-point",
        "operational",
        verify.Status.FAIL,
    )
    assert "never backed this class up" in bad.detail


def test_missing_replication_rule_fails(world):
    """Stubber: CloudWatch metrics of the rules that remain."""
    world.put_replication("user-assets", [DR])
    checks = world.run()
    third = world.outputs["buckets"]["user-assets"][THIRD]
    [bad] = [c for c in checks if not c.ok]
    assert bad.check == "s3-replication" and bad.measured == 1 and bad.objective == 2
    assert f"missing {third}" in bad.detail


def test_bucket_without_class_tag_fails(world):
    """Stubber: CloudWatch metrics. Untagged, a copy has no objective and no backup selection."""
    source = world.outputs["buckets"]["generated-archive"][PRIMARY]
    world.client("s3", PRIMARY).delete_bucket_tagging(Bucket=source)
    checks = world.run()
    bad = [c for c in checks if not c.ok]
    # The replication config and both rules' metrics: without a class there is no RPO to meet.
    assert [(c.check, c.target.split(" ")[0], c.data_class) for c in bad] == [
        ("s3-replication", source, "unknown"),
        ("s3-replication-metrics", source, "unknown"),
        ("s3-replication-metrics", source, "unknown"),
    ]
    assert "no backup-class tag" in bad[0].detail


@pytest.mark.parametrize(
    ("latency", "failed", "ok"),
    [(600.0, 0.0, True), (1200.0, 0.0, False), (30.0, 2.0, False)],
)
def test_replication_metrics_against_the_critical_rpo(world, latency, failed, ok):
    """Stubber: CloudWatch GetMetricStatistics (AWS/S3 ReplicationLatency, OperationsFailed...)."""
    destination = world.outputs["buckets"]["creator-audio"][DR]
    world.latency[destination] = latency
    world.failed_operations[destination] = failed
    checks = world.run()
    expected = (
        []
        if ok
        else [
            (
                "s3-replication-metrics",
                f"{world.outputs['buckets']['creator-audio'][PRIMARY]} -> {destination}",
            )
        ]
    )
    assert failing(checks) == expected
    check = next(
        c for c in checks if c.check == "s3-replication-metrics" and c.target.endswith(destination)
    )
    assert check.objective == 900 and check.measured == latency


def test_secret_without_replica_fails(world):
    """Stubber only for recovery points and metrics; the secret replica removal is moto."""
    name = "platform-dr/prod/api-keys/email"
    sm = world.client("secretsmanager", PRIMARY)
    sm.remove_regions_from_replication(
        SecretId=world.outputs["secretArns"][name][PRIMARY], RemoveReplicaRegions=[DR]
    )
    checks = world.run()
    assert failing(checks) == [("secret-replica", name)]


def test_config_drift_between_regions_fails(world):
    """Stubber only for recovery points and metrics; the SSM drift is moto."""
    world.client("ssm", DR).put_parameter(
        Name="/platform-dr/prod/flags/maintenance-mode", Value="on", Type="String", Overwrite=True
    )
    checks = world.run()
    [bad] = [c for c in checks if not c.ok]
    assert bad.check == "config-in-sync" and bad.measured == 1
    assert "/platform-dr/prod/flags/maintenance-mode differs" in bad.detail
    assert "on" not in bad.detail.split("differs")[-1]


def test_vault_without_lock_fails(world):
    """Stubber only for recovery points and metrics; the vault lock is moto."""
    vault = world.outputs["backupVaultNames"][DR]
    world.client("backup", DR).delete_backup_vault_lock_configuration(BackupVaultName=vault)
    checks = world.run()
    assert failing(checks) == [("vault-lock", f"{DR}/{vault}")]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"last_archived_time": NOW - dt.timedelta(minutes=20)}, ["repo1", "repo2"]),
        ({"last_archived_time": NOW - dt.timedelta(minutes=20), "unarchived_writes": False}, []),
        (
            {
                "archive": {
                    1: {"max_wal": "x", "lag_segments": 0},
                    2: {"max_wal": "y", "lag_segments": 3},
                }
            },
            ["repo2"],
        ),
    ],
)
def test_database_archive_lag_against_the_critical_rpo(world, changes, expected):
    """Stubber only for recovery points and metrics; the database state is injected data."""
    checks = world.run(fresh_database(**changes))
    assert [t for c, t in failing(checks) if c == "pgbackrest-archive-lag"] == expected


def test_database_backup_older_than_the_schedule_fails(world):
    old = int((NOW - dt.timedelta(hours=3)).timestamp())
    backup = {"label": "old", "type": "incr", "timestamp": {"start": old, "stop": old}}
    checks = world.run(fresh_database(backups={1: [backup], 2: []}))
    assert failing(checks) == [
        ("pgbackrest-last-backup", "repo1"),
        ("pgbackrest-last-backup", "repo2"),
    ]


def test_self_managed_database_without_a_source_is_unknown_not_passed(world):
    checks = verify.run_checks("prod", world.objectives, world.outputs, world.factory(), now=NOW)
    [bad] = [c for c in checks if not c.ok]
    assert bad.check == "pgbackrest" and "not measured" in bad.detail
    assert bad.status is verify.Status.UNKNOWN
    assert verify.verdict(checks) is verify.Status.UNKNOWN


# ---------------------------------------------------------------------------------------------
# Proves or fails: every declared field, no datapoints, missing outputs, the lock's bounds


def _rule_target(world, dataset, region):
    copies = world.outputs["buckets"][dataset]
    return f"{copies[PRIMARY]} -> {copies[region]}"


OTHER_KEY = "arn:aws:kms:us-east-1:111122223333:key/mrk-someone-elses"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r["DeleteMarkerReplication"].update(Status="Disabled"), "DeleteMarker"),
        (
            lambda r: r["SourceSelectionCriteria"]["ReplicaModifications"].update(
                Status="Disabled"
            ),
            "ReplicaModifications.Status",
        ),
        (
            lambda r: r["SourceSelectionCriteria"].pop("SseKmsEncryptedObjects"),
            "SseKmsEncryptedObjects.Status is 'absent'",
        ),
        (
            lambda r: r["Destination"]["EncryptionConfiguration"].update(ReplicaKmsKeyID=OTHER_KEY),
            "ReplicaKmsKeyID",
        ),
        (lambda r: r["Destination"]["ReplicationTime"].update(Status="Disabled"), "Replication"),
        (lambda r: r["Destination"].pop("Metrics"), "Metrics.Status is 'absent'"),
        (
            lambda r: r["Destination"].update(Bucket="arn:aws:s3:::somewhere-else"),
            "Destination.Bucket",
        ),
        (lambda r: r.update(Filter={"Prefix": "audio/"}), "limits the rule"),
        (lambda r: r.pop("Filter"), "not a V2 rule"),
    ],
)
def test_a_live_rule_that_differs_from_the_program_in_one_field_fails(world, change, field):
    """Stubber: GetBucketReplication (moto drops these fields; see the module docstring)."""
    change(world.rule("creator-audio", THIRD))
    checks = world.run()
    target = _rule_target(world, "creator-audio", THIRD)
    assert failing(checks) == [("s3-replication-rule", target)]
    [bad] = [c for c in checks if not c.ok]
    assert field in bad.detail and bad.status is verify.Status.FAIL


def test_no_metric_datapoints_is_unknown_and_fails_the_run(world):
    """Stubber: GetMetricStatistics answers no datapoints for one rule's latency."""
    destination = world.outputs["buckets"]["user-assets"][DR]
    world.latency[destination] = None
    checks = world.run()
    [bad] = [c for c in checks if not c.ok]
    assert bad.check == "s3-replication-metrics" and bad.status is verify.Status.UNKNOWN
    assert "no ReplicationLatency datapoints" in bad.detail
    assert verify.verdict(checks) is verify.Status.UNKNOWN


def test_failed_operations_fail_even_without_latency_datapoints(world):
    """Stubber: no latency datapoints, 3 failed operations."""
    destination = world.outputs["buckets"]["user-assets"][DR]
    world.latency[destination] = None
    world.failed_operations[destination] = 3.0
    checks = world.run()
    [bad] = [c for c in checks if not c.ok]
    assert bad.status is verify.Status.FAIL and "3 failed operation(s)" in bad.detail


def _without(outputs, *path):
    trimmed = copy.deepcopy(outputs)
    holder = trimmed
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return trimmed


@pytest.mark.parametrize(
    ("path", "group"),
    [
        (("backupPlanIds",), "backup-recovery-point"),
        (("backupPlanIds", "important"), "backup-recovery-point"),
        (("backupVaultNames",), "backup-recovery-point"),
        (("database",), "database"),
        (("bucketKeyArns",), "s3-replication"),
        (("bucketArns", "user-assets", "eu-west-1"), "s3-replication"),
        (("secretArns",), "secret-replica"),
    ],
)
def test_a_missing_output_fails_naming_the_key(world, path, group):
    """Stubber answers are queued for the full outputs; the trimmed run leaves some unused."""
    checks = world.run(outputs=_without(world.outputs, *path))
    key = ".".join(path)
    named = [c for c in checks if c.check == group and not c.ok]
    assert named and f"stack output {key!r} is missing" in named[0].detail, checks
    assert named[0].status is verify.Status.FAIL
    # The other groups still ran.
    assert {"config-in-sync", "vault-lock"} <= {c.check for c in checks}


def test_a_deployed_backend_other_than_the_stack_file_fails(world):
    outputs = copy.deepcopy(world.outputs)
    outputs["database"]["backend"] = "rds"
    checks = world.run(outputs=outputs)
    [bad] = [c for c in checks if c.check == "database"]
    assert bad.status is verify.Status.FAIL and "declares dbBackend self-managed" in bad.detail


def test_supabase_database_is_unknown_not_passed(world):
    world.objectives = dataclasses.replace(world.objectives, db_backend="supabase")
    outputs = copy.deepcopy(world.outputs)
    outputs["database"]["backend"] = "supabase"
    checks = world.run(outputs=outputs)
    [db] = [c for c in checks if c.check == "database"]
    assert db.status is verify.Status.UNKNOWN


def _relock(world, region, **lock):
    vault = world.outputs["backupVaultNames"][region]
    backup = world.client("backup", region)
    backup.delete_backup_vault_lock_configuration(BackupVaultName=vault)
    backup.put_backup_vault_lock_configuration(BackupVaultName=vault, **lock)
    return f"{region}/{vault}"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"MinRetentionDays": 1}, "min retention days 1, the program declares"),
        ({"MaxRetentionDays": 3650}, "max retention days 3650, the program declares 365"),
        ({"ChangeableForDays": 30}, "changeable for 30 d more, the program declares at most 3 d"),
    ],
)
def test_vault_lock_bounds_are_compared_with_the_program(world, change, needle):
    """moto: the lock (its LockDate is moto's NOW + ChangeableForDays)."""
    lock = vault_lock_settings(world.objectives)
    settings = {
        "MinRetentionDays": lock.min_retention_days,
        "MaxRetentionDays": lock.max_retention_days,
        "ChangeableForDays": 3,
        **change,
    }
    target = _relock(world, DR, **settings)
    checks = world.run()
    assert failing(checks) == [("vault-lock", target)]
    [bad] = [c for c in checks if not c.ok]
    assert needle in bad.detail


def test_a_vault_lock_past_its_grace_is_immutable_and_passes(world):
    """moto: the lock; verify runs four days after it was set."""
    checks = verify.run_checks(
        "prod",
        world.objectives,
        world.outputs,
        world.factory(),
        now=NOW + dt.timedelta(days=4),
        groups=[VAULT_LOCKS],
    )
    assert [c.status for c in checks] == [verify.Status.PASS] * 2
    assert all("immutable" in c.detail for c in checks)


@pytest.mark.parametrize(
    ("offset", "grace", "ok"),
    [
        # 3 d + 2 h of grace left, stated at UTC-3:30: too long. Compared on wall clocks with
        # the offset dropped it would look like 2 d 22.5 h, inside the 3 days.
        (dt.timedelta(hours=-3, minutes=-30), dt.timedelta(days=3, hours=2), False),
        # 2 d 22 h left, stated at UTC+5:30: fine. Dropping the offset would make it 3 d 3.5 h.
        (dt.timedelta(hours=5, minutes=30), dt.timedelta(days=2, hours=22), True),
    ],
)
def test_the_lock_date_is_compared_in_utc_whatever_its_offset(world, offset, grace, ok):
    """Stubber: DescribeBackupVault answering a LockDate with a non-UTC offset."""
    lock = vault_lock_settings(world.objectives)
    client = world.sessions[DR].client("backup")
    stub = Stubber(client)
    vault = world.outputs["backupVaultNames"][DR]
    stub.add_response(
        "describe_backup_vault",
        {
            "BackupVaultName": vault,
            "Locked": True,
            "MinRetentionDays": lock.min_retention_days,
            "MaxRetentionDays": lock.max_retention_days,
            "LockDate": (NOW + grace).astimezone(dt.timezone(offset)),
        },
        {"BackupVaultName": vault},
    )
    stub.activate()
    outputs = {"backupVaultNames": {DR: vault}}
    checks = verify.run_checks(
        "prod", world.objectives, outputs, lambda s, r: client, now=NOW, groups=[VAULT_LOCKS]
    )
    stub.assert_no_pending_responses()
    assert [c.ok for c in checks] == [ok], checks[0].detail


def test_a_new_check_group_is_one_entry_in_the_registry(world):
    """The place other checks are added: a CheckGroup in CHECKS; it runs with the others and a
    missing output it needs fails it by name."""
    names = [g.name for g in verify.CHECKS]
    assert len(names) == len(set(names))

    def prerequisites(ctx):
        region = ctx.objectives.regions.dr
        return [verify.Check("aws-config", "all", region, 1, 1, verify.Status.PASS, "recorder on")]

    group = verify.CheckGroup("aws-config", prerequisites, needs=("configRecorderNames",))
    checks = verify.run_checks(
        "prod", world.objectives, world.outputs, world.factory(), now=NOW, groups=[group]
    )
    assert [(c.check, c.status) for c in checks] == [("aws-config", verify.Status.FAIL)]
    assert "'configRecorderNames' is missing" in checks[0].detail
    outputs = {**world.outputs, "configRecorderNames": {"us-west-2": "default"}}
    checks = verify.run_checks(
        "prod", world.objectives, outputs, world.factory(), now=NOW, groups=[group]
    )
    assert [c.status for c in checks] == [verify.Status.PASS]


# ---------------------------------------------------------------------------------------------
# RDS backend


def _rds_world(world):
    world.objectives = dataclasses.replace(world.objectives, db_backend="rds")
    instance = world.client("rds", PRIMARY).create_db_instance(
        DBInstanceIdentifier="platform-dr-prod",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-printed-1",
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )["DBInstance"]
    replica_arn = f"arn:aws:rds:{DR}:123456789012:auto-backup:ab-platform-dr-prod"
    world.outputs["database"] = {
        "backend": "rds",
        "rdsInstanceArn": instance["DBInstanceArn"],
        "automatedBackupsReplicationArn": replica_arn,
    }
    return instance, replica_arn


def _stub_dr_replica(world, replica_arn, latest):
    client = world.sessions[DR].client("rds")
    stub = Stubber(client)
    stub.add_response(
        "describe_db_instance_automated_backups",
        {
            "DBInstanceAutomatedBackups": [
                {
                    "DBInstanceAutomatedBackupsArn": replica_arn,
                    "Region": DR,
                    "Status": "replicating",
                    "RestoreWindow": {
                        "EarliestTime": NOW - dt.timedelta(days=7),
                        "LatestTime": latest,
                    },
                }
            ]
        },
        {"DBInstanceAutomatedBackupsArn": replica_arn},
    )
    stub.activate()
    world.rds_stub = {DR: client}
    return stub


@pytest.mark.parametrize(
    ("lag", "ok"), [(dt.timedelta(minutes=5), True), (dt.timedelta(minutes=40), False)]
)
def test_rds_primary_on_moto_and_dr_replica_restorable(world, lag, ok):
    """moto: the instance and its LatestRestorableTime (always "now" in moto).
    Stubber: DescribeDBInstanceAutomatedBackups in the DR region (moto does not replicate)."""
    instance, replica_arn = _rds_world(world)
    stub = _stub_dr_replica(world, replica_arn, NOW - lag)
    checks = [c for c in world.run() if c.check.startswith("rds")]
    stub.assert_no_pending_responses()
    assert [c.check for c in checks] == ["rds-latest-restorable", "rds-dr-replica-restorable"]
    assert checks[0].ok and checks[0].target == instance["DBInstanceArn"]
    assert checks[1].ok is ok and checks[1].objective == 900


def test_rds_stale_latest_restorable_time_fails(world):
    """Stubber: DescribeDBInstances with a LatestRestorableTime 30 min old (moto reports "now")."""
    instance, replica_arn = _rds_world(world)
    _stub_dr_replica(world, replica_arn, NOW)
    primary = world.sessions[PRIMARY].client("rds")
    stub = Stubber(primary)
    stub.add_response(
        "describe_db_instances",
        {
            "DBInstances": [
                {
                    "DBInstanceIdentifier": "platform-dr-prod",
                    "LatestRestorableTime": NOW - dt.timedelta(minutes=30),
                }
            ]
        },
        {"DBInstanceIdentifier": instance["DBInstanceArn"]},
    )
    stub.activate()
    world.rds_stub[PRIMARY] = primary
    checks = world.run()
    assert failing(checks) == [("rds-latest-restorable", instance["DBInstanceArn"])]


# ---------------------------------------------------------------------------------------------
# The command


def test_cli_json_and_exit_code(world, monkeypatch, tmp_path):
    """Stubber: replication rules, recovery points and metrics. Without --pgbackrest-config the
    self-managed database is not measured: UNKNOWN, which fails the run (exit 1) unless
    --allow-unknown, and says why."""
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(world.outputs, default=str))
    monkeypatch.setattr(verify, "session_clients", lambda sessions: world.factory())
    result = CliRunner().invoke(
        app, ["verify", "--stack", "prod", "--json", "--outputs", str(outputs_file)]
    )
    assert result.exit_code == ExitCode.OBJECTIVE_NOT_MET, result.output
    document = json.loads(result.stdout)
    assert document["all_ok"] is False and document["verdict"] == "unknown"
    bad = [c for c in document["checks"] if not c["ok"]]
    assert [(c["check"], c["status"]) for c in bad] == [("pgbackrest", "unknown")]
    assert "not printed" not in result.output

    human = CliRunner().invoke(app, ["verify", "--stack", "prod", "--outputs", str(outputs_file)])
    assert human.exit_code == ExitCode.OBJECTIVE_NOT_MET
    assert "prod: UNKNOWN" in human.stdout
    assert "UNKNOWN pgbackrest" in human.stdout and "not measured" in human.stdout
    assert human.stdout.count("ok  ") == len(document["checks"]) - 1

    allowed = CliRunner().invoke(
        app, ["verify", "--stack", "prod", "--outputs", str(outputs_file), "--allow-unknown"]
    )
    assert allowed.exit_code == 0, allowed.output


def test_cli_allow_unknown_does_not_hide_a_failure(world, monkeypatch, tmp_path):
    """Stubber: as above; one secret replica is gone (moto), so the run fails regardless."""
    name = "platform-dr/prod/api-keys/email"
    world.client("secretsmanager", PRIMARY).remove_regions_from_replication(
        SecretId=world.outputs["secretArns"][name][PRIMARY], RemoveReplicaRegions=[DR]
    )
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(world.outputs, default=str))
    monkeypatch.setattr(verify, "session_clients", lambda sessions: world.factory())
    result = CliRunner().invoke(
        app,
        ["verify", "--json", "--outputs", str(outputs_file), "--allow-unknown"],
    )
    assert result.exit_code == ExitCode.OBJECTIVE_NOT_MET
    assert json.loads(result.stdout)["verdict"] == "fail"


def test_cli_rejects_half_a_database_source(tmp_path):
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text("{}")
    result = CliRunner().invoke(
        app, ["verify", "--outputs", str(outputs_file), "--dsn", "host=/tmp port=1"]
    )
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert "--pgbackrest-config and --dsn go together" in result.stderr


def test_cli_without_pulumi_or_outputs_is_a_precondition(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = CliRunner().invoke(app, ["verify", "--stack", "prod"])
    assert result.exit_code == ExitCode.PRECONDITION_FAILED
    assert "--outputs FILE" in result.stderr
