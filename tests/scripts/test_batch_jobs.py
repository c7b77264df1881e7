"""S3 Batch Operations job requests, validated by botocore's Stubber against the S3 Control model.

moto has no S3 Control CreateJob/DescribeJob, so every job here goes to a Stubber: botocore checks
each request against the real service model before the stub answers (an unknown or mistyped field
is a ParamValidationError), and ``expected_params`` pins the request exactly. Manifests are
written to moto's S3.
"""

from __future__ import annotations

import boto3
import botocore.exceptions
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from scripts.dataops import batch_jobs
from scripts.dataops.inventory_store import S3Store
from tests.scripts.inventory_fixtures import describe_job

ROLE = "arn:aws:iam::111122223333:role/inventory-batch-replication"
STORE = "platform-dr-inventory-us-east-1-abc"
SOURCE = "creator-audio-us-east-1-abc"
KEY = "arn:aws:kms:us-east-1:111122223333:key/mrk-1"


def s3control():
    return boto3.client(
        "s3control",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


REPORT = (f"arn:aws:s3:::{STORE}", "batch/reports/x")
MANIFEST = batch_jobs.Manifest("us-east-1", STORE, "batch/manifests/repair/m.csv", "0123abcd", 3)


def test_manifest_rows_are_url_encoded_with_a_version_on_every_row():
    body, rows = batch_jobs.manifest_csv(
        SOURCE, [("audio/a b,c.wav", "v1"), ("audio/ü/x.wav", "v.2_x")]
    )
    assert rows == 2
    assert body.decode().splitlines() == [
        f"{SOURCE},audio/a%20b%2Cc.wav,v1",
        f"{SOURCE},audio/%C3%BC/x.wav,v.2_x",
    ]


def test_a_manifest_is_written_with_sse_s3_in_a_kms_default_bucket(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        kms = boto3.client("kms", region_name="us-east-1")
        key = kms.create_key()["KeyMetadata"]["Arn"]
        s3.create_bucket(Bucket=STORE)
        s3.put_bucket_encryption(
            Bucket=STORE,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key,
                        }
                    }
                ]
            },
        )
        manifest = batch_jobs.write_manifest(
            S3Store(lambda r: s3), "us-east-1", STORE, "batch/m.csv", SOURCE, [("k", "v")]
        )
        head = s3.head_object(Bucket=STORE, Key="batch/m.csv")
    assert head["ServerSideEncryption"] == "AES256"
    assert manifest.etag == head["ETag"].strip('"') and manifest.rows == 1


def test_batch_replication_over_a_manifest_is_a_valid_create_job():
    request = batch_jobs.replication_job(
        role_arn=ROLE,
        manifest=MANIFEST,
        report_bucket=STORE,
        report_prefix="batch/reports/repair/creator-audio",
        description="repair",
    )
    client = s3control()
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": "job-1"}, expected_params=request)
        assert batch_jobs.create_job(client, request) == "job-1"
    assert request["AccountId"] == "111122223333"
    assert request["Operation"] == {"S3ReplicateObject": {}}
    assert request["Manifest"]["Location"] == {
        "ObjectArn": f"arn:aws:s3:::{STORE}/batch/manifests/repair/m.csv",
        "ETag": "0123abcd",
    }
    assert request["Manifest"]["Spec"]["Fields"] == ["Bucket", "Key", "VersionId"]
    assert request["Report"]["ReportScope"] == "AllTasks" and request["Report"]["Enabled"]
    assert request["ConfirmationRequired"] is False


def test_batch_replication_with_the_generated_manifest_is_a_valid_create_job():
    request = batch_jobs.replication_job(
        role_arn=ROLE,
        source_bucket=SOURCE,
        generated_manifest_prefix="batch/manifests/rebuild/creator-audio",
        report_bucket=STORE,
        report_prefix="batch/reports/rebuild/creator-audio",
        description="fill the new copy",
    )
    client = s3control()
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": "job-2"}, expected_params=request)
        assert batch_jobs.create_job(client, request) == "job-2"
    generator = request["ManifestGenerator"]["S3JobManifestGenerator"]
    assert generator["SourceBucket"] == f"arn:aws:s3:::{SOURCE}"
    # A rebuilt primary holds replicas of the old primary: REPLICA must be in the filter.
    assert set(generator["Filter"]["ObjectReplicationStatuses"]) == {
        "NONE",
        "FAILED",
        "COMPLETED",
        "REPLICA",
    }
    # Batch Replication refuses S3 Glacier Flexible Retrieval and Deep Archive objects.
    assert not set(generator["Filter"]["MatchAnyStorageClass"]) & batch_jobs.ARCHIVED_CLASSES
    assert generator["ManifestOutputLocation"]["Bucket"] == f"arn:aws:s3:::{STORE}"


def test_copy_back_on_top_is_a_valid_create_job():
    request = batch_jobs.copy_back_job(
        role_arn=ROLE.replace("replication", "restore"),
        manifest=MANIFEST,
        target_bucket=SOURCE,
        report_bucket=STORE,
        report_prefix="batch/reports/restore-objects",
        description="restore",
        kms_key_arn=KEY,
    )
    client = s3control()
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": "job-3"}, expected_params=request)
        assert batch_jobs.create_job(client, request) == "job-3"
    copy = request["Operation"]["S3PutObjectCopy"]
    assert copy["TargetResource"] == f"arn:aws:s3:::{SOURCE}"
    assert copy["MetadataDirective"] == "COPY" and copy["SSEAwsKmsKeyId"] == KEY


def test_the_model_check_rejects_a_malformed_job():
    """The Stubber really validates: a report format S3 Control does not define is refused."""
    request = batch_jobs.replication_job(
        role_arn=ROLE, manifest=MANIFEST, report_bucket=STORE, report_prefix="p", description="d"
    )
    request["Report"] = {**request["Report"], "Format": 42}
    client = s3control()
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": "never"})
        with pytest.raises(botocore.exceptions.ParamValidationError):
            batch_jobs.create_job(client, request)


def test_the_same_manifest_gives_the_same_request_token():
    first = batch_jobs.replication_job(
        role_arn=ROLE, manifest=MANIFEST, report_bucket=STORE, report_prefix="p", description="d"
    )
    again = batch_jobs.replication_job(
        role_arn=ROLE, manifest=MANIFEST, report_bucket=STORE, report_prefix="p", description="x"
    )
    other = batch_jobs.replication_job(
        role_arn=ROLE,
        manifest=batch_jobs.Manifest("us-east-1", STORE, MANIFEST.key, "ffff", 3),
        report_bucket=STORE,
        report_prefix="p",
        description="d",
    )
    assert first["ClientRequestToken"] == again["ClientRequestToken"]
    assert first["ClientRequestToken"] != other["ClientRequestToken"]
    assert len(first["ClientRequestToken"]) <= 64


def test_progress_is_polled_until_the_job_completes():
    client = s3control()
    expected = {"AccountId": "111122223333", "JobId": "job-1"}
    with Stubber(client) as stub:
        stub.add_response("describe_job", describe_job("Preparing", report=REPORT), expected)
        stub.add_response(
            "describe_job", describe_job("Active", 1000, 400, 0, report=REPORT), expected
        )
        stub.add_response(
            "describe_job", describe_job("Complete", 1000, 998, 2, report=REPORT), expected
        )
        final = batch_jobs.wait_for_job(client, "111122223333", "job-1", poll_s=0)
    assert final["status"] == "Complete" and final["succeeded"] == 998 and final["failed"] == 2
    assert final["report"] == f"arn:aws:s3:::{STORE}/batch/reports/x/job-job-1/"


def test_progress_stops_at_the_deadline_and_says_so():
    client = s3control()
    ticks = iter([0.0, 100.0])
    with Stubber(client) as stub:
        stub.add_response("describe_job", describe_job("Active", 10, 1, 0))
        final = batch_jobs.wait_for_job(
            client, "111122223333", "job-1", poll_s=0, timeout_s=50, clock=lambda: next(ticks)
        )
    assert final["status"] == "Active" and final["timed_out"] is True


def test_a_role_arn_is_required_to_know_the_account():
    with pytest.raises(Exception, match="not an IAM role ARN"):
        batch_jobs.account_of("arn:aws:s3:::bucket")
