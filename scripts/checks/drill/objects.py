"""Scenarios on creator audio in versioned S3 buckets (moto): ``security-breach`` and
``accidental-file-deletion``. Recovery is scripts/dataops/object_recovery.py, as
`drctl restore-objects` runs it.

Both run an uploader across the incident (new tracks, new keys), so the check also proves that
recovery leaves the writes made during and after the incident alone.

- security-breach. Recovery point: the as-of time given to the restore (a whole second, S3 lists
  versions to the second), just before the attack. The promise: every track current at that
  instant is current again at exactly that version, every upload after it is untouched, no
  attacker's version is current, and every object-locked backup object survives.
- accidental-file-deletion. Recovery point: the deletion. The promise: every object current
  before it is current again at its newest version.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

from scripts.checks.drill.datacheck import AFTER_POINT, PROMISED, UNCERTAIN, check_data, measure_rpo
from scripts.checks.drill.model import ScenarioResult, Write
from scripts.checks.drill.platform import DrillContext
from scripts.checks.drill.writers import ObjectUploader, sha256

AUDIO_OBJECTS = 60
AUDIO_SIZE = 64 * 1024
LIVE_SIZE = 16 * 1024
OBJECT_LOAD_S = 1.0
BACKUP_OBJECTS = 6
NO_DETECTOR = {"by": "none declared: an operator notices; recovery starts at once"}


def put_versioned_bucket(s3: Any, name: str, region: str, *, object_lock: bool = False) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if object_lock:
        kwargs["ObjectLockEnabledForBucket"] = True
    s3.create_bucket(**kwargs)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def upload_audio(s3: Any, bucket: str, count: int, size: int) -> list[Write]:
    """Creator audio: ``count`` tracks, every third one re-uploaded once (a second version)."""
    writes = []
    for i in range(count):
        key = f"audio/creator-{i % 7:02d}/track-{i:03d}.wav"
        for _ in range(2 if i % 3 == 0 else 1):
            body = secrets.token_bytes(size)
            sent = time.time()
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="audio/wav")
            writes.append(Write(key, sha256(body), sent, time.time()))
    return writes


def current_objects(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = sha256(
                s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            )
    return found


def wait_past_second() -> dt.datetime:
    """Sleep past a whole-second boundary and return the instant just before it: versions
    written before this call list at or before it, versions written after it list later."""
    now = time.time()
    time.sleep(int(now) + 1.02 - now)
    return dt.datetime.fromtimestamp(int(time.time()), dt.UTC) - dt.timedelta(milliseconds=1)


def _start_uploader(ctx: DrillContext, bucket: str) -> ObjectUploader:
    uploader = ObjectUploader(ctx.aws.client("s3", ctx.primary_region), bucket, LIVE_SIZE)
    ctx.cleanups.append(uploader.stop)
    return uploader


def _legit(writes: list[Write]) -> list[tuple[Write, str]]:
    return [(w, PROMISED if w.acked_at is not None else UNCERTAIN) for w in writes]


def _validate(ctx: DrillContext, s3: Any, bucket: str, as_of: dt.datetime | None = None) -> int:
    """What the operator checks before calling it done: the same plan again, read-only, now
    shows nothing left to do (or how much). The service is back when that is known."""
    from scripts.dataops.object_recovery import plan_recovery

    with ctx.step("validate: a fresh recovery plan (read-only) lists what is left", "validate"):
        pending = len(plan_recovery(s3, bucket, "audio/", as_of).pending())
    ctx.service_back(time.time())
    return pending


def scenario_security_breach(ctx: DrillContext, result: ScenarioResult) -> None:
    from scripts.dataops.object_recovery import apply_recovery, plan_recovery

    s3 = ctx.aws.client("s3", ctx.primary_region)
    s3_dr = ctx.aws.client("s3", ctx.dr_region)
    audio = f"drill-breach-audio-{ctx.primary_region}"
    backups = f"drill-breach-backups-{ctx.dr_region}"
    locked = not ctx.faults.active("backup-unlocked")
    lock_mode = ctx.objectives.backup_object_lock_mode
    with ctx.step(f"healthy platform: {AUDIO_OBJECTS} tracks, {lock_mode}-locked backups", "setup"):
        put_versioned_bucket(s3, audio, ctx.primary_region)
        put_versioned_bucket(s3_dr, backups, ctx.dr_region, object_lock=locked)
        if locked:
            s3_dr.put_object_lock_configuration(
                Bucket=backups,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": lock_mode, "Days": 1}},
                },
            )
        writes = upload_audio(s3, audio, AUDIO_OBJECTS, AUDIO_SIZE)
        backup_writes = []
        for i in range(BACKUP_OBJECTS):
            body = secrets.token_bytes(32 * 1024)
            key = f"pgbackrest/backup/main/2026112{i}-010000F/bundle/{i}"
            sent = time.time()
            s3_dr.put_object(Bucket=backups, Key=key, Body=body)
            backup_writes.append(Write(key, sha256(body), sent, time.time()))
    uploader = _start_uploader(ctx, audio)
    with ctx.step(f"uploads of new tracks continue ({OBJECT_LOAD_S:.1f} s)", "load"):
        uploader.start()
        time.sleep(OBJECT_LOAD_S)
        as_of = wait_past_second()
    # The attacker's script enumerates the catalogue as it stands at the as-of instant.
    catalogue = sorted(
        v["Key"]
        for v in s3.list_object_versions(Bucket=audio, Prefix="audio/").get("Versions", [])
        if v["IsLatest"] and v["LastModified"] <= as_of
    )
    failure = ctx.mark_failure("incident: backups attacked, every catalogued track overwritten")
    result.detection = NO_DETECTOR
    result.recovery_point = {
        "kind": "as-of",
        "value": as_of.isoformat(),
        "how": "the whole second before the attack, given to the restore as --as-of",
    }
    refused = deleted = 0
    versions = s3_dr.list_object_versions(Bucket=backups).get("Versions", [])
    for version in versions:
        try:
            s3_dr.delete_object(
                Bucket=backups,
                Key=version["Key"],
                VersionId=version["VersionId"],
                BypassGovernanceRetention=True,
            )
            deleted += 1
        except s3_dr.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] != "AccessDenied":
                raise
            refused += 1
        # Hiding an object behind a delete marker is allowed even under a lock.
        s3_dr.delete_object(Bucket=backups, Key=version["Key"])
    attacks = []
    for key in catalogue:
        body = b"ENCRYPTED" + secrets.token_bytes(512)
        s3.put_object(Bucket=audio, Key=key, Body=body)
        attacks.append(Write(key, sha256(body), time.time(), time.time()))
    ctx.add_step(
        f"the attack: {len(versions)} backup version deletes, {len(attacks)} overwrites",
        "failure",
        failure,
        time.time(),
    )

    with ctx.step(
        "recover: restore each track's version as of the instant before the breach", "recover"
    ):
        audio_plan = apply_recovery(s3, plan_recovery(s3, audio, "audio/", as_of))
    with ctx.step("recover: remove the delete markers hiding the locked backups", "recover"):
        backup_plan = apply_recovery(s3_dr, plan_recovery(s3_dr, backups, "pgbackrest/"))
    pending_after = _validate(ctx, s3, audio, as_of)
    uploader.stop()
    with ctx.step("verify: every track and backup object against the as-of point", "verify"):
        recovered = current_objects(s3, audio, "audio/") | current_objects(
            s3_dr, backups, "pgbackrest/"
        )
        legit = writes + uploader.writes + backup_writes
        placed = _legit(legit) + [(w, AFTER_POINT) for w in attacks]
        result.data = check_data(placed, recovered, f"as of {as_of.isoformat()}")
        result.rpo_s = measure_rpo(legit, recovered, failure)
    result.evidence = {
        "restore_as_of": as_of.isoformat(),
        "object_lock": lock_mode if locked else "none (fault backup-unlocked)",
        "locked_version_deletes_attempted": len(versions),
        "locked_version_deletes_refused": refused,
        "locked_version_deletes_succeeded": deleted,
        "tracks_overwritten": len(attacks),
        "uploads_during_the_incident": sum(
            1 for w in uploader.writes if w.sent_at > as_of.timestamp()
        ),
        "audio_plan": audio_plan.counts(),
        "backup_plan": backup_plan.counts(),
        "pending_after_recovery": pending_after,
        "buckets": {ctx.primary_region: audio, ctx.dr_region: backups},
    }


def scenario_accidental_deletion(ctx: DrillContext, result: ScenarioResult) -> None:
    from scripts.dataops.object_recovery import apply_recovery, plan_recovery

    s3 = ctx.aws.client("s3", ctx.primary_region)
    audio = f"drill-deletion-audio-{ctx.primary_region}"
    with ctx.step(f"healthy platform: {AUDIO_OBJECTS} tracks in a versioned bucket", "setup"):
        put_versioned_bucket(s3, audio, ctx.primary_region)
        writes = upload_audio(s3, audio, AUDIO_OBJECTS, AUDIO_SIZE)
    uploader = _start_uploader(ctx, audio)
    with ctx.step(f"uploads of new tracks continue ({OBJECT_LOAD_S:.1f} s)", "load"):
        uploader.start()
        time.sleep(OBJECT_LOAD_S)

    failure = ctx.mark_failure("incident: a cleanup job deletes two creators' folders (twice)")
    result.detection = NO_DETECTOR
    result.recovery_point = {
        "kind": "time",
        "value": dt.datetime.fromtimestamp(failure, dt.UTC).isoformat(timespec="milliseconds"),
        "how": "the deletion: removing delete markers promises each object's newest version",
    }
    doomed = sorted(
        k
        for k in current_objects(s3, audio, "audio/")
        if "/creator-00/" in k or "/creator-03/" in k
    )
    for key in doomed:
        s3.delete_object(Bucket=audio, Key=key)
    for key in doomed[::2]:  # the job retried: a second marker on half of them
        s3.delete_object(Bucket=audio, Key=key)
    visible_after = len(current_objects(s3, audio, "audio/"))
    ctx.add_step(f"the cleanup job deleted {len(doomed)} objects", "failure", failure, time.time())

    with ctx.step("recover: remove the delete markers under audio/", "recover"):
        plan = plan_recovery(s3, audio, "audio/")
        if ctx.faults.active("object-recovery-skipped"):
            pending = plan.pending()
            plan.actions = [a for a in plan.actions if a not in pending[::3]]
        plan = apply_recovery(s3, plan)
    pending_after = _validate(ctx, s3, audio)
    uploader.stop()
    with ctx.step("verify: every track against its newest version before the deletion", "verify"):
        recovered = current_objects(s3, audio, "audio/")
        legit = writes + uploader.writes
        result.data = check_data(_legit(legit), recovered, "newest version before the deletion")
        result.rpo_s = measure_rpo(legit, recovered, failure)
    result.evidence = {
        "objects_deleted": len(doomed),
        "objects_visible_after_incident": visible_after,
        "delete_markers_removed": sum(len(a.delete_marker_ids) for a in plan.actions if a.done),
        "uploads_during_the_incident": sum(1 for w in uploader.writes if w.sent_at > failure),
        "plan": plan.counts(),
        "pending_after_recovery": pending_after,
        "bucket": audio,
    }
