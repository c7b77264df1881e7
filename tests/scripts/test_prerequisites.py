"""The live prerequisites of `drctl verify` (scripts/checks/verify/prerequisites.py): pass, fail.

moto implements AWS Config recorders, IAM roles and CloudWatch metrics, so those checks run
against it. AWS Backup's DescribeRegionSettings is not in moto 5: botocore's Stubber answers it
(and validates each request against the real service model).
"""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from components.objectives import parse_objectives
from policy.aws_semantics.services import BACKUP_AUDIT_CONFIG_TYPES
from scripts.checks.verify.prerequisites import REPORTS_ROLE_PATH, prerequisite_checks
from scripts.local.evaluate import read_stack_config

PRIMARY, DR = "us-east-1", "us-west-2"
RECORD = "db.music-platform.example"
OUTPUTS = {"drStandby": {"recordName": RECORD, "drRegion": DR}}


@pytest.fixture
def objectives():
    return parse_objectives(read_stack_config("prod"), "prod")


class Cloud:
    """Healthy prerequisites in moto; tests take one away."""

    def __init__(self):
        self.opt_in = {PRIMARY: {"S3": True, "RDS": True}, DR: {"S3": True, "RDS": True}}
        self.session = boto3.session.Session(region_name=PRIMARY)
        self.moto = {}

    def client(self, service, region):
        if (service, region) not in self.moto:
            self.moto[(service, region)] = self.session.client(service, region_name=region)
        return self.moto[(service, region)]

    def record(self, types=BACKUP_AUDIT_CONFIG_TYPES, start=True, channel=True):
        config = self.client("config", PRIMARY)
        config.put_configuration_recorder(
            ConfigurationRecorder={
                "name": "platform-dr-prod",
                "roleARN": "arn:aws:iam::123456789012:role/config",
                "recordingGroup": {
                    "allSupported": False,
                    "includeGlobalResourceTypes": False,
                    "resourceTypes": list(types),
                },
            }
        )
        if channel:
            config.put_delivery_channel(
                DeliveryChannel={"name": "platform-dr-prod", "s3BucketName": "reports"}
            )
        if start:
            config.start_configuration_recorder(ConfigurationRecorderName="platform-dr-prod")

    def reports_role(self):
        # AWS names it AWSServiceRoleForBackupReports under this path (moto misspells the name
        # create-service-linked-role would give, so the role is made as AWS makes it).
        self.client("iam", PRIMARY).create_role(
            RoleName="AWSServiceRoleForBackupReports",
            Path=REPORTS_ROLE_PATH,
            AssumeRolePolicyDocument="{}",
        )

    def probe(self, value=1.0):
        self.client("cloudwatch", DR).put_metric_data(
            Namespace="platform-dr",
            MetricData=[
                {
                    "MetricName": "PrimaryDatabaseUp",
                    "Dimensions": [{"Name": "Database", "Value": RECORD}],
                    "Value": value,
                    "Unit": "Count",
                }
            ],
        )

    def factory(self):
        stubs = {}
        for region in (PRIMARY, DR):
            client = self.session.client("backup", region_name=region)
            stub = Stubber(client)
            preference = self.opt_in[region]
            stub.add_response(
                "describe_region_settings",
                {"ResourceTypeOptInPreference": {**preference, "DynamoDB": True}},
                {},
            )
            stub.activate()
            stubs[region] = (client, stub)
        self.stubs = stubs

        def clients(service, region):
            if service == "backup":
                return stubs[region][0]
            return self.client(service, region)

        return clients


@pytest.fixture
def cloud(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        world = Cloud()
        world.record()
        world.reports_role()
        world.probe()
        yield world


def run(cloud, objectives, recording="stack"):
    # Now, not the module's NOW: the probe's datapoint was published a moment ago.
    checks = prerequisite_checks(
        objectives,
        OUTPUTS,
        cloud.factory(),
        config_recording=recording,
        now=dt.datetime.now(dt.UTC),
    )
    for _, stub in cloud.stubs.values():
        stub.assert_no_pending_responses()
    return {(c.check, c.target): c for c in checks}


def failing(checks):
    return sorted(key for key, c in checks.items() if not c.ok)


def test_healthy_prerequisites_each_pass_on_their_own_line(cloud, objectives):
    checks = run(cloud, objectives)
    assert failing(checks) == []
    assert sorted({check for check, _ in checks}) == [
        "aws-config-recording",
        "backup-opt-in",
        "backup-reports-role",
        "primary-probe",
    ]
    assert {t for c, t in checks if c == "backup-opt-in"} == {PRIMARY, DR}
    assert all(c.data_class == "all" for c in checks.values())


def test_no_recorder_fails_and_says_who_should_record(cloud, objectives):
    cloud.client("config", PRIMARY).stop_configuration_recorder(
        ConfigurationRecorderName="platform-dr-prod"
    )
    checks = run(cloud, objectives, recording="organization")
    (bad,) = [c for c in checks.values() if not c.ok]
    assert bad.check == "aws-config-recording" and bad.measured == "stopped"
    assert "the organisation" in bad.detail


def test_a_recorder_missing_backup_types_fails(cloud, objectives):
    cloud.client("config", PRIMARY).delete_configuration_recorder(
        ConfigurationRecorderName="platform-dr-prod"
    )
    cloud.record(types=["AWS::Backup::BackupPlan"])
    (bad,) = [c for c in run(cloud, objectives).values() if not c.ok]
    assert "does not record AWS::Backup::BackupSelection" in bad.detail


def test_missing_reports_role_fails_with_the_command_that_creates_it(cloud, objectives):
    iam = cloud.client("iam", PRIMARY)
    iam.delete_role(RoleName="AWSServiceRoleForBackupReports")
    (bad,) = [c for c in run(cloud, objectives).values() if not c.ok]
    assert bad.check == "backup-reports-role"
    assert "create-service-linked-role --aws-service-name reports.backup.amazonaws.com" in (
        bad.detail
    )


def test_a_region_not_opted_in_to_s3_fails_that_region_only(cloud, objectives):
    """Stubber: DescribeRegionSettings (moto lacks it)."""
    cloud.opt_in[DR] = {"S3": False, "RDS": True}
    checks = run(cloud, objectives)
    assert failing(checks) == [("backup-opt-in", DR)]
    assert "not opted in to S3" in checks[("backup-opt-in", DR)].detail


def test_a_probe_that_never_ran_fails(objectives, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        cloud = Cloud()
        cloud.record()
        cloud.reports_role()
        checks = run(cloud, objectives)
    assert failing(checks) == [("primary-probe", f"{DR}/platform-dr/PrimaryDatabaseUp/{RECORD}")]
    assert (
        "install the rendered platform-dr-primary-probe units" in checks[failing(checks)[0]].detail
    )


def test_an_aws_error_fails_only_its_own_line(cloud, objectives):
    def broken(service, region):
        if service == "iam":
            raise_client = boto3.client("iam", region_name=region)
            stub = Stubber(raise_client)
            stub.add_client_error("list_roles", "AccessDenied", "no iam:ListRoles")
            stub.activate()
            return raise_client
        return factory(service, region)

    factory = cloud.factory()
    checks = prerequisite_checks(objectives, OUTPUTS, broken, now=dt.datetime.now(dt.UTC))
    bad = [c for c in checks if not c.ok]
    assert [c.check for c in bad] == ["backup-reports-role"]
    assert "AccessDenied" in bad[0].detail
