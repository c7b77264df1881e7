"""Object recovery in a versioned S3 bucket: undo deletions and overwrites, by prefix.

Two incidents from the spec end up here:

- accidental file deletion: the keys now show a delete marker. Removing the markers above the
  newest version brings that version back; no object data is touched.
- security breach (ransomware-style overwrite): the keys hold new, bad versions. Copying the version
  that was current at ``--as-of`` on top makes it current again; the bad versions stay behind as
  non-current versions for forensics, so nothing is lost by the restore itself.

``plan_recovery`` only reads; ``apply_recovery`` acts on a plan. ``drctl restore-objects`` is
a dry run unless ``--execute``. The S3 client is injected, so the same code runs against moto in the
drill and tests, and against a real bucket with the operator's credentials.

A note on ordering: S3 lists each key's versions newest first, and ``LastModified`` has one-second
resolution. Delete markers come in a separate list, so a marker and a version written in the same
second cannot be ordered against each other. The plan never needs to: it only removes markers that
are not older than the version it brings back (removing an older, non-current marker changes
nothing), and it decides "deleted at --as-of" only on a marker strictly newer than that version.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

from scripts.common import (
    DrctlError,
    ExitCode,
    confirm_execute,
    fail,
    out,
    parse_instant,
    print_json,
    progress,
)

# S3 CopyObject's single-request limit; larger versions go through the managed multipart copy.
_COPY_OBJECT_MAX_BYTES = 5 * 1024**3

ACTIONS = ("remove-delete-markers", "restore-version", "skip", "none")
BATCH_THRESHOLD = 10_000  # above this many objects, an S3 Batch Operations job (bulk_recovery.py)


@dataclass
class ObjectAction:
    """What recovery does (or would do) for one key.

    action: remove-delete-markers | restore-version | skip (nothing to bring back) | none (fine).
    version_id: the version that is (or becomes) current; None when there is none.
    delete_marker_ids: markers that ``remove-delete-markers`` deletes.
    """

    key: str
    action: str
    reason: str
    version_id: str | None = None
    version_last_modified: str | None = None
    size: int | None = None
    delete_marker_ids: list[str] = field(default_factory=list)
    done: bool = False

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecoveryPlan:
    bucket: str
    prefix: str
    as_of: str | None
    actions: list[ObjectAction]

    def pending(self) -> list[ObjectAction]:
        return [a for a in self.actions if a.action in ("remove-delete-markers", "restore-version")]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTIONS, 0)
        for action in self.actions:
            counts[action.action] += 1
        return counts

    def to_record(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "as_of": self.as_of,
            "counts": self.counts(),
            "actions": [a.to_record() for a in self.actions],
        }


class ObjectRecoveryError(Exception):
    """The bucket cannot be recovered this way (e.g. versioning was never enabled)."""


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _list_versions(s3: Any, bucket: str, prefix: str) -> dict[str, dict[str, list[dict]]]:
    """{key: {"versions": [newest first], "markers": [newest first]}} for keys under prefix."""
    by_key: dict[str, dict[str, list[dict]]] = defaultdict(lambda: {"versions": [], "markers": []})
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            by_key[version["Key"]]["versions"].append(version)
        for marker in page.get("DeleteMarkers", []):
            by_key[marker["Key"]]["markers"].append(marker)
    return by_key


def _same_content(a: dict, b: dict) -> bool:
    """Whether two listed versions hold the same bytes, as far as the listing can tell.

    The ETag is an MD5 of the bytes for single-part uploads without SSE-KMS; elsewhere it is not,
    and a re-run copies the same version again: harmless (one more identical version), never lossy.
    """
    return a.get("Size") == b.get("Size") and a.get("ETag") == b.get("ETag")


def _plan_key(key: str, versions: list[dict], markers: list[dict], as_of: dt.datetime | None):
    latest_is_marker = any(m.get("IsLatest") for m in markers)
    if as_of is None:
        candidates = versions
    else:
        candidates = [v for v in versions if _utc(v["LastModified"]) <= as_of]
    if not candidates:
        why = "no version" if as_of is None else "no version at or before --as-of"
        return ObjectAction(key, "skip", f"{why}; created later or never held data")
    target = candidates[0]  # S3 lists a key's versions newest first
    target_time = _utc(target["LastModified"])
    described = {
        "version_id": target["VersionId"],
        "version_last_modified": target_time.isoformat(),
        "size": target.get("Size"),
    }
    if as_of is not None and any(target_time < _utc(m["LastModified"]) <= as_of for m in markers):
        return ObjectAction(key, "skip", "already deleted at --as-of", **described)
    newer_versions = versions[: versions.index(target)]
    current = versions[0]
    if newer_versions and not latest_is_marker and _same_content(current, target):
        return ObjectAction(key, "none", "current version already holds that content", **described)
    if newer_versions:
        return ObjectAction(
            key,
            "restore-version",
            f"{len(newer_versions)} newer version(s) replaced it; copy it back on top",
            **described,
        )
    if latest_is_marker:
        stale = [m["VersionId"] for m in markers if _utc(m["LastModified"]) >= target_time]
        return ObjectAction(
            key,
            "remove-delete-markers",
            f"hidden by {len(stale)} delete marker(s)",
            delete_marker_ids=stale,
            **described,
        )
    return ObjectAction(key, "none", "current version is the one to keep", **described)


def plan_recovery(
    s3: Any, bucket: str, prefix: str = "", as_of: dt.datetime | None = None
) -> RecoveryPlan:
    """Read-only: what it takes to bring every key under ``prefix`` back.

    ``as_of`` None: undo deletions only (keys whose current entry is a delete marker).
    ``as_of`` set: make current the version each key had at that instant (undoes overwrites and
    deletions made after it; keys created after it are left alone).
    """
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status not in ("Enabled", "Suspended"):
        raise ObjectRecoveryError(
            f"bucket {bucket!r} has never had versioning enabled: there are no versions to restore"
        )
    as_of_utc = _utc(as_of) if as_of is not None else None
    listing = _list_versions(s3, bucket, prefix)
    actions = [
        _plan_key(key, entries["versions"], entries["markers"], as_of_utc)
        for key, entries in sorted(listing.items())
    ]
    return RecoveryPlan(bucket, prefix, as_of_utc.isoformat() if as_of_utc else None, actions)


def apply_recovery(s3: Any, plan: RecoveryPlan) -> RecoveryPlan:
    """Carry out the pending actions of ``plan``; marks each one done. Idempotent per key."""
    for action in plan.pending():
        if action.action == "remove-delete-markers":
            for marker_id in action.delete_marker_ids:
                s3.delete_object(Bucket=plan.bucket, Key=action.key, VersionId=marker_id)
        else:
            source = {"Bucket": plan.bucket, "Key": action.key, "VersionId": action.version_id}
            if (action.size or 0) < _COPY_OBJECT_MAX_BYTES:
                s3.copy_object(
                    Bucket=plan.bucket, Key=action.key, CopySource=source, MetadataDirective="COPY"
                )
            else:
                s3.copy(source, plan.bucket, action.key)
        action.done = True
    return plan


def _parse_as_of(value: str | None) -> dt.datetime | None:
    """As ``restore --target-time``: an explicit offset, and not in the future."""
    return None if value is None else parse_instant(value, "--as-of")


def _batch_target(stack: str | None, outputs_file: Path | None, bucket: str):
    from scripts.dataops.bulk_recovery import batch_target
    from scripts.dataops.stack_outputs import outputs_file as read_outputs
    from scripts.dataops.stack_outputs import pulumi_outputs

    if stack is None and outputs_file is None:
        raise DrctlError(
            "more objects than --batch-threshold: pass --stack (or --outputs) so the stack's "
            "Batch Operations role and inventory bucket can be used, or raise --batch-threshold "
            "to loop",
            ExitCode.INVALID_CONFIG,
        )
    outputs = read_outputs(outputs_file) if outputs_file else pulumi_outputs(stack or "prod")
    return batch_target(outputs, bucket)


def _apply_bulk(plan: RecoveryPlan, target: Any, s3: Any, wait_s: float) -> dict[str, Any]:
    """The copy job for everything it can take, and the loop for versions over 5 GB."""
    import boto3

    from scripts.dataops import bulk_recovery
    from scripts.dataops.inventory_store import S3Store

    sessions: dict[str, Any] = {}

    def client(service: str, region: str) -> Any:
        if (service, region) not in sessions:
            sessions[(service, region)] = boto3.session.Session(region_name=region).client(service)
        return sessions[(service, region)]

    _, loop = bulk_recovery.split(plan)
    job = bulk_recovery.apply_with_batch(
        plan,
        target,
        S3Store(lambda region: client("s3", region)),
        client("s3control", target.region),
        wait_s=wait_s,
    )
    if loop:
        apply_recovery(s3, RecoveryPlan(plan.bucket, plan.prefix, plan.as_of, loop))
    return job


def register(app: typer.Typer) -> None:
    @app.command("restore-objects")
    def restore_objects(
        bucket: str = typer.Option(..., help="Versioned bucket to recover."),
        prefix: str = typer.Option("", help="Only keys under this prefix (default: all keys)."),
        as_of: str = typer.Option(
            None,
            "--as-of",
            help="ISO 8601 time with offset (e.g. 2026-11-26T18:00:00Z), not in the future: "
            "restore the versions current then (default: undelete only).",
        ),
        region: str = typer.Option(None, help="Bucket region (default: the AWS profile's)."),
        execute: bool = typer.Option(False, "--execute", help="Act; without it, a dry run."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask (required without a TTY)."),
        as_json: bool = typer.Option(False, "--json", help="Print the plan/result as JSON."),
        stack: str | None = typer.Option(
            None, "--stack", help="Stack of the bucket: its Batch Operations role and bucket."
        ),
        outputs_file: Path | None = typer.Option(
            None, "--outputs", help="JSON of `pulumi stack output --json` instead of the CLI."
        ),
        batch_threshold: int = typer.Option(
            BATCH_THRESHOLD, "--batch-threshold", help="Above this many, a Batch Operations job."
        ),
        wait_s: float = typer.Option(3600, "--wait-s", help="Seconds to follow a batch job."),
    ) -> None:
        """Undo deletions (remove delete markers) or overwrites (restore versions) by prefix.

        Dry run by default. Nothing is deleted except delete markers; overwritten versions stay
        as non-current versions. Over --batch-threshold objects, an S3 Batch Operations job copies
        each version back on top instead of a loop (docs/runbooks/restore-objects.md).
        """
        import boto3
        import botocore.exceptions

        when = _parse_as_of(as_of)
        s3 = boto3.session.Session(region_name=region).client("s3")
        job = None
        try:
            plan = plan_recovery(s3, bucket, prefix, when)
            pending = plan.pending()
            bulk = len(pending) > batch_threshold
            target = _batch_target(stack, outputs_file, bucket) if bulk else None
            how = "with an S3 Batch Operations job" if bulk else "one request per object"
            what = f"recover {len(pending)} object(s) in s3://{bucket}/{prefix} ({how})"
            if pending and confirm_execute(execute, yes, what):
                with progress.status(f"{what}..."):
                    if target is None:
                        apply_recovery(s3, plan)
                    else:
                        job = _apply_bulk(plan, target, s3, wait_s)
        except ObjectRecoveryError as exc:
            fail(str(exc), ExitCode.PRECONDITION_FAILED)
        except DrctlError as exc:
            fail(str(exc), exc.code)
        except botocore.exceptions.ClientError as exc:
            fail(f"s3://{bucket}/{prefix}: {exc}", ExitCode.STEP_FAILED)
        except botocore.exceptions.BotoCoreError as exc:
            fail(f"s3://{bucket}/{prefix}: {exc}", ExitCode.PRECONDITION_FAILED)
        record = {**plan.to_record(), "executed": bool(pending) and all(a.done for a in pending)}
        if job is not None:
            record["batch_job"] = job
        if as_json:
            print_json(record)
            return
        for action in plan.actions:
            if action.action != "none":
                mark = "done" if action.done else "plan"
                out.print(f"{mark:4}  {action.action:22} {action.key}  ({action.reason})")
        out.print(
            ", ".join(f"{n} {k}" for k, n in plan.counts().items() if n) or "no objects found"
        )
