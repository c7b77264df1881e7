"""Shared by the audit and repair tests: prod's declared inventory, with reports in moto's S3.

The bucket names, configuration id and prefixes are the ones the real prod program declares
(``prod.outputs["inventory"]``, evaluated under Pulumi mocks); the reports are written by
scripts/local/inventory.py exactly as S3 Inventory delivers them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import boto3
from moto import mock_aws

from scripts.local.inventory import Copy, Injections, Synthetic, synthesize

DATASET = "creator-audio"
# No discrepancy at all, but the differences the audit must not report (recent writes, expiring
# versions, storage classes); and nothing injected whatsoever.
AGREE = Injections(
    missing=0,
    size_differs=0,
    etag_differs=0,
    checksum_differs=0,
    only_in_replica=0,
    failed=0,
    pending=0,
    archived=0,
)
NOTHING = Injections(
    **{**AGREE.__dict__, "recent": 0, "expiring": 0, "class_differs": 0},
)
REPORT_TIME = dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.UTC)  # a Sunday in the middle of winter


REGIONS = ("us-east-1", "us-west-2", "eu-west-1")  # prod's three copies


def moto_s3(monkeypatch):
    """moto for every AWS API; yields an S3 client per prod region (``yield from`` it)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield {r: boto3.client("s3", region_name=r) for r in REGIONS}


def create_buckets(clients: Mapping[str, Any], inventory: Mapping[str, Any]) -> None:
    """Every inventory bucket and every copy of the dataset, versioned, in its region."""
    for region, client in clients.items():
        names = [inventory["buckets"][region], inventory["datasets"][DATASET]["copies"][region]]
        for name in names:
            config = {} if region == "us-east-1" else {"LocationConstraint": region}
            client.create_bucket(Bucket=name, CreateBucketConfiguration=config)
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def copies_of(inventory: Mapping[str, Any], minutes_apart: int = 20) -> list[Copy]:
    entry = inventory["datasets"][DATASET]
    source = entry["primaryRegion"]
    regions = [source, *[r for r in entry["copies"] if r != source]]
    return [
        Copy(
            region,
            entry["copies"][region],
            inventory["buckets"][region],
            REPORT_TIME + dt.timedelta(minutes=minutes_apart * i),
        )
        for i, region in enumerate(regions)
    ]


def write_reports(
    clients: Mapping[str, Any],
    inventory: Mapping[str, Any],
    objects: int = 3000,
    injections: Injections | None = None,
    copies: list[Copy] | None = None,
    rpo_s: int = 900,
) -> Synthetic:
    region_of = {inventory["buckets"][r]: r for r in clients}

    def put(bucket: str, key: str, data: bytes) -> None:
        clients[region_of[bucket]].put_object(Bucket=bucket, Key=key, Body=data)

    entry = inventory["datasets"][DATASET]
    return synthesize(
        put,
        copies or copies_of(inventory),
        objects,
        config=inventory["configId"],
        rpo_s=rpo_s,
        noncurrent_days=int(entry["noncurrentExpiryDays"]),
        injections=injections,
        rows_per_file=1500,  # several data files per report, as S3 writes for big buckets
    )


def describe_job(status, total=None, ok=None, failed=None, reasons=(), job_id="job-1", report=None):
    """A DescribeJob answer (S3 Control) for a Stubber: status, progress, failure reasons."""
    job = {
        "JobId": job_id,
        "Status": status,
        "Priority": 10,
        "FailureReasons": [{"FailureCode": "x", "FailureReason": r} for r in reasons],
    }
    if report:
        job["Report"] = {"Bucket": report[0], "Prefix": report[1], "Enabled": True}
    if total is not None:
        job["ProgressSummary"] = {
            "TotalNumberOfTasks": total,
            "NumberOfTasksSucceeded": ok,
            "NumberOfTasksFailed": failed,
            "Timers": {"ElapsedTimeInActiveSeconds": 12},
        }
    return {"Job": job}
