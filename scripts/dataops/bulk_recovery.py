"""Object recovery at scale: one S3 Batch Operations job instead of one API call per object.

``drctl restore-objects`` plans as before (``object_recovery.plan_recovery``). When the plan
has more than ``BATCH_THRESHOLD`` actions, an ``S3PutObjectCopy`` job carries it out: it copies each
key's chosen version back on top of it (S3 User Guide, "Copy objects"), with the stack's restore
role, a manifest under ``batch/manifests/restore-objects/`` and an all-tasks completion report.

Batch Operations has no operation that deletes an object version, so at this scale an undelete is
also a copy: the version a delete marker hides is copied back on top of the marker, which stays as
a noncurrent entry (the loop removes markers instead; both leave the same current content and lose
nothing). Versions over 5 GB, which the Copy operation refuses, still go through the loop (managed
multipart copy); versions in S3 Glacier Flexible Retrieval or Deep Archive must be restored first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scripts.common import DrctlError, ExitCode
from scripts.dataops import batch_jobs
from scripts.dataops.inventory_store import Store
from scripts.dataops.object_recovery import BATCH_THRESHOLD, ObjectAction, RecoveryPlan

__all__ = ["BATCH_THRESHOLD", "BatchTarget", "apply_with_batch", "batch_target", "split"]


@dataclass(frozen=True)
class BatchTarget:
    """Where a bulk restore of one bucket runs: from the stack's ``inventory`` output."""

    bucket: str
    region: str
    kms_key_arn: str
    store_bucket: str
    batch_prefix: str
    role_arn: str


def batch_target(outputs: Mapping[str, Any], bucket: str) -> BatchTarget:
    """The bucket must be a copy of an inventoried dataset of the stack."""
    inventory = outputs.get("inventory") or {}
    for entry in (inventory.get("datasets") or {}).values():
        for region, name in (entry.get("copies") or {}).items():
            if name == bucket:
                return BatchTarget(
                    bucket,
                    region,
                    entry["keyArns"][region],
                    inventory["buckets"][region],
                    inventory["batchPrefix"],
                    inventory["batchRestoreRoleArn"],
                )
    raise DrctlError(
        f"s3://{bucket} is not a copy of a dataset this stack inventories; a bulk restore needs "
        "the stack's Batch Operations role and inventory bucket (or use --batch-threshold to loop)",
        ExitCode.PRECONDITION_FAILED,
    )


def split(plan: RecoveryPlan) -> tuple[list[ObjectAction], list[ObjectAction]]:
    """(actions for the copy job, actions left to the loop: versions over 5 GB)."""
    batch, loop = [], []
    for action in plan.pending():
        big = (action.size or 0) > batch_jobs.COPY_MAX_BYTES
        (loop if big else batch).append(action)
    return batch, loop


def apply_with_batch(
    plan: RecoveryPlan,
    target: BatchTarget,
    store: Store,
    s3control: Any,
    *,
    stamp: Callable[[], str] = batch_jobs.stamp,
    wait_s: float | None = 3600.0,
    poll_s: float = 30.0,
) -> dict[str, Any]:
    """Write the manifest, create the copy job, follow it; returns what the job did."""
    actions, _ = split(plan)
    key = f"{target.batch_prefix}/manifests/restore-objects/{target.bucket}/{stamp()}/copy.csv"
    manifest = batch_jobs.write_manifest(
        store,
        target.region,
        target.store_bucket,
        key,
        target.bucket,
        [(a.key, a.version_id) for a in actions if a.version_id],
    )
    request = batch_jobs.copy_back_job(
        role_arn=target.role_arn,
        manifest=manifest,
        target_bucket=target.bucket,
        report_bucket=target.store_bucket,
        report_prefix=f"{target.batch_prefix}/reports/restore-objects/{target.bucket}",
        description=f"drctl restore-objects s3://{target.bucket}/{plan.prefix}: "
        f"{manifest.rows} versions copied back on top",
        kms_key_arn=target.kms_key_arn,
    )
    job_id = batch_jobs.create_job(s3control, request)
    final = batch_jobs.wait_for_job(
        s3control, request["AccountId"], job_id, poll_s=poll_s, timeout_s=wait_s
    )
    if final["status"] == "Failed":
        raise DrctlError(
            f"Batch Operations job {job_id} failed: "
            f"{'; '.join(filter(None, final['failure_reasons'])) or 'see its completion report'}",
            ExitCode.STEP_FAILED,
        )
    if final["status"] == "Complete" and not final.get("failed"):
        for action in actions:
            action.done = True
    return {
        "manifest": f"s3://{manifest.bucket}/{manifest.key}",
        "rows": manifest.rows,
        **final,
    }
