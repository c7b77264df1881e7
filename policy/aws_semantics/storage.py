"""S3 storage semantics: lifecycle transitions S3 accepts and charges for, objects that must stay
readable, and object lock against what lifecycle says it removes."""

from __future__ import annotations

from .graph import LIFECYCLE_TYPE, OBJECT_LOCK_TYPE, REPLICATED_BUCKET, VERSIONING_TYPE, Stack, get
from .graph import whole as _whole
from .iam_eval import as_list
from .services import ASYNC_ARCHIVE_CLASSES, IA_CLASSES, IA_MIN_AGE_DAYS, MIN_STORAGE_DAYS

Finding = tuple[str, str]
POSTGRES_BACKUP_TYPE = "platform-dr:postgres_backup:PostgresBackup"
TIERING_TYPE = "aws:s3/bucketIntelligentTieringConfiguration:BucketIntelligentTieringConfiguration"
# Lifecycle transitions S3 does not support (Amazon S3 User Guide, "Transitioning objects using
# Amazon S3 Lifecycle", "Unsupported lifecycle transitions"): (from, to).
_UNSUPPORTED = {
    ("INTELLIGENT_TIERING", "STANDARD_IA"),
    ("ONEZONE_IA", "INTELLIGENT_TIERING"),
    ("ONEZONE_IA", "STANDARD_IA"),
    ("ONEZONE_IA", "GLACIER_IR"),
    ("GLACIER", "GLACIER_IR"),
    ("GLACIER", "STANDARD_IA"),
    ("GLACIER", "ONEZONE_IA"),
    ("GLACIER", "INTELLIGENT_TIERING"),
    ("DEEP_ARCHIVE", "GLACIER"),
    ("DEEP_ARCHIVE", "GLACIER_IR"),
    ("DEEP_ARCHIVE", "STANDARD_IA"),
    ("DEEP_ARCHIVE", "ONEZONE_IA"),
    ("DEEP_ARCHIVE", "INTELLIGENT_TIERING"),
}


def _steps(transitions, day_field: str) -> list[tuple[int, str]]:
    steps = []
    for t in as_list(transitions):
        days, cls = _whole(get(t, day_field)), get(t, "storageClass")
        if isinstance(days, int) and cls:
            steps.append((days, cls))
    return sorted(steps)


def _walk(steps, end_days, what) -> list[str]:
    """Problems of one chain of transitions (current or noncurrent) ending at ``end_days``."""
    problems = []
    current, entered = "STANDARD", 0
    for days, cls in steps:
        if cls in IA_CLASSES and days < IA_MIN_AGE_DAYS:
            problems.append(
                f"{what}: to {cls} after {days} d; S3 needs at least "
                f"{IA_MIN_AGE_DAYS} d (the configuration is rejected)"
            )
        if cls == "STANDARD" or (current, cls) in _UNSUPPORTED:
            problems.append(f"{what}: S3 cannot transition {current} to {cls}")
        if days - entered < MIN_STORAGE_DAYS.get(current, 0):
            problems.append(
                f"{what}: leaves {current} after {days - entered} d, its minimum "
                f"storage duration is {MIN_STORAGE_DAYS[current]} d (charged anyway)"
            )
        current, entered = cls, days
    if end_days is not None and end_days - entered < MIN_STORAGE_DAYS.get(current, 0):
        problems.append(
            f"{what}: expires {end_days - entered} d after entering {current}, "
            f"whose minimum storage duration is {MIN_STORAGE_DAYS[current]} d"
        )
    return problems


def lifecycle_storage_minimums(stack: Stack) -> list[Finding]:
    """Lifecycle transitions S3 accepts, none before a storage class's minimum duration.

    Document: Amazon S3 User Guide, "Transitioning objects using Amazon S3 Lifecycle"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-transition-general-
    considerations.html): supported and unsupported transitions (the waterfall), "Minimum Days
    for Transition ... to S3 Standard-IA or S3 One Zone-IA" (30 days, current or noncurrent),
    and the minimum storage durations (Standard-IA and One Zone-IA 30 days, Glacier Instant and
    Flexible Retrieval 90, Deep Archive 180).

    Constraint: every transition is one S3 supports, none into an IA class before 30 days, and
    no object leaves a class (by a later transition or by expiration) before its minimum
    duration; for current and for noncurrent versions alike.
    """
    found: list[Finding] = []
    for lifecycle in stack.of(LIFECYCLE_TYPE):
        for rule in as_list(get(lifecycle.props, "rules")):
            rid = rule.get("id", "?")
            if rule.get("status") != "Enabled":
                continue
            expiry = _whole(get(rule, "expiration", "days"))
            noncurrent_expiry = _whole(get(rule, "noncurrentVersionExpiration", "noncurrentDays"))
            problems = _walk(_steps(rule.get("transitions"), "days"), expiry, "current versions")
            problems += _walk(
                _steps(rule.get("noncurrentVersionTransitions"), "noncurrentDays"),
                noncurrent_expiry,
                "noncurrent versions",
            )
            found += [(lifecycle.name, f"rule {rid}: {p}") for p in problems]
    return found


def _repository_buckets(stack: Stack) -> dict[str, str]:
    """bucket name -> PostgresBackup that keeps a pgBackRest repository in it (every copy)."""
    names: dict[str, str] = {}
    for db in stack.of(POSTGRES_BACKUP_TYPE):
        repos = set((get(db.props, "repo_bucket_names") or {}).values())
        for comp in stack.of(REPLICATED_BUCKET):
            copies = set((get(comp.props, "bucket_names") or {}).values())
            if copies & repos:
                names.update({b: db.name for b in copies})
    return names


def pgbackrest_repository_readable(stack: Stack) -> list[Finding]:
    """Every object pgBackRest may need to read stays readable, on every copy of a repository.

    Documents: Amazon S3 User Guide, "Transitioning objects using Amazon S3 Lifecycle" (objects
    in S3 Glacier Flexible Retrieval and Deep Archive "are not available in real time": a GET
    fails until a restore completes) and "Using S3 Intelligent-Tiering" (the opt-in archive
    tiers behave the same); pgBackRest User Guide, "Retention" (pgBackRest expires backups and
    WAL itself, by repo-retention-*), https://pgbackrest.org/user-guide.html#retention.

    Constraint: a repository's current objects never move to an asynchronous archive class or
    an archive access tier, and no lifecycle rule expires current objects: pgBackRest reads
    ``archive.info`` (written once at stanza-create) on every archive-push, and reads old fulls
    and WAL on restore, at any age it still retains. An archived ``archive.info`` stops WAL
    archiving; an expired one corrupts the repository.
    """
    found: list[Finding] = []
    repos = _repository_buckets(stack)
    for lifecycle in stack.of(LIFECYCLE_TYPE):
        bucket = get(lifecycle.props, "bucket")
        if bucket not in repos:
            continue
        for rule in as_list(get(lifecycle.props, "rules")):
            if rule.get("status") != "Enabled":
                continue
            for days, cls in _steps(rule.get("transitions"), "days"):
                if cls in ASYNC_ARCHIVE_CLASSES:
                    found.append(
                        (
                            lifecycle.name,
                            f"pgBackRest repository {bucket}: objects go to "
                            f"{cls} after {days} d, which pgBackRest cannot read",
                        )
                    )
            if get(rule, "expiration", "days"):
                found.append(
                    (
                        lifecycle.name,
                        f"pgBackRest repository {bucket}: a lifecycle "
                        "expiration deletes files pgBackRest still references",
                    )
                )
    for tiering in stack.of(TIERING_TYPE):
        if get(tiering.props, "bucket") in repos and as_list(get(tiering.props, "tierings")):
            found.append((tiering.name, "archive access tiers on a pgBackRest repository"))
    return found


def object_lock_consistent(stack: Stack) -> list[Finding]:
    """Object lock with versioning, and lifecycle expiry no shorter than the lock.

    Documents: Amazon S3 User Guide, "Locking objects with Object Lock" / "How S3 Object Lock
    works" (Object Lock works only in versioned buckets; a locked version cannot be deleted or
    overwritten until its retention ends, and "Lifecycle ... does not delete locked objects")
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html).

    Constraint: a bucket with a default retention has versioning Enabled; a lifecycle rule
    that expires noncurrent versions does so no earlier than the default retention (otherwise
    the declared expiry is not what happens: S3 keeps the version until the lock ends).
    """
    found: list[Finding] = []
    for lock in stack.of(OBJECT_LOCK_TYPE):
        bucket = get(lock.props, "bucket")
        days = _whole(get(lock.props, "rule", "defaultRetention", "days"))
        years = _whole(get(lock.props, "rule", "defaultRetention", "years"))
        days = days or (years * 365 if years else None)
        versioned = [
            v
            for v in stack.of(VERSIONING_TYPE)
            if get(v.props, "bucket") == bucket
            and get(v.props, "versioningConfiguration", "status") == "Enabled"
        ]
        if not versioned:
            found.append((lock.name, f"object lock on {bucket} without versioning Enabled"))
        lifecycle = stack.bucket_lifecycle(bucket)
        for rule in as_list(get(getattr(lifecycle, "props", {}), "rules")):
            expiry = _whole(get(rule, "noncurrentVersionExpiration", "noncurrentDays"))
            if days and expiry is not None and expiry < days:
                found.append(
                    (
                        lock.name,
                        f"{bucket}: noncurrent versions 'expire' after {expiry} "
                        f"d but stay locked for {days} d",
                    )
                )
    return found


RULES = [
    (
        "s3-lifecycle-storage-minimums",
        "Lifecycle transitions are supported and respect minimums",
        lifecycle_storage_minimums,
    ),
    (
        "pgbackrest-repository-readable",
        "pgBackRest repository objects stay readable",
        pgbackrest_repository_readable,
    ),
    (
        "s3-object-lock-consistent",
        "Object lock has versioning and no shorter lifecycle expiry",
        object_lock_consistent,
    ),
]
