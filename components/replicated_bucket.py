"""ReplicatedBucket: a versioned primary bucket plus replicas in distinct regions.

By default three copies in three regions, the spec's "triple redundancy". Every copy is a full,
independently secured bucket: replicas do not inherit lifecycle, policy or encryption settings, so
each copy gets its own. Replication uses V2 rules, one per destination, with delete markers,
replica-modification sync, KMS-encrypted objects (re-encrypted under the destination region's
key), replication metrics everywhere, and Replication Time Control on every rule: RTC is the only
replication mode with a bound (its SLA: 99.99% of objects in 15 minutes). Without it a copy's lag
is only *detected* by the latency alarm, which bounds nothing (policy/bounds.py), so no class RPO
could be claimed met. RTC adds a per-GB charge on top of replication; an RPO under 15 minutes is
beyond what S3 replication can promise at all, and posture says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.bucket_security import secure_bucket
from components.iam import service_trust_policy
from components.keys import KeyGrant, MultiRegionKey, MultiRegionKeyArgs
from components.objectives import (
    MINUTE,
    OBJECT_LOCK_MODES,
    ClassObjective,
    ConfigError,
    Objectives,
    class_tags,
)
from components.s3_policies import bucket_policy, cloudfront_read_statements, replication_policy
from policy.aws_semantics.services import (
    DELIVERY_WRITERS,
    MIN_STORAGE_DAYS,
    delivery_bucket_statements,
)

RTC_MINUTES = 15  # the only value S3 accepts for RTC and for the metrics event threshold
# "repository": objects a program must read back at any age (pgBackRest's archive.info is
# written once, at stanza-create, and read by every archive-push): instant-read classes only.
ARCHIVE_PROFILES = ("standard", "archive-heavy", "repository")


@dataclass(frozen=True)
class ObjectLock:
    """Object lock on every copy. mode: GOVERNANCE or COMPLIANCE; days: default retention."""

    mode: str
    days: int

    def __post_init__(self):
        if self.mode not in OBJECT_LOCK_MODES:
            raise ConfigError("objectLock.mode", self.mode, " or ".join(OBJECT_LOCK_MODES))
        if self.days < 1:
            raise ConfigError("objectLock.days", self.days, "at least 1 day")


@dataclass(frozen=True)
class LifecyclePlan:
    """What happens to objects over time on every copy, derived from the class and profile."""

    transitions: tuple[tuple[int, str], ...]  # (days after creation, storage class)
    # old versions go cold early (they are rarely read), unless they expire before that pays
    noncurrent_transition: tuple[int, str] | None
    noncurrent_expiry_days: int  # old versions are kept for the class retention
    abort_multipart_days: int = 7

    @property
    def archived_after_days(self) -> int:
        return self.transitions[0][0]


def lifecycle_plan(objective: ClassObjective, profile: str = "standard") -> LifecyclePlan:
    """Archival tiers per class.

    Critical data stays in Standard longer (faster restores, lower RTO); an archive-heavy dataset
    (rarely replayed generated content) moves to cold tiers early.
    """
    if profile not in ARCHIVE_PROFILES:
        raise ConfigError("archiveProfile", profile, f"one of {', '.join(ARCHIVE_PROFILES)}")
    if profile == "archive-heavy":
        transitions = ((30, "GLACIER_IR"), (180, "DEEP_ARCHIVE"))
    elif profile == "repository":
        transitions = ((90, "STANDARD_IA"), (180, "GLACIER_IR"))
    elif objective.name == "critical":
        transitions = ((90, "STANDARD_IA"), (180, "GLACIER_IR"), (365, "DEEP_ARCHIVE"))
    elif objective.name == "important":
        transitions = ((30, "STANDARD_IA"), (90, "GLACIER_IR"), (365, "DEEP_ARCHIVE"))
    else:
        transitions = ((30, "STANDARD_IA"),)
    expiry = max(objective.retention_days, 31)
    # A version moved to Glacier IR is billed for 90 days there: only move old versions that
    # will live that long after the move (S3 storage classes, minimum storage duration).
    cold_after, cold_class = 30, "GLACIER_IR"
    noncurrent = (
        (cold_after, cold_class) if expiry >= cold_after + MIN_STORAGE_DAYS[cold_class] else None
    )
    return LifecyclePlan(
        transitions=transitions,
        noncurrent_transition=noncurrent,
        noncurrent_expiry_days=expiry,
    )


@dataclass(frozen=True)
class DeliveryTarget:
    """An AWS service that writes files into the primary copy under ``prefix``.

    writer: a key of ``policy.aws_semantics.services.DELIVERY_WRITERS`` ("backup-reports",
        "aws-config", "s3-inventory"...). Service writers get bucket-policy statements and key
        grants; a writer that is one of our IAM roles gets neither (its own policy grants).
    prefix: key prefix the service writes under, e.g. "backup-reports".
    source_arn: what the writer writes on behalf of (S3 Inventory: the source bucket ARN).
    """

    writer: str
    prefix: str
    source_arn: pulumi.Input[str] = ""

    def __post_init__(self):
        if self.writer not in DELIVERY_WRITERS:
            raise ConfigError(
                "deliveries.writer", self.writer, f"one of {sorted(DELIVERY_WRITERS)}"
            )


def uses_rtc(objective: ClassObjective) -> bool:
    """Replication Time Control for every class: the only S3 replication with a bound (see the
    module docstring). A function so the one place that decides it is named."""
    del objective  # every class: no RPO is met by an alarm alone
    return True


def replication_rules(
    replicas: Sequence[str],
    bucket_arns: Mapping[str, pulumi.Input[str]],
    key_arns: Mapping[str, pulumi.Input[str]],
    rtc: bool,
) -> list[dict]:
    """The primary copy's V2 replication rules, one per replica region, as pulumi-aws takes them.

    The one place that says what a rule holds: the component declares these, and ``drctl verify``
    compares the live rules with them field by field (bucket and key ARNs from the outputs).
    """
    rules = []
    for priority, region in enumerate(replicas, start=1):
        destination = {
            "bucket": bucket_arns[region],
            "storage_class": "STANDARD",
            "encryption_configuration": {"replica_kms_key_id": key_arns[region]},
            # Metrics on every rule: RTC requires them, and they feed the latency alarm.
            "metrics": {"status": "Enabled", "event_threshold": {"minutes": RTC_MINUTES}},
        }
        if rtc:
            destination["replication_time"] = {
                "status": "Enabled",
                "time": {"minutes": RTC_MINUTES},
            }
        rules.append(
            {
                "id": f"to-{region}",
                "priority": priority,
                "status": "Enabled",
                "filter": {},
                "delete_marker_replication": {"status": "Enabled"},
                "source_selection_criteria": {
                    "replica_modifications": {"status": "Enabled"},
                    "sse_kms_encrypted_objects": {"status": "Enabled"},
                },
                "destination": destination,
            }
        )
    return rules


@dataclass
class ReplicatedBucketArgs:
    """Arguments of ReplicatedBucket.

    objectives: the stack's Objectives; regions and class numbers come from here.
    data_class: critical, important or operational; decides RTC, archival and alarm thresholds.
    dataset: short name of what the bucket holds ("creator-audio"); names and tags use it.
    replica_regions: where the copies live; default the objectives' DR and third regions.
    archive_profile: "standard" (default), "archive-heavy" (cold tiers early) or "repository"
        (objects read back at any age, e.g. pgBackRest: never an asynchronous archive class).
    object_lock: ObjectLock on every copy; default None (backup buckets set it).
    alarm_topic_arns: region -> SNS topic for replication alarms; default none (no alarms).
    adopt_buckets: region -> name of an existing bucket to use as that copy instead of creating
        one (the dr stack adopts prod's replicas). The bucket and its settings (versioning,
        encryption, policy, lifecycle, lock) stay owned by the stack that created it: this
        component declares none of them for an adopted copy, only the replication it adds.
    legacy_key_arns: keys that still encrypt existing objects of adopted buckets; replication
        may decrypt with them. Default none.
    key: a MultiRegionKey covering the primary and every replica region; default one per bucket.
    deliveries: DeliveryTarget services writing into the primary copy; default none.
    home_region: the copy that takes writes and replicates to the others; default the
        objectives' primary region. The status page lives in the DR region, so that it takes
        updates while the primary region is down.
    cloudfront_readers: ARNs of CloudFront distributions that may read every copy through origin
        access control (s3:GetObject and the key's kms:Decrypt, scoped by AWS:SourceArn);
        default none.
    """

    objectives: Objectives
    data_class: str
    dataset: str
    replica_regions: Sequence[str] | None = None
    archive_profile: str = "standard"
    object_lock: ObjectLock | None = None
    alarm_topic_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    adopt_buckets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    legacy_key_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    key: MultiRegionKey | None = None
    deliveries: Sequence[DeliveryTarget] = field(default_factory=tuple)
    home_region: str | None = None
    cloudfront_readers: Sequence[pulumi.Input[str]] = field(default_factory=tuple)


def delivery_key_grants(deliveries: Sequence[DeliveryTarget]) -> list[KeyGrant]:
    """Key-policy statements for the service writers (their IAM is not ours to grant)."""
    grants = []
    for target in deliveries:
        spec = DELIVERY_WRITERS[target.writer]
        if spec.iam_governed:
            continue
        conditions: dict[str, dict[str, str]] = {}
        for key, value in spec.key_context:
            if "{source_arn}" in value:
                continue  # per source bucket: not expressible once for the whole key
            conditions.setdefault("StringEquals", {})[key] = value
        grants.append(
            KeyGrant(
                sid=f"{target.writer.title().replace('-', '')}Writes",
                principal=dict(spec.principal),
                actions=spec.key_actions,
                conditions=conditions,
            )
        )
    return grants


class ReplicatedBucket(pulumi.ComponentResource):
    """Outputs: ``bucket_names``/``bucket_arns``/``key_arns`` (region -> value),
    ``primary_bucket_name``, ``replication_role_arn``, ``rtc`` (bool), ``lifecycle``."""

    TYPE = "platform-dr:replicated_bucket:ReplicatedBucket"

    def __init__(
        self, name: str, args: ReplicatedBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        # Identity only (never settings): lets the policy rules group this bucket's children.
        identity = {"dataset": args.dataset, "dataClass": args.data_class}
        super().__init__(self.TYPE, name, identity, opts)
        objectives = args.objectives
        objective = objectives.of(args.data_class)
        primary = args.home_region or objectives.regions.primary
        replicas = list(args.replica_regions or [r for r in objectives.regions.all if r != primary])
        regions = [primary, *replicas]
        if len(set(regions)) != len(regions):
            raise ConfigError(
                "replicaRegions", replicas, f"distinct regions other than primary {primary}"
            )
        self.lifecycle = lifecycle_plan(objective, args.archive_profile)
        self.rtc = uses_rtc(objective)
        tags = class_tags(args.data_class, args.dataset)
        child = pulumi.ResourceOptions(parent=self)
        data_opts = pulumi.ResourceOptions(
            parent=self, protect=objectives.protect_data, retain_on_delete=True
        )

        key = args.key or MultiRegionKey(
            f"{name}-key",
            MultiRegionKeyArgs(
                regions=regions,
                description=f"{args.dataset} objects",
                data_class=args.data_class,
                dataset=args.dataset,
                grants=delivery_key_grants(args.deliveries),
                cloudfront_readers=args.cloudfront_readers,
            ),
            opts=child,
        )
        self.key_arns = {r: key.arns[r] for r in regions}

        self.bucket_names: dict[str, pulumi.Output[str]] = {}
        self.bucket_arns: dict[str, pulumi.Output[str]] = {}
        self.bucket_domain_names: dict[str, pulumi.Output[str]] = {}
        self.adopted_regions = [r for r in regions if r in args.adopt_buckets]
        versionings = []
        for region in regions:
            copy = f"{name}-{region}"
            if region in args.adopt_buckets:
                bucket = aws.s3.Bucket.get(
                    copy, id=args.adopt_buckets[region], region=region, opts=data_opts
                )
                self.bucket_names[region] = bucket.bucket
                self.bucket_arns[region] = bucket.arn
                self.bucket_domain_names[region] = bucket.bucket_regional_domain_name
                continue  # its settings belong to the stack that owns it
            else:
                bucket = aws.s3.Bucket(
                    copy,
                    region=region,
                    bucket_prefix=f"{args.dataset[:30]}-",
                    object_lock_enabled=bool(args.object_lock),
                    force_destroy=False,
                    tags=tags,
                    opts=data_opts,
                )
            self.bucket_names[region] = bucket.bucket
            self.bucket_arns[region] = bucket.arn
            self.bucket_domain_names[region] = bucket.bucket_regional_domain_name
            deliveries = args.deliveries if region == primary else ()
            versionings.append(
                self._secure_copy(
                    copy, region, bucket, self.key_arns[region], args, deliveries, child
                )
            )

        self.primary_bucket_name = self.bucket_names[primary]
        self.replication_role_arn = self._replicate(
            name, primary, replicas, objective, args, versionings, child
        )
        self.register_outputs(
            {
                **identity,  # what the policy rules group by; stack policies read outputs
                "bucket_names": self.bucket_names,
                "bucket_arns": self.bucket_arns,
                "key_arns": self.key_arns,
                "replication_role_arn": self.replication_role_arn,
                "adopted_regions": self.adopted_regions,
                # Keys the source's objects may be under (ours, and an adopted source's owner's).
                "source_key_arns": [self.key_arns[primary], *args.legacy_key_arns],
                "archive_profile": args.archive_profile,
                "deliveries": [
                    {"writer": d.writer, "prefix": d.prefix, "sourceArn": d.source_arn}
                    for d in args.deliveries
                ],
            }
        )

    def _secure_copy(
        self, copy, region, bucket, key_arn, args, deliveries, child
    ) -> aws.s3.BucketVersioning:
        """Everything one copy needs on its own: S3 applies none of it across replication."""
        account = aws.get_caller_identity_output().account_id
        policy = pulumi.Output.all(
            bucket.arn,
            account,
            [d.source_arn for d in deliveries],
            list(args.cloudfront_readers),
        ).apply(
            lambda v: bucket_policy(
                v[0],
                [
                    statement
                    for d, source in zip(deliveries, v[2], strict=True)
                    if not DELIVERY_WRITERS[d.writer].iam_governed
                    for statement in delivery_bucket_statements(
                        d.writer, v[0], d.prefix, v[1], region, source or ""
                    )
                ]
                + cloudfront_read_statements(v[0], v[3]),
            )
        )
        versioning = secure_bucket(copy, region, bucket, key_arn, policy, self)
        plan = self.lifecycle
        noncurrent = (
            [
                {
                    "noncurrent_days": plan.noncurrent_transition[0],
                    "storage_class": plan.noncurrent_transition[1],
                }
            ]
            if plan.noncurrent_transition
            else None
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{copy}-lifecycle",
            region=region,
            bucket=bucket.bucket,
            rules=[
                {
                    "id": "archive",
                    "status": "Enabled",
                    "filter": {},
                    "transitions": [
                        {"days": days, "storage_class": cls} for days, cls in plan.transitions
                    ],
                    "noncurrent_version_transitions": noncurrent,
                    "noncurrent_version_expiration": {
                        "noncurrent_days": plan.noncurrent_expiry_days
                    },
                    "abort_incomplete_multipart_upload": {
                        "days_after_initiation": plan.abort_multipart_days
                    },
                }
            ],
            # Noncurrent-version rules only mean something once versioning is on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        if args.object_lock:
            aws.s3.BucketObjectLockConfiguration(
                f"{copy}-object-lock",
                region=region,
                bucket=bucket.bucket,
                object_lock_enabled="Enabled",
                rule={
                    "default_retention": {
                        "mode": args.object_lock.mode,
                        "days": args.object_lock.days,
                    }
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
            )
        return versioning

    def _replicate(self, name, primary, replicas, objective, args, versionings, child):
        role = aws.iam.Role(
            f"{name}-replication-role",
            assume_role_policy=aws.get_caller_identity_output().account_id.apply(
                lambda account: service_trust_policy("s3.amazonaws.com", account)
            ),
            description=f"S3 replication of {args.dataset} from {primary}",
            tags=class_tags(args.data_class, args.dataset),
            opts=child,
        )
        source_keys = [self.key_arns[primary], *args.legacy_key_arns]
        # Our copies always write with S3 Bucket Keys; an adopted source's setting is its
        # owner's, so both encryption contexts are allowed for it.
        bucket_keys = None if primary in args.adopt_buckets else True
        policy = pulumi.Output.all(
            source_arn=self.bucket_arns[primary],
            source_keys=source_keys,
            destinations=[[r, self.bucket_arns[r], self.key_arns[r]] for r in replicas],
        ).apply(
            lambda v: replication_policy(
                v["source_arn"],
                primary,
                v["source_keys"],
                v["destinations"],
                object_lock=bool(args.object_lock),
                bucket_keys=bucket_keys,
            )
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-replication-policy", role=role.id, policy=policy, opts=child
        )
        rules = replication_rules(replicas, self.bucket_arns, self.key_arns, self.rtc)
        aws.s3.BucketReplicationConfig(
            f"{name}-replication",
            region=primary,
            bucket=self.bucket_names[primary],
            role=role.arn,
            rules=rules,
            # S3 refuses a replication config unless versioning is on at both ends.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*versionings, role_policy]),
        )
        self._alarms(name, primary, replicas, objective, args, child)
        return role.arn

    def _alarms(self, name, primary, replicas, objective, args, child) -> None:
        topic = args.alarm_topic_arns.get(primary)
        if topic is None:
            return
        for region in replicas:
            dimensions = {
                "SourceBucket": self.bucket_names[primary],
                "DestinationBucket": self.bucket_names[region],
                "RuleId": f"to-{region}",
            }
            common = {
                "region": primary,
                "namespace": "AWS/S3",
                "dimensions": dimensions,
                "period": 300,
                "evaluation_periods": 1,
                "alarm_actions": [topic],
                "ok_actions": [topic],
                "tags": class_tags(args.data_class, args.dataset),
                "opts": child,
            }
            aws.cloudwatch.MetricAlarm(
                f"{name}-latency-{region}",
                alarm_description=(
                    f"{args.dataset}: replication to {region} is older than the "
                    f"{args.data_class} RPO"
                ),
                metric_name="ReplicationLatency",
                statistic="Maximum",
                comparison_operator="GreaterThanThreshold",
                threshold=min(objective.rpo_s, RTC_MINUTES * MINUTE)
                if self.rtc
                else objective.rpo_s,
                treat_missing_data="notBreaching",
                **common,
            )
            aws.cloudwatch.MetricAlarm(
                f"{name}-failed-{region}",
                alarm_description=f"{args.dataset}: objects failed to replicate to {region}",
                metric_name="OperationsFailedReplication",
                statistic="Sum",
                comparison_operator="GreaterThanThreshold",
                threshold=0,
                treat_missing_data="notBreaching",
                **common,
            )
