"""scripts/dataops/object_recovery.py on moto (mock_aws): undelete and roll back overwrites."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from scripts.cli import app
from scripts.dataops.object_recovery import (
    ObjectRecoveryError,
    apply_recovery,
    plan_recovery,
)

BUCKET = "creator-audio-test"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def body(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def next_second() -> dt.datetime:
    """Wait past a whole-second boundary (S3 LastModified resolution); return just before it.

    Everything written before the call is at or before the returned instant, everything written
    after it is listed as later.
    """
    now = time.time()
    time.sleep(int(now) + 1.05 - now)
    return dt.datetime.fromtimestamp(int(time.time()), dt.UTC) - dt.timedelta(milliseconds=1)


def test_undelete_removes_only_delete_markers_under_the_prefix(s3):
    for key in ("audio/a.wav", "audio/b.wav", "other/c.wav"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    for key in ("audio/a.wav", "other/c.wav"):
        s3.delete_object(Bucket=BUCKET, Key=key)
    s3.delete_object(Bucket=BUCKET, Key="audio/a.wav")  # two markers stacked

    plan = plan_recovery(s3, BUCKET, "audio/")
    by_key = {a.key: a for a in plan.actions}
    assert by_key["audio/a.wav"].action == "remove-delete-markers"
    assert len(by_key["audio/a.wav"].delete_marker_ids) == 2
    assert by_key["audio/b.wav"].action == "none"
    assert "other/c.wav" not in by_key

    apply_recovery(s3, plan)
    assert body(s3, "audio/a.wav") == b"audio/a.wav"
    listing = s3.list_object_versions(Bucket=BUCKET, Prefix="audio/")
    assert not listing.get("DeleteMarkers")
    # Outside the prefix nothing changed.
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=BUCKET, Key="other/c.wav")
    # Idempotent: a second plan has nothing left to do.
    assert plan_recovery(s3, BUCKET, "audio/").pending() == []


def test_plan_is_read_only(s3):
    s3.put_object(Bucket=BUCKET, Key="audio/a.wav", Body=b"a")
    s3.delete_object(Bucket=BUCKET, Key="audio/a.wav")
    before = s3.list_object_versions(Bucket=BUCKET)
    plan_recovery(s3, BUCKET, "audio/")
    after = s3.list_object_versions(Bucket=BUCKET)
    assert [m["VersionId"] for m in before["DeleteMarkers"]] == [
        m["VersionId"] for m in after["DeleteMarkers"]
    ]


def test_as_of_restores_overwritten_versions_and_keeps_the_bad_ones(s3):
    good = {f"audio/{i}.wav": hashlib.sha256(str(i).encode()).digest() * 100 for i in range(3)}
    for key, data in good.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    as_of = next_second()
    for key in good:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"encrypted by attacker")
    s3.delete_object(Bucket=BUCKET, Key="audio/2.wav")  # overwritten, then deleted
    s3.put_object(Bucket=BUCKET, Key="audio/new.wav", Body=b"uploaded after as_of")

    plan = plan_recovery(s3, BUCKET, "audio/", as_of)
    by_key = {a.key: a for a in plan.actions}
    assert {by_key[k].action for k in good} == {"restore-version"}
    assert by_key["audio/new.wav"].action == "skip"

    apply_recovery(s3, plan)
    for key, data in good.items():
        assert body(s3, key) == data
    assert body(s3, "audio/new.wav") == b"uploaded after as_of"
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="audio/0.wav")["Versions"]
    assert b"encrypted by attacker" in [
        s3.get_object(Bucket=BUCKET, Key="audio/0.wav", VersionId=v["VersionId"])["Body"].read()
        for v in versions
    ]
    assert plan_recovery(s3, BUCKET, "audio/", as_of).pending() == []


def test_as_of_leaves_keys_that_were_already_deleted_then(s3):
    s3.put_object(Bucket=BUCKET, Key="audio/gone.wav", Body=b"x")
    time.sleep(1.1)
    s3.delete_object(Bucket=BUCKET, Key="audio/gone.wav")
    as_of = next_second()
    plan = plan_recovery(s3, BUCKET, "audio/", as_of)
    assert [(a.key, a.action) for a in plan.actions] == [("audio/gone.wav", "skip")]


def test_unversioned_bucket_is_refused(s3):
    s3.create_bucket(Bucket="plain-bucket-test")
    with pytest.raises(ObjectRecoveryError, match="plain-bucket-test"):
        plan_recovery(s3, "plain-bucket-test")


def test_cli_is_a_dry_run_by_default_and_acts_with_execute(s3):
    s3.put_object(Bucket=BUCKET, Key="audio/a.wav", Body=b"a")
    s3.delete_object(Bucket=BUCKET, Key="audio/a.wav")
    runner = CliRunner()
    args = ["restore-objects", "--bucket", BUCKET, "--prefix", "audio/", "--json"]

    dry = runner.invoke(app, args)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["executed"] is False
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=BUCKET, Key="audio/a.wav")

    refused = runner.invoke(app, [*args, "--execute"])  # no TTY under CliRunner, no --yes
    assert refused.exit_code == 3
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=BUCKET, Key="audio/a.wav")

    done = runner.invoke(app, [*args, "--execute", "--yes"])
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert record["executed"] is True
    assert record["counts"]["remove-delete-markers"] == 1
    assert body(s3, "audio/a.wav") == b"a"


def test_cli_rejects_a_bad_as_of_naming_it(s3):
    result = CliRunner().invoke(
        app, ["restore-objects", "--bucket", BUCKET, "--as-of", "yesterday"]
    )
    assert result.exit_code == 2
    assert "--as-of 'yesterday'" in result.output
