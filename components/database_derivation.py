"""What PostgresBackup derives from the objectives: the RDS identifier and retention, the object
lock of the repository and dump buckets, and the host role's S3/KMS policy (pure functions,
tested directly; components/postgres_backup.py declares the resources)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from components.objectives import DAY, Objectives

SPEC_MIN_PITR_DAYS = 7


def rds_identifier(objectives: Objectives) -> str:
    return f"platform-dr-{objectives.stack}".lower()


def rds_retention_days(objectives: Objectives) -> int:
    """Automated-backup retention: the PITR window, never under the spec's 7 days."""
    return max(SPEC_MIN_PITR_DAYS, objectives.pitr_window_days)


def repo_lock_days(objectives: Objectives) -> int:
    """Object lock on repository objects: the PITR window plus one full-backup cycle.

    The oldest object a restore inside the window needs is the full before the window's start,
    at most one full interval older than the window. Locking that long means nobody, not even a
    stolen host credential, can remove what a PITR restore needs; longer would lock backups
    pgBackRest has already expired.
    """
    return objectives.pitr_window_days + -(-objectives.schedule.full_s // DAY)


def dump_lock_days(objectives: Objectives) -> int:
    """Logical dumps are locked for the PITR window plus the monthly archive interval."""
    return objectives.pitr_window_days + -(-objectives.schedule.archive_s // DAY)


def s3_kms_policy(
    buckets: Sequence[str],
    keys: Sequence[str],
    prefix: str,
    *,
    delete: bool,
) -> str:
    """IAM policy JSON: exactly these buckets under ``prefix``, exactly these keys, no wildcard
    actions. ``delete`` is for pgBackRest's expire; the dump writer never deletes."""
    object_actions = ["s3:GetObject", "s3:PutObject"]
    if delete:
        object_actions.append("s3:DeleteObject")
    statements = [
        {
            "Sid": "ListRepository",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": sorted(buckets),
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        },
        {
            "Sid": "ReadWriteRepository",
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": sorted(f"{b}/{prefix}/*" for b in buckets),
        },
        {
            # SSE-KMS: GenerateDataKey to write, Decrypt to read and to finish multipart uploads.
            "Sid": "UseRepositoryKeys",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": sorted(keys),
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
