"""`drctl repair replication`: audit on moto's S3, manifests in moto, jobs on a Stubber.

The audit runs for real over reports written as S3 delivers them; the manifest it writes must list
exactly the repairable injected versions; the Batch Replication job (S3 Control: moto has none, so
botocore's Stubber validates it against the service model) must name that manifest by ARN and
ETag, and be followed until it completes. A dry run writes and creates nothing; a failed job fails
the step and the journal says where to resume.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from components.objectives import parse_objectives
from scripts.cli import app
from scripts.common import DrctlError, ExitCode
from scripts.local.evaluate import read_stack_config
from scripts.local.inventory import key_of
from scripts.runbooks import repair
from tests.scripts.inventory_fixtures import (
    DATASET,
    create_buckets,
    describe_job,
    moto_s3,
    write_reports,
)


@pytest.fixture
def aws(monkeypatch):
    yield from moto_s3(monkeypatch)


@pytest.fixture
def world(aws, prod):
    inventory = prod.outputs["inventory"]
    create_buckets(aws, inventory)
    synthetic = write_reports(aws, inventory)
    control = boto3.client("s3control", region_name="us-east-1")
    captured: list[dict] = []
    control.meta.events.register(
        "provide-client-params.s3-control.CreateJob", lambda params, **_: captured.append(params)
    )

    def client_for(service, region):
        if service == "s3":
            return aws[region]
        if service == "s3control":
            assert region == "us-east-1", "Batch Replication runs in the source region"
            return control
        return boto3.client(service, region_name=region)

    objectives = parse_objectives(read_stack_config("prod"), "prod")
    return inventory, synthetic, objectives, client_for, control, captured


def repairable(synthetic):
    """What the repair must replicate: every injected version the source still holds and Batch
    Replication accepts (not in Deep Archive); and the versions only a replica still holds."""
    held = {(k, v) for k, v, _, kind in synthetic.expected if kind != "only-in-replica"}
    lost = {(k, v) for k, v, _, kind in synthetic.expected if kind == "only-in-replica"}
    return held - lost - synthetic.quiet["archived"], lost


def run(world, prod, tmp_path, execute, **kwargs):
    inventory, _, objectives, client_for, *_ = world
    return repair.run_repair(
        "prod",
        objectives,
        prod.outputs,
        client_for,
        execute=execute,
        yes=True,
        datasets=[DATASET],
        cache=tmp_path / "cache",
        journal=tmp_path / "journal.json",
        poll_s=0,
        **kwargs,
    )


def test_the_plan_replicates_what_the_source_holds_and_names_what_it_cannot(world):
    inventory, synthetic, objectives, client_for, *_ = world
    from scripts.checks.audit.command import run_audits

    (audit,) = run_audits(
        "prod", objectives, {"inventory": inventory}, "local", client_for, datasets=[DATASET]
    )
    plan = repair.repair_plan(audit)
    to_replicate, lost = repairable(synthetic)
    assert set(plan.replicate) == to_replicate
    lost_reason, archived_reason = sorted(plan.left, key=lambda r: "only a replica" not in r)
    assert "only a replica" in lost_reason and set(plan.left[lost_reason]) == lost
    assert "DEEP_ARCHIVE: restore it first" in archived_reason
    assert set(plan.left[archived_reason]) == synthetic.quiet["archived"]


def test_a_dry_run_audits_and_plans_but_writes_and_creates_nothing(world, prod, tmp_path):
    inventory, synthetic, *_, captured = world
    report = run(world, prod, tmp_path, execute=False)
    assert report.status == "dry-run"
    (plan,) = report.steps[0]["result"]["plans"]
    assert plan["replicate"] == len(repairable(synthetic)[0])
    store = inventory["buckets"]["us-east-1"]
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(
        Bucket=store, Prefix="batch/"
    )
    assert listed["KeyCount"] == 0 and captured == []


def test_execute_writes_the_manifest_and_follows_the_job_to_completion(world, prod, tmp_path):
    inventory, synthetic, _, _, control, captured = world
    to_replicate, _ = repairable(synthetic)
    with Stubber(control) as stub:
        stub.add_response("create_job", {"JobId": "job-1"})
        expected = {"AccountId": "111122223333", "JobId": "job-1"}
        stub.add_response("describe_job", describe_job("Active", len(to_replicate), 3, 0), expected)
        stub.add_response(
            "describe_job",
            describe_job("Complete", len(to_replicate), len(to_replicate), 0),
            expected,
        )
        report = run(world, prod, tmp_path, execute=True)
    assert report.status == "completed"
    manifest = report.steps[1]["result"]["manifests"][DATASET]
    s3 = boto3.client("s3", region_name="us-east-1")
    body = s3.get_object(Bucket=manifest["bucket"], Key=manifest["key"])
    assert body["ServerSideEncryption"] == "AES256"
    rows = [line.split(",") for line in body["Body"].read().decode().splitlines()]
    source = inventory["datasets"][DATASET]["copies"]["us-east-1"]
    assert {r[0] for r in rows} == {source}
    assert {(r[1], r[2]) for r in rows} == to_replicate
    (request,) = captured
    assert request["Operation"] == {"S3ReplicateObject": {}}
    assert request["RoleArn"] == inventory["batchReplicationRoleArn"]
    assert request["Manifest"]["Location"]["ETag"] == manifest["etag"]
    assert request["Report"]["Prefix"] == f"batch/reports/repair/{DATASET}"
    final = report.steps[3]["result"]["jobs"][DATASET]
    assert final["status"] == "Complete" and final["succeeded"] == len(to_replicate)
    # Rerunning a completed repair does nothing (no second job: the Stubber has no more answers).
    again = run(world, prod, tmp_path, execute=True)
    assert again.status == "already-completed"


def test_a_failed_job_fails_the_step_and_a_rerun_resumes_with_the_samedescribe_job(
    world, prod, tmp_path
):
    *_, control, captured = world
    with Stubber(control) as stub:
        stub.add_response("create_job", {"JobId": "job-1"})
        stub.add_response(
            "describe_job", describe_job("Failed", 0, 0, 0, ["Reading the manifest is forbidden"])
        )
        with pytest.raises(DrctlError) as err:
            run(world, prod, tmp_path, execute=True)
    assert err.value.code == ExitCode.STEP_FAILED
    assert "Reading the manifest is forbidden" in str(err.value)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "failed"
    assert [s["status"] for s in journal["steps"]] == ["completed"] * 3 + ["failed"]
    with Stubber(control) as stub:
        stub.add_response("describe_job", describe_job("Complete", 10, 10, 0))
        report = run(world, prod, tmp_path, execute=True)
    assert report.status == "completed" and len(captured) == 1


def test_cli_dry_run_prints_the_plan_as_json(world, prod, tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(prod.outputs))
    result = CliRunner().invoke(
        app,
        [
            "repair",
            "replication",
            "--stack",
            "prod",
            "--outputs",
            str(outputs),
            "--dataset",
            DATASET,
            "--cache",
            str(tmp_path / "cache"),
            "--journal",
            str(tmp_path / "j.json"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "dry-run" and report["executed"] is False
    assert report["steps"][0]["result"]["plans"][0]["dataset"] == DATASET
    assert key_of(1)  # the generator's keys are what the manifests carry
