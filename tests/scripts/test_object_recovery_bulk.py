"""`drctl restore-objects` over more objects than --batch-threshold: one Batch Operations job.

The bucket is prod's creator-audio copy in moto, the plan is made by listing it as for the loop,
the manifest is written to moto; the S3PutObjectCopy job goes to botocore's Stubber (moto has no
S3 Control jobs), which validates it against the service model. The loop keeps small prefixes, and
versions over 5 GB (which the Copy operation refuses).
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from scripts.cli import app
from scripts.common import DrctlError
from scripts.dataops import bulk_recovery
from scripts.dataops.inventory_store import S3Store
from scripts.dataops.object_recovery import ObjectAction, RecoveryPlan, plan_recovery
from tests.scripts.inventory_fixtures import describe_job, moto_s3


@pytest.fixture
def aws(monkeypatch):
    yield from moto_s3(monkeypatch)


@pytest.fixture
def world(aws, prod):
    s3 = aws["us-east-1"]
    bucket = prod.outputs["buckets"]["creator-audio"]["us-east-1"]
    store = prod.outputs["inventory"]["buckets"]["us-east-1"]
    for name in (bucket, store):
        s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"audio/c1/{i:02d}.wav", Body=f"take {i}".encode())
        s3.delete_object(Bucket=bucket, Key=f"audio/c1/{i:02d}.wav")  # an accidental delete
    return s3, bucket, store


def stubbed_control():
    control = boto3.client("s3control", region_name="us-east-1")
    captured: list[dict] = []
    control.meta.events.register(
        "provide-client-params.s3-control.CreateJob", lambda params, **_: captured.append(params)
    )
    return control, captured


def test_a_large_undelete_is_one_copy_job_over_a_manifest(world, prod):
    s3, bucket, store = world
    plan = plan_recovery(s3, bucket, "audio/")
    assert len(plan.pending()) == 12
    target = bulk_recovery.batch_target(prod.outputs, bucket)
    control, captured = stubbed_control()
    with Stubber(control) as stub:
        stub.add_response("create_job", {"JobId": "job-9"})
        stub.add_response("describe_job", describe_job("Complete", 12, 12, 0, job_id="job-9"))
        job = bulk_recovery.apply_with_batch(
            plan, target, S3Store(lambda r: s3), control, poll_s=0, stamp=lambda: "T"
        )
    assert job["status"] == "Complete" and job["rows"] == 12
    assert all(a.done for a in plan.pending())
    (request,) = captured
    assert request["RoleArn"] == prod.outputs["inventory"]["batchRestoreRoleArn"]
    copy = request["Operation"]["S3PutObjectCopy"]
    assert copy["TargetResource"] == f"arn:aws:s3:::{bucket}"
    assert copy["SSEAwsKmsKeyId"] == prod.outputs["bucketKeyArns"]["creator-audio"]["us-east-1"]
    key = "batch/manifests/restore-objects/" + bucket + "/T/copy.csv"
    body = s3.get_object(Bucket=store, Key=key)["Body"].read().decode().splitlines()
    # The version each delete marker hides is the one copied back on top.
    expected = {f"{bucket},{a.key},{a.version_id}" for a in plan.actions}
    assert set(body) == expected
    # Nothing was done to the bucket by drctl itself: the job does the work in AWS.
    assert len(s3.list_object_versions(Bucket=bucket)["DeleteMarkers"]) == 12


def test_versions_over_5_gb_stay_with_the_loop():
    small = ObjectAction("a", "restore-version", "", version_id="v1", size=10)
    huge = ObjectAction("b", "restore-version", "", version_id="v2", size=6 * 1024**3)
    batch, loop = bulk_recovery.split(RecoveryPlan("b", "", None, [small, huge]))
    assert batch == [small] and loop == [huge]


def test_a_bucket_the_stack_does_not_inventory_cannot_go_to_batch(prod):
    with pytest.raises(DrctlError, match="not a copy of a dataset"):
        bulk_recovery.batch_target(prod.outputs, "someone-elses-bucket")


def test_cli_over_the_threshold_needs_the_stack_and_says_how(world, prod, tmp_path):
    _, bucket, _ = world
    args = ["restore-objects", "--bucket", bucket, "--prefix", "audio/", "--batch-threshold", "5"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 2 and "--stack" in result.output
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(prod.outputs))
    dry = CliRunner().invoke(app, [*args, "--outputs", str(outputs), "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["executed"] is False
    assert "S3 Batch Operations job" in dry.output


def test_cli_under_the_threshold_keeps_the_loop(world):
    s3, bucket, _ = world
    result = CliRunner().invoke(
        app, ["restore-objects", "--bucket", bucket, "--prefix", "audio/", "--execute", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert not s3.list_object_versions(Bucket=bucket).get("DeleteMarkers")
