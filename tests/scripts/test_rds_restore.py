"""drctl restore for the rds backend, on moto's RDS.

moto 5 implements RestoreDBInstanceToPointInTime and DescribeDBInstances (with
LatestRestorableTime) but returns no RestoreWindow from DescribeDBInstanceAutomatedBackups and
does not implement automated-backups replication. So the primary-region tests run on moto and
exercise the "retention-estimate" window; the RestoreWindow path and the DR-region restore
(--from-repo 2, SourceDBInstanceAutomatedBackupsArn) use botocore.stub.Stubber, which validates
every request against the real RDS service model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from scripts.common import DrctlError, ExitCode
from scripts.dataops import rds_restore

SOURCE = rds_restore.RdsSource(
    identifier="platform-dr-prod",
    region="us-east-1",
    dr_region="us-west-2",
    critical_rpo_s=900,
    pitr_window_days=7,
)
KMS = "arn:aws:kms:us-east-1:111122223333:key/mrk-0123"


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        rds = session.client("rds")
        rds.create_db_parameter_group(
            DBParameterGroupName="platform-dr-pg",
            DBParameterGroupFamily="postgres16",
            Description="force ssl",
        )
        rds.create_db_instance(
            DBInstanceIdentifier=SOURCE.identifier,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="postgres",
            ManageMasterUserPassword=True,
            BackupRetentionPeriod=7,
            StorageEncrypted=True,
            KmsKeyId=KMS,
            DBParameterGroupName="platform-dr-pg",
            EnableCloudwatchLogsExports=["postgresql"],
            DeletionProtection=True,
            Tags=[{"Key": "backup-class", "Value": "critical"}],
        )
        yield session


def _source_state(session) -> dict:
    described = session.client("rds").describe_db_instances(DBInstanceIdentifier=SOURCE.identifier)
    state = dict(described["DBInstances"][0])
    state.pop("LatestRestorableTime")  # moto reports "now" on every call
    return state


def _instances(session) -> set[str]:
    return {
        d["DBInstanceIdentifier"]
        for d in session.client("rds").describe_db_instances()["DBInstances"]
    }


def _created(session) -> datetime:
    described = session.client("rds").describe_db_instances(DBInstanceIdentifier=SOURCE.identifier)
    return described["DBInstances"][0]["InstanceCreateTime"].astimezone(UTC)


def test_dry_run_by_default_creates_nothing(aws, capsys):
    plan = rds_restore.run(
        stack="prod", target_time="latest", to="restored-1", source=SOURCE, session=aws
    )
    assert plan.status == "planned"
    assert _instances(aws) == {SOURCE.identifier}
    assert "dry run" in capsys.readouterr().err


def test_execute_restores_into_new_instance_and_leaves_source_untouched(aws):
    before = _source_state(aws)
    when = _created(aws) + timedelta(microseconds=1)
    plan = rds_restore.run(
        stack="prod",
        target_time=when.isoformat(),
        to="restored-1",
        execute=True,
        yes=True,
        source=SOURCE,
        session=aws,
    )
    assert plan.status == "restored"
    assert _instances(aws) == {SOURCE.identifier, "restored-1"}
    assert _source_state(aws) == before
    restored = aws.client("rds").describe_db_instances(DBInstanceIdentifier="restored-1")
    restored = restored["DBInstances"][0]
    tags = {t["Key"]: t["Value"] for t in restored["TagList"]}
    assert tags[rds_restore.TAG_SOURCE] == SOURCE.identifier
    assert tags["backup-class"] == "critical"  # the source's tags travel with the copy
    assert restored["DeletionProtection"] is True
    assert restored["DBParameterGroups"][0]["DBParameterGroupName"] == "platform-dr-pg"
    assert plan.request["RestoreTime"] == when


def test_second_run_is_a_resume_not_a_second_restore(aws):
    kwargs = dict(
        stack="prod",
        target_time="latest",
        to="restored-1",
        execute=True,
        yes=True,
        source=SOURCE,
        session=aws,
    )
    assert rds_restore.run(**kwargs).status == "restored"
    assert rds_restore.run(**kwargs).status == "already-restored"
    assert _instances(aws) == {SOURCE.identifier, "restored-1"}


@pytest.mark.parametrize("offset", [timedelta(hours=-1), timedelta(hours=1)])
def test_target_time_outside_window_is_refused_before_any_call(aws, offset):
    base = _created(aws) if offset < timedelta(0) else datetime.now(UTC)
    when = base + offset
    with pytest.raises(DrctlError) as err:
        rds_restore.run(
            stack="prod",
            target_time=when.isoformat(),
            to="restored-1",
            execute=True,
            yes=True,
            source=SOURCE,
            session=aws,
        )
    assert err.value.code == ExitCode.INVALID_CONFIG
    assert "outside the restorable window" in str(err.value)
    assert "earliest" in str(err.value) and "latest" in str(err.value)
    assert _instances(aws) == {SOURCE.identifier}


@pytest.mark.parametrize(
    "to, needle",
    [
        (SOURCE.identifier, "is the source instance"),
        ("1bad", "RDS instance identifier"),
        ("bad--name", "RDS instance identifier"),
    ],
)
def test_bad_target_identifier_is_refused(aws, to, needle):
    with pytest.raises(DrctlError, match=needle):
        rds_restore.run(
            stack="prod",
            target_time="latest",
            to=to,
            execute=True,
            yes=True,
            source=SOURCE,
            session=aws,
        )
    assert _instances(aws) == {SOURCE.identifier}


def test_existing_foreign_target_is_refused(aws):
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier="someone-else",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="postgres",
        ManageMasterUserPassword=True,
    )
    with pytest.raises(DrctlError) as err:
        rds_restore.run(
            stack="prod",
            target_time="latest",
            to="someone-else",
            execute=True,
            yes=True,
            source=SOURCE,
            session=aws,
        )
    assert err.value.code == ExitCode.REFUSED


def test_naive_or_garbage_time_is_a_clear_error():
    for value in ("2026-11-26T18:00:00", "yesterday"):
        with pytest.raises(DrctlError, match="--target-time .* UTC offset"):
            rds_restore.parse_target_time(value)
    assert rds_restore.parse_target_time("2026-11-26T18:00:00Z") == datetime(
        2026, 11, 26, 18, tzinfo=UTC
    )


def test_missing_source_points_at_the_dr_copy(aws):
    gone = rds_restore.RdsSource("not-there", "us-east-1", "us-west-2", 900, 7)
    with pytest.raises(DrctlError, match="--from-repo 2") as err:
        rds_restore.run(stack="prod", target_time="latest", to="r1", source=gone, session=aws)
    assert err.value.code == ExitCode.PRECONDITION_FAILED


# --- RestoreWindow and DR-region restore: Stubber (moto lacks both; see module docstring) ---

BACKUP_ARN = "arn:aws:rds:us-west-2:111122223333:auto-backup:ab-0123456789abcdefghijklmnopqrstu"


class _StubSession:
    def __init__(self, client):
        self._client = client

    def client(self, service, region_name=None):
        assert service == "rds" and region_name == SOURCE.dr_region
        return self._client


def _dr_client(earliest: datetime, latest: datetime):
    client = boto3.client(
        "rds", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "describe_db_instance_automated_backups",
        {
            "DBInstanceAutomatedBackups": [
                # A deleted namesake's retained backup, and another instance's: both ignored.
                {
                    "DBInstanceIdentifier": SOURCE.identifier,
                    "DBInstanceAutomatedBackupsArn": BACKUP_ARN + "-old",
                    "Region": "us-east-1",
                    "Status": "retained",
                    "RestoreWindow": {"EarliestTime": earliest, "LatestTime": latest},
                },
                {
                    "DBInstanceIdentifier": "someone-else",
                    "DBInstanceAutomatedBackupsArn": BACKUP_ARN + "-other",
                    "Region": "us-east-1",
                    "Status": "replicating",
                },
                {
                    "DBInstanceIdentifier": SOURCE.identifier,
                    "DBInstanceAutomatedBackupsArn": BACKUP_ARN,
                    "Region": "us-east-1",
                    "Status": "replicating",
                    "RestoreWindow": {"EarliestTime": earliest, "LatestTime": latest},
                },
            ]
        },
        {},  # unfiltered: the identifier filter must name an instance in the region asked
    )
    stubber.add_client_error(
        "describe_db_instances",
        "DBInstanceNotFound",
        expected_params={"DBInstanceIdentifier": "dr-1"},
    )
    return client, stubber


def test_dr_region_restore_uses_the_replicated_backup_window_and_arn():
    now = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
    client, stubber = _dr_client(now - timedelta(days=7), now - timedelta(minutes=5))
    when = now - timedelta(hours=2)
    stubber.add_response(
        "restore_db_instance_to_point_in_time",
        {"DBInstance": {"DBInstanceIdentifier": "dr-1"}},
        {
            "SourceDBInstanceAutomatedBackupsArn": BACKUP_ARN,
            "TargetDBInstanceIdentifier": "dr-1",
            "RestoreTime": when,
            "DeletionProtection": True,
            "CopyTagsToSnapshot": True,
            "PubliclyAccessible": False,
            "Tags": [
                {"Key": rds_restore.TAG_SOURCE, "Value": SOURCE.identifier},
                {"Key": rds_restore.TAG_TIME, "Value": "2026-11-26T16:00:00Z"},
            ],
        },
    )
    with stubber:
        plan = rds_restore.run(
            stack="prod",
            target_time=when.isoformat(),
            to="dr-1",
            from_repo=2,
            execute=True,
            yes=True,
            source=SOURCE,
            session=_StubSession(client),
        )
        stubber.assert_no_pending_responses()
    assert plan.status == "restored" and plan.region == "us-west-2"
    assert plan.window.basis == "restore-window"


def test_dr_latest_older_than_rpo_needs_accept_data_loss():
    now = datetime.now(UTC)
    client, stubber = _dr_client(now - timedelta(days=7), now - timedelta(hours=1))
    with stubber, pytest.raises(DrctlError, match="--accept-data-loss") as err:
        rds_restore.plan_restore(
            _StubSession(client), SOURCE, target="dr-1", target_time=None, from_repo=2
        )
    assert err.value.code == ExitCode.REFUSED
    client, stubber = _dr_client(now - timedelta(days=7), now - timedelta(hours=1))
    with stubber:
        plan = rds_restore.plan_restore(
            _StubSession(client),
            SOURCE,
            target="dr-1",
            target_time=None,
            from_repo=2,
            accept_data_loss=True,
        )
    assert plan.request["UseLatestRestorableTime"] is True


def test_source_is_read_from_the_stack_program():
    source = rds_restore.source_from_stack("prod", overrides={"dbBackend": "rds"})
    assert source == rds_restore.RdsSource("platform-dr-prod", "us-east-1", "us-west-2", 900, 7)
    with pytest.raises(DrctlError, match="declares no RDS instance") as err:
        rds_restore.source_from_stack("prod", overrides={"dbBackend": "self-managed"})
    assert err.value.code == ExitCode.INVALID_CONFIG


def test_api_failure_during_restore_is_one_clear_error(aws):
    """moto refuses a restore whose storage is smaller than the source's: a real API error."""
    client = aws.client("rds")
    real = client.restore_db_instance_to_point_in_time

    class _Session:
        def client(self, service, region_name=None):
            c = aws.client(service, region_name=region_name)
            c.restore_db_instance_to_point_in_time = lambda **kw: real(**kw, AllocatedStorage=5)
            return c

    with pytest.raises(DrctlError, match="RestoreDBInstanceToPointInTime failed") as err:
        rds_restore.run(
            stack="prod",
            target_time="latest",
            to="restored-1",
            execute=True,
            yes=True,
            source=SOURCE,
            session=_Session(),
        )
    assert err.value.code == ExitCode.STEP_FAILED
    assert _instances(aws) == {SOURCE.identifier}


def test_drctl_restore_dispatches_rds_stacks_here(aws, monkeypatch):
    """The real `drctl restore` (scripts/dataops/backup.py) on an rds stack, against moto."""
    import typer
    from typer.testing import CliRunner

    from scripts.dataops import backup

    monkeypatch.setattr(backup, "stack_backend", lambda stack: "rds")
    monkeypatch.setattr(rds_restore, "source_from_stack", lambda stack: SOURCE)
    monkeypatch.setattr(boto3, "Session", lambda: aws)
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    backup.register(app)
    runner = CliRunner()
    args = ["restore", "--stack", "prod", "--target-time", "latest", "--to", "restored-cli"]
    dry = runner.invoke(app, [*args, "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["status"] == "planned"
    assert _instances(aws) == {SOURCE.identifier}
    done = runner.invoke(app, [*args, "--execute", "--yes", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["request"]["UseLatestRestorableTime"] is True
    assert _instances(aws) == {SOURCE.identifier, "restored-cli"}
    refused = runner.invoke(app, [*args[:-1], SOURCE.identifier, "--execute", "--yes"])
    assert refused.exit_code == ExitCode.INVALID_CONFIG
