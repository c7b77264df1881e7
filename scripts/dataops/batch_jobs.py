"""S3 Batch Operations: manifests, job requests, creation and progress, for repair and restores.

What the S3 User Guide requires, encoded here:

- a CSV manifest lists ``bucket,key,versionId`` with URL-encoded keys and a version ID on every row
  or none ("Specifying a manifest"); Batch Operations cannot read a CSV manifest encrypted with
  SSE-KMS, so manifests are written with SSE-S3 although the bucket's default is SSE-KMS; the job
  names the manifest by ARN *and* ETag, so a changed manifest is never run;
- Batch Replication (``S3ReplicateObject``) runs in the source bucket's region, either over a
  supplied manifest or over one S3 generates from the replication configuration (which must be
  stored in that region too); it does not replicate objects in S3 Glacier Flexible Retrieval or
  Deep Archive, and does not re-replicate a version that was deleted by version ID from a
  destination ("Replicating existing objects with S3 Batch Replication");
- the Copy operation (``S3PutObjectCopy``) copies objects of at most 5 GB, from archive classes
  only after a restore, and its job runs in the destination's region ("Copy objects");
- a job created with the same ``ClientRequestToken`` is the same job, so a retried step never
  creates a second one; a job is created with ``ConfirmationRequired=false`` because drctl's own
  ``--execute`` gate is the confirmation;
- every job writes a completion report (all tasks) under ``batch/reports/`` of the inventory
  bucket; progress is polled with DescribeJob until Complete, Failed or Cancelled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops.inventory_store import Store

MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
GENERATED_MANIFEST_FORMAT = "S3InventoryReport_CSV_20211130"
REPORT_FORMAT = "Report_CSV_20180820"
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})  # restore before replicating or copying
REPLICABLE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")
ALL_REPLICATION_STATUSES = ("NONE", "FAILED", "COMPLETED", "REPLICA")
COPY_MAX_BYTES = 5 * 1024**3
TERMINAL = ("Complete", "Failed", "Cancelled")


@dataclass(frozen=True)
class Manifest:
    """A CSV manifest in S3: where it is, its ETag, how many rows."""

    region: str
    bucket: str
    key: str
    etag: str
    rows: int

    @property
    def object_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.key}"

    def location(self) -> dict[str, Any]:
        return {
            "Spec": {"Format": MANIFEST_FORMAT, "Fields": ["Bucket", "Key", "VersionId"]},
            "Location": {"ObjectArn": self.object_arn, "ETag": self.etag},
        }


def manifest_csv(bucket: str, versions: Iterable[tuple[str, str]]) -> tuple[bytes, int]:
    """``bucket,key,versionId`` lines, key and version URL-encoded; returns (body, rows)."""
    lines = [
        f"{bucket},{quote(key, safe='/')},{quote(version, safe='')}" for key, version in versions
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b"", len(lines)


def write_manifest(
    store: Store,
    region: str,
    store_bucket: str,
    key: str,
    source_bucket: str,
    versions: Iterable[tuple[str, str]],
) -> Manifest:
    body, rows = manifest_csv(source_bucket, versions)
    # Batch Operations does not read SSE-KMS CSV manifests: this object overrides the default.
    written = store.put(region, store_bucket, key, body, ServerSideEncryption="AES256")
    return Manifest(region, store_bucket, key, written["ETag"], rows)


def account_of(role_arn: str) -> str:
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam" or not parts[4].isdigit():
        raise DrctlError(f"{role_arn!r} is not an IAM role ARN", ExitCode.PRECONDITION_FAILED)
    return parts[4]


def request_token(*parts: str) -> str:
    """A ClientRequestToken that is the same for the same job (<= 64 characters)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:64]


def _report(bucket_arn: str, prefix: str, account: str) -> dict[str, Any]:
    return {
        "Bucket": bucket_arn,
        "Format": REPORT_FORMAT,
        "Enabled": True,
        "Prefix": prefix,
        "ReportScope": "AllTasks",
        "ExpectedBucketOwner": account,
    }


def replication_job(
    *,
    role_arn: str,
    report_bucket: str,
    report_prefix: str,
    description: str,
    manifest: Manifest | None = None,
    source_bucket: str | None = None,
    generated_manifest_prefix: str | None = None,
    statuses: Sequence[str] = ALL_REPLICATION_STATUSES,
    priority: int = 10,
) -> dict[str, Any]:
    """CreateJob arguments for S3 Batch Replication, over ``manifest`` or a generated one."""
    account = account_of(role_arn)
    request: dict[str, Any] = {
        "AccountId": account,
        "ConfirmationRequired": False,
        "Operation": {"S3ReplicateObject": {}},
        "Report": _report(f"arn:aws:s3:::{report_bucket}", report_prefix, account),
        "Description": description[:256],
        "Priority": priority,
        "RoleArn": role_arn,
    }
    if manifest is not None:
        request["Manifest"] = manifest.location()
        request["ClientRequestToken"] = request_token(
            "replicate", manifest.object_arn, manifest.etag
        )
        return request
    if not source_bucket or not generated_manifest_prefix:
        raise ValueError("a generated manifest needs source_bucket and generated_manifest_prefix")
    request["ManifestGenerator"] = {
        "S3JobManifestGenerator": {
            "ExpectedBucketOwner": account,
            "SourceBucket": f"arn:aws:s3:::{source_bucket}",
            "EnableManifestOutput": True,
            "ManifestOutputLocation": {
                "ExpectedManifestBucketOwner": account,
                "Bucket": f"arn:aws:s3:::{report_bucket}",
                "ManifestPrefix": generated_manifest_prefix,
                "ManifestEncryption": {"SSES3": {}},
                "ManifestFormat": GENERATED_MANIFEST_FORMAT,
            },
            "Filter": {
                "EligibleForReplication": True,
                "ObjectReplicationStatuses": list(statuses),
                "MatchAnyStorageClass": list(REPLICABLE_CLASSES),
            },
        }
    }
    request["ClientRequestToken"] = request_token(
        "generate", source_bucket, generated_manifest_prefix, *statuses
    )
    return request


def copy_back_job(
    *,
    role_arn: str,
    manifest: Manifest,
    target_bucket: str,
    report_bucket: str,
    report_prefix: str,
    description: str,
    kms_key_arn: str | None = None,
    priority: int = 10,
) -> dict[str, Any]:
    """CreateJob arguments that copy each listed version back on top of its own key."""
    account = account_of(role_arn)
    operation: dict[str, Any] = {
        "TargetResource": f"arn:aws:s3:::{target_bucket}",
        "MetadataDirective": "COPY",
    }
    if kms_key_arn:
        # The copy is encrypted like every object of the copy (and so differs from its source
        # in encryption attributes, which S3 requires of a copy onto the same key).
        operation.update(SSEAwsKmsKeyId=kms_key_arn, BucketKeyEnabled=True)
    return {
        "AccountId": account,
        "ConfirmationRequired": False,
        "Operation": {"S3PutObjectCopy": operation},
        "Report": _report(f"arn:aws:s3:::{report_bucket}", report_prefix, account),
        "Manifest": manifest.location(),
        "ClientRequestToken": request_token("copy", manifest.object_arn, manifest.etag),
        "Description": description[:256],
        "Priority": priority,
        "RoleArn": role_arn,
    }


def create_job(s3control: Any, request: Mapping[str, Any]) -> str:
    return s3control.create_job(**request)["JobId"]


def describe(job: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a DescribeJob ``Job`` an operator needs (what the journal records)."""
    summary = job.get("ProgressSummary") or {}
    report = job.get("Report") or {}
    return {
        "job_id": job.get("JobId"),
        "status": job.get("Status"),
        "tasks": summary.get("TotalNumberOfTasks"),
        "succeeded": summary.get("NumberOfTasksSucceeded"),
        "failed": summary.get("NumberOfTasksFailed"),
        "active_s": (summary.get("Timers") or {}).get("ElapsedTimeInActiveSeconds"),
        "report": f"{report.get('Bucket', '')}/{report.get('Prefix', '')}/job-{job.get('JobId')}/",
        "failure_reasons": [r.get("FailureReason") for r in job.get("FailureReasons") or []],
    }


def wait_for_job(
    s3control: Any,
    account: str,
    job_id: str,
    *,
    poll_s: float = 30.0,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll DescribeJob until the job ends (or ``timeout_s`` passes); progress to stderr."""
    deadline = None if timeout_s is None else clock() + timeout_s
    while True:
        job = describe(s3control.describe_job(AccountId=account, JobId=job_id)["Job"])
        done, total = (job["succeeded"] or 0) + (job["failed"] or 0), job["tasks"]
        share = f"{done:,}/{total:,} tasks" if total else "preparing"
        progress.print(
            f"    batch job {job_id}: {job['status']}, {share}, {job['failed'] or 0} failed"
        )
        if job["status"] in TERMINAL:
            return job
        if deadline is not None and clock() >= deadline:
            job["timed_out"] = True
            return job
        sleep(poll_s)


def stamp(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
