"""`drctl failover` for the rds backend, against moto's server in two regions.

RDS (read replica, PromoteReadReplica, snapshots), Route 53 (failover records, health check),
SSM, S3 and CloudWatch are moto. Secrets Manager is moto except StopReplicationToReplica, which
moto does not implement: that call is answered by botocore's Stubber, which validates the
request against the real service model and asserts the exact SecretId.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from scripts.cli import app
from scripts.common import DrctlError, ExitCode
from scripts.dataops.database import redact, split_password
from scripts.dataops.hosts import DbNode, LocalHost
from scripts.runbooks import failback as fb
from scripts.runbooks import failover as fo
from tests.scripts.dr_cloud import (
    DR,
    PRIMARY,
    CloudAws,
    MotoCloud,
    outputs_for,
    parameter,
    primary_record,
    replica_lag,
    seed,
)

PRIMARY_HOST = "platform-dr-prod.c0ffee.us-east-1.rds.amazonaws.com"
REPLICA_HOST = "dr-standby-replica.c0ffee.us-west-2.rds.amazonaws.com"


@pytest.fixture(scope="module")
def cloud():
    server = MotoCloud()
    yield server
    server.stop()


@pytest.fixture
def world(cloud, tmp_path):
    cloud.reset()
    seeded = seed(cloud, primary_endpoint=PRIMARY_HOST, standby_endpoint=REPLICA_HOST, rds=True)
    outputs = outputs_for(seeded, backend="rds", primary=PRIMARY_HOST, standby=REPLICA_HOST)
    plan = fo.load_plan("prod", outputs)
    aws = CloudAws(cloud=cloud)
    return cloud, seeded, outputs, plan, aws, tmp_path / "journal.json"


def _run(plan, aws, journal, **kw):
    return fo.run_failover(
        plan, aws, fo.Connections(), execute=True, yes=True, journal=journal, waiter_delay=1, **kw
    )


def test_plan_comes_from_the_stack_file_and_outputs(world):
    _, seeded, _, plan, _, _ = world
    assert plan.backend == "rds" and plan.rpo_s == 900 and plan.pitr_window_days == 7
    assert plan.active_region_parameter == "/platform-dr/prod/runtime/active-region"
    assert plan.dr_backup == {"kind": "rds", "source_arn": seeded.source_arn}


def test_rds_failover_promotes_switches_secrets_config_and_dns(world):
    cloud, seeded, _, plan, aws, journal = world
    replica_lag(cloud, 3.0)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = _run(plan, aws, journal)

    assert report.status == "completed" and report.rto_s is not None
    aws.stubber.assert_no_pending_responses()  # every DR secret replica was promoted
    replica = cloud.client("rds", DR).describe_db_instances(
        DBInstanceIdentifier="dr-standby-replica"
    )["DBInstances"][0]
    assert replica["BackupRetentionPeriod"] == 7  # PromoteReadReplica ran with the PITR window
    record = primary_record(cloud, plan)
    assert record["ResourceRecords"] == [{"Value": REPLICA_HOST}] and "HealthCheckId" not in record
    for region in (PRIMARY, DR):
        assert parameter(cloud, region, plan.active_region_parameter) == DR
        assert parameter(cloud, region, plan.database_host_parameter) == REPLICA_HOST
    doc = json.loads(journal.read_text())
    steps = {s["name"]: s for s in doc["steps"]}
    assert list(steps) == [
        "assess",
        "isolate",
        "promote",
        "switch-config",
        "switch-dns",
        "validate",
        "rearm",
    ]
    # The promoted RDS instance keeps automated backups: re-arming is checking they are on.
    assert steps["rearm"]["result"] == {"automated_backups_retention_days": 7}
    # The runbook's RTO ends when service is back (validate), not after re-arming.
    assert (
        doc["rto_s"]
        <= (
            dt.datetime.fromisoformat(steps["validate"]["finished_at"])
            - dt.datetime.fromisoformat(doc["started_at"])
        ).total_seconds()
    )
    assert steps["assess"]["result"]["lag_s"] == 3.0 and steps["assess"]["result"]["within_rpo"]
    assert steps["switch-dns"]["result"]["previous"]["records"] == [PRIMARY_HOST]
    assert steps["switch-config"]["result"]["secrets"]["promoted"] == [
        "platform-dr/prod/api/payments",
        "platform-dr/prod/integrations/cdn",
    ]


def test_lag_beyond_the_rpo_is_refused_and_nothing_changes(world):
    cloud, seeded, _, plan, aws, journal = world
    replica_lag(cloud, 1200.0)  # 20 min > the 15 min critical RPO
    with pytest.raises(DrctlError) as raised:
        _run(plan, aws, journal)
    assert raised.value.code == ExitCode.REFUSED and "--accept-data-loss" in str(raised.value)
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": PRIMARY_HOST}]
    assert parameter(cloud, DR, plan.active_region_parameter) is None
    assert json.loads(journal.read_text())["steps"][0]["status"] == "failed"

    # The operator accepts the loss: the same journal resumes and the failover completes.
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = _run(plan, aws, journal, accept_data_loss=True)
    assert report.status == "completed"
    assess = json.loads(journal.read_text())["steps"][0]
    assert assess["attempts"] == 2 and assess["result"]["accepted_data_loss"] is True


def test_unknown_lag_is_refused_like_excess_lag(world):
    _, _, _, plan, aws, journal = world  # no ReplicaLag datapoint at all
    with pytest.raises(DrctlError) as raised:
        _run(plan, aws, journal)
    assert raised.value.code == ExitCode.REFUSED and "unknown" in str(raised.value)


def test_missing_dr_backups_is_a_failed_precondition(cloud, tmp_path):
    cloud.reset()
    seeded = seed(
        cloud,
        primary_endpoint=PRIMARY_HOST,
        standby_endpoint=REPLICA_HOST,
        rds=True,
        dr_backup=False,
    )
    plan = fo.load_plan(
        "prod", outputs_for(seeded, backend="rds", primary=PRIMARY_HOST, standby=REPLICA_HOST)
    )
    replica_lag(cloud, 1.0)
    # A snapshot of some other database in the region does not count.
    rds_dr = cloud.client("rds", DR)
    rds_dr.create_db_instance(
        DBInstanceIdentifier="unrelated",
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        MasterUsername="postgres",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
    )
    rds_dr.create_db_snapshot(DBInstanceIdentifier="unrelated", DBSnapshotIdentifier="other")
    with pytest.raises(DrctlError) as raised:
        _run(plan, CloudAws(cloud=cloud), tmp_path / "j.json")
    assert raised.value.code == ExitCode.PRECONDITION_FAILED
    assert "no DR-region backup" in str(raised.value)


def test_an_interrupted_failover_resumes_and_a_finished_one_changes_nothing(world):
    cloud, seeded, _, plan, aws, journal = world
    replica_lag(cloud, 1.0)
    aws.expect_secret_promotions(seeded.secret_arns_dr)  # once: a repeat would be unexpected
    aws.fail_once.add(("route53", "change_resource_record_sets"))
    with pytest.raises(DrctlError) as raised:
        _run(plan, aws, journal)
    assert raised.value.code == ExitCode.STEP_FAILED and "injected outage" in str(raised.value)
    doc = json.loads(journal.read_text())
    assert [(s["name"], s["status"]) for s in doc["steps"]][-2:] == [
        ("switch-config", "completed"),
        ("switch-dns", "failed"),
    ]
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": PRIMARY_HOST}]

    report = _run(plan, aws, journal)  # the outage is over
    assert [s["status"] for s in report.steps] == ["done-earlier"] * 4 + ["completed"] * 3
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": REPLICA_HOST}]

    # Someone edits the record by hand; rerunning the finished failover must not touch it.
    r53 = cloud.client("route53", "us-east-1")
    record = primary_record(cloud, plan)
    record["ResourceRecords"] = [{"Value": "hand-edited.example.com"}]
    r53.change_resource_record_sets(
        HostedZoneId=plan.zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]},
    )
    before = journal.read_text()
    again = _run(plan, aws, journal)
    assert again.status == "already-completed" and journal.read_text() == before
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": "hand-edited.example.com"}]


def test_dry_run_assesses_only(world):
    cloud, _, _, plan, aws, journal = world
    replica_lag(cloud, 2.0)
    report = fo.run_failover(plan, aws, fo.Connections(), execute=False, yes=False, journal=journal)
    assert [s["status"] for s in report.steps] == ["checked"] + ["planned"] * 6
    assert report.steps[0]["result"]["lag_s"] == 2.0
    assert not journal.exists()
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": PRIMARY_HOST}]


def test_cli_dry_run_json_and_no_tty_refusal(world, monkeypatch):
    cloud, _, outputs, plan, _, journal = world
    replica_lag(cloud, 2.0)
    outputs_file = journal.with_name("outputs.json")
    outputs_file.write_text(json.dumps(outputs))
    monkeypatch.setattr(fo, "make_aws", lambda: CloudAws(cloud=cloud))
    runner = CliRunner()
    args = ["failover", "--stack", "prod", "--outputs", str(outputs_file), "--json"]
    result = runner.invoke(app, [*args, "--journal", str(journal)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "dry-run" and doc["steps"][0]["result"]["lag_s"] == 2.0

    result = runner.invoke(app, [*args, "--journal", str(journal), "--execute"])
    assert result.exit_code == ExitCode.REFUSED and not journal.exists()

    replica_lag(cloud, 5000.0)
    result = runner.invoke(app, [*args, "--journal", str(journal), "--execute", "--yes"])
    assert result.exit_code == ExitCode.REFUSED
    assert json.loads(result.stdout)["error"]["code"] == ExitCode.REFUSED


def test_cli_without_outputs_or_pulumi_is_a_clear_precondition_failure(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi binary anywhere
    result = CliRunner().invoke(app, ["failover", "--stack", "prod"])
    assert result.exit_code == ExitCode.PRECONDITION_FAILED
    assert "--outputs" in result.output


def test_outputs_without_the_standby_are_refused():
    with pytest.raises(DrctlError) as raised:
        fo.load_plan("prod", {"regions": {}})
    assert raised.value.code == ExitCode.PRECONDITION_FAILED and "drStandby" in str(raised.value)


def test_lag_rule_is_strict_about_unknowns():
    reading = fo.LagReading(None, None, False, "no data")
    with pytest.raises(DrctlError):
        fo.check_lag(reading, 900, accept_data_loss=False)
    assert fo.check_lag(reading, 900, accept_data_loss=True) is False
    assert fo.check_lag(replace(reading, lag_s=900.0), 900, accept_data_loss=False) is True


def test_failback_is_not_automated_for_rds_and_says_so(world):
    _, _, _, plan, aws, journal = world
    nodes = fb.FailbackNodes(DbNode(LocalHost(), "/nonexistent"), DbNode(LocalHost(), "/x"))
    with pytest.raises(DrctlError) as raised:
        fb.run_failback(plan, aws, nodes, app_dsn=None, execute=False, yes=False, journal=journal)
    assert raised.value.code == ExitCode.PRECONDITION_FAILED
    assert "self-managed backend only" in str(raised.value)


def test_pilot_light_rds_standby_is_scaled_to_the_full_class_on_promotion(world):
    cloud, seeded, outputs, _, aws, journal = world
    cloud.client("rds", DR).modify_db_instance(
        DBInstanceIdentifier="dr-standby-replica",
        DBInstanceClass="db.t4g.medium",
        ApplyImmediately=True,
    )
    outputs["drStandby"].update(mode="pilot-light", fullInstanceClass="db.r6g.large")
    plan = fo.load_plan("prod", outputs)
    replica_lag(cloud, 1.0)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = _run(plan, aws, journal)
    promote = report.steps[2]["result"]
    assert promote["scaled"] == {"from": "db.t4g.medium", "to": "db.r6g.large"}
    replica = cloud.client("rds", DR).describe_db_instances(
        DBInstanceIdentifier="dr-standby-replica"
    )["DBInstances"][0]
    assert replica["DBInstanceClass"] == "db.r6g.large"


def test_passwords_never_reach_a_command_line_or_a_message():
    conninfo, env = split_password("postgresql://repl:s3cret@db.internal:5433/postgres")
    assert "s3cret" not in conninfo and env == {"PGPASSWORD": "s3cret"}
    assert "host=db.internal" in conninfo and "port=5433" in conninfo
    plain, no_env = split_password("host=x user=y")
    assert sorted(plain.split()) == ["host=x", "user=y"] and no_env == {}
    assert redact("postgresql://repl:s3cret@db.internal:5433/app") == "db.internal:5433/app"
