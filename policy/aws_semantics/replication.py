"""S3 replication: what the replication role must be allowed, by IAM and by KMS, to really copy.

Each rule replays the requests S3 makes while replicating, with the request context S3 sends,
through the declared IAM and key policies (``iam_eval``), instead of looking for familiar strings.
"""

from __future__ import annotations

from .graph import REPLICATED_BUCKET, REPLICATION_TYPE, Stack, arn_region, get, whole
from .iam_eval import ALLOW, as_list, decide, kms_allows, policy_doc, resource_allows

Finding = tuple[str, str]


def _source_keys(stack: Stack, bucket: str) -> tuple[list[str], bool | None]:
    """(keys that may encrypt the source's objects, Bucket Keys on?) for a source bucket."""
    declared = stack.bucket_encryption(bucket)
    keys: list[str] = []
    bucket_keys = None
    if declared is not None:
        key, bucket_keys = declared
        keys = [key] if key else []
    for comp in stack.of(REPLICATED_BUCKET):
        if bucket in (get(comp.props, "bucket_names") or {}).values():
            keys += [k for k in as_list(get(comp.props, "source_key_arns")) if k not in keys]
    return keys, bucket_keys


def _contexts(arn: str, bucket_keys: bool | None) -> list[str]:
    """The aws:s3:arn encryption context S3 sends: the bucket ARN with an S3 Bucket Key, the
    object ARN without one; both when the setting is not declared here (an adopted bucket)."""
    sample = f"{arn}/replicated/object"
    if bucket_keys is None:
        return [arn, sample]
    return [arn] if bucket_keys else [sample]


def kms_permits(stack, principal, identity, key, action, region, context_arn) -> bool:
    """Would KMS let the role call ``action`` on ``key`` through S3 in ``region``?"""
    context = {
        "kms:ViaService": f"s3.{region}.amazonaws.com",
        "kms:EncryptionContext:aws:s3:arn": context_arn,
        "kms:CallerAccount": stack.account,
    }
    doc = stack.key_policy(key)
    if doc is None:
        # A key another stack owns: only this stack's IAM side can be judged here.
        return resource_allows({}, principal, action, key, stack.account, context, identity)
    return kms_allows(doc, principal, action, key, stack.account, context, identity)


def s3_replication_kms(stack: Stack) -> list[Finding]:
    """S3 replication of SSE-KMS objects: KMS must let the replication role decrypt and encrypt.

    Document: Amazon S3 User Guide, "Replicating encrypted objects (SSE-S3, SSE-KMS, DSSE-KMS,
    SSE-C)", https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-config-for-kms-
    objects.html, sections "Granting additional permissions for the IAM role" and "Amazon S3
    Bucket Keys and replication".

    Constraint: the role needs kms:Decrypt on the key of the source objects and kms:Encrypt (and
    kms:GenerateDataKey) on the destination key, each through S3 in that key's region. S3 sends
    ``kms:EncryptionContext:aws:s3:arn`` = the *bucket* ARN when an S3 Bucket Key is enabled and
    the object ARN when not; a replica keeps its source's Bucket Key setting; with a Bucket Key
    the destination key must also allow kms:Decrypt (S3 checks the Bucket Key's integrity).
    A key policy must allow it too (directly, or by delegating to IAM). Failing any of this,
    every replication fails: no second or third copy, and the RPO is missed.
    """
    found: list[Finding] = []
    for config in stack.of(REPLICATION_TYPE):
        props = config.props
        source = get(props, "bucket")
        source_arn = stack.bucket_arn(source)
        source_region = get(props, "region") or ""
        role = stack.role(get(props, "role"))
        identity = stack.role_policies(role) if role is not None else []
        principal = {"AWS": str(get(props, "role"))}
        if role is None:
            found.append((config.name, "the replication role is not declared in this stack"))
            continue
        keys, bucket_keys = _source_keys(stack, source)
        kms_rules = [
            r
            for r in as_list(get(props, "rules"))
            if get(r, "sourceSelectionCriteria", "sseKmsEncryptedObjects", "status") == "Enabled"
        ]
        if kms_rules and not keys:
            found.append((config.name, f"no KMS key is known for source bucket {source}"))

        def refuse(key, action, region, ctx, what, name=config.name, who=(principal, identity)):
            if not kms_permits(stack, who[0], who[1], key, action, region, ctx):
                found.append(
                    (
                        name,
                        f"KMS refuses {action} on {what} key {key} for the replication role with "
                        f"encryption context {ctx} via s3.{region}: replication fails",
                    )
                )

        if kms_rules:
            for key in keys:
                for ctx in _contexts(source_arn, bucket_keys):
                    refuse(key, "kms:Decrypt", source_region, ctx, "source")
        for rule in kms_rules:
            dest = get(rule, "destination", "bucket") or ""
            key = get(rule, "destination", "encryptionConfiguration", "replicaKmsKeyId")
            if not key:
                found.append((config.name, f"rule {rule.get('id')}: no destination key"))
                continue
            region = arn_region(key)
            actions = ["kms:Encrypt", "kms:GenerateDataKey"]
            if bucket_keys is not False:
                actions.append("kms:Decrypt")
            for ctx in _contexts(dest, bucket_keys):
                for action in actions:
                    refuse(key, action, region, ctx, "destination")
    return found


def s3_replication_permissions(stack: Stack) -> list[Finding]:
    """The replication role may read the source versions and write the replicas, and S3 may
    assume it.

    Document: Amazon S3 User Guide, "Setting up permissions for live replication",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/setting-repl-config-perm-overview.html;
    and "Using S3 Object Lock with replication" (objects under a lock need
    s3:GetObjectRetention and s3:GetObjectLegalHold, and the destination bucket must have
    Object Lock enabled).

    Constraint: s3:GetReplicationConfiguration and s3:ListBucket on the source bucket;
    s3:GetObjectVersionForReplication, s3:GetObjectVersionAcl and s3:GetObjectVersionTagging on
    its objects; s3:ReplicateObject, s3:ReplicateDelete and s3:ReplicateTags on each
    destination's objects; the trust policy admits s3.amazonaws.com with the condition keys S3
    sends (aws:SourceAccount, aws:SourceArn = the source bucket).
    """
    found: list[Finding] = []
    for config in stack.of(REPLICATION_TYPE):
        props = config.props
        role = stack.role(get(props, "role"))
        if role is None:
            continue  # s3_replication_kms reports it
        identity = stack.role_policies(role)
        source = stack.bucket_arn(get(props, "bucket"))
        needed = [
            ("s3:GetReplicationConfiguration", source),
            ("s3:ListBucket", source),
            ("s3:GetObjectVersionForReplication", f"{source}/o"),
            ("s3:GetObjectVersionAcl", f"{source}/o"),
            ("s3:GetObjectVersionTagging", f"{source}/o"),
        ]
        source_bucket = stack.buckets.get(get(props, "bucket"))
        locked = source_bucket is not None and get(source_bucket.props, "objectLockEnabled")
        if locked:
            needed += [
                ("s3:GetObjectRetention", f"{source}/o"),
                ("s3:GetObjectLegalHold", f"{source}/o"),
            ]
        for rule in as_list(get(props, "rules")):
            dest = get(rule, "destination", "bucket") or ""
            needed += [
                (a, f"{dest}/o")
                for a in ("s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags")
            ]
            target = stack.buckets.get(dest.removeprefix("arn:aws:s3:::"))
            if (
                locked
                and target is not None
                and "objectLockEnabled" in target.props
                and not (get(target.props, "objectLockEnabled"))
            ):
                found.append(
                    (
                        config.name,
                        f"source objects are locked but destination {dest} has no Object Lock",
                    )
                )
        for action, resource in needed:
            if not resource_allows(
                {}, {"AWS": "role"}, action, resource, stack.account, {}, identity
            ):
                found.append((config.name, f"the replication role may not {action} on {resource}"))
        trust = policy_doc(get(role.props, "assumeRolePolicy"))
        context = {"aws:SourceAccount": stack.account, "aws:SourceArn": source}
        service = {"Service": "s3.amazonaws.com"}
        if decide(trust, "sts:AssumeRole", "*", context, service, stack.account) != ALLOW:
            found.append((role.name, "S3 cannot assume the replication role (trust policy)"))
    return found


def s3_rtc_needs_metrics(stack: Stack) -> list[Finding]:
    """Replication Time Control only with replication metrics at the 15-minute threshold.

    Document: Amazon S3 API Reference, "ReplicationTime" and "Metrics"
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ReplicationTime.html), and Amazon S3
    User Guide, "Meeting compliance requirements with S3 Replication Time Control".

    Constraint: a rule with ReplicationTime enabled must also enable Metrics with an
    EventThreshold of 15 minutes; the time and the threshold are 15 minutes, the only value S3
    accepts. S3 rejects the configuration otherwise.
    """
    found: list[Finding] = []
    for config in stack.of(REPLICATION_TYPE):
        for rule in as_list(get(config.props, "rules")):
            rtc = get(rule, "destination", "replicationTime") or {}
            if rtc.get("status") != "Enabled":
                continue
            metrics = get(rule, "destination", "metrics") or {}
            minutes = whole(get(rtc, "time", "minutes"))
            threshold = whole(get(metrics, "eventThreshold", "minutes"))
            if metrics.get("status") != "Enabled" or threshold != 15 or minutes != 15:
                found.append(
                    (
                        config.name,
                        f"rule {rule.get('id')}: RTC needs metrics Enabled at 15 min "
                        f"(time {minutes}, metrics {metrics.get('status')} at {threshold})",
                    )
                )
    return found


RULES = [
    (
        "s3-replication-kms",
        "S3 replication can use the KMS keys with the context S3 sends",
        s3_replication_kms,
    ),
    (
        "s3-replication-permissions",
        "The replication role may read, write and be assumed by S3",
        s3_replication_permissions,
    ),
    (
        "s3-rtc-metrics",
        "Replication Time Control comes with 15-minute replication metrics",
        s3_rtc_needs_metrics,
    ),
]
