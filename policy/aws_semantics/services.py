"""What AWS services need and send: the facts the AWS-semantics rules and the components share.

Standard library only (the policy pack loads it on its own). Components import these tables to
*build* key, bucket and topic policies; the rules use the same tables to *check* what was declared.
So each fact lives here once, next to the document it comes from.

A "request context" is the set of condition keys a service puts on its request when it calls
another service on our behalf (KMS, SNS, S3, STS). A policy condition on a key the service does not
send is never satisfied, so the call is denied: that is how a key policy that evaluates fine under
mocks silently stops delivery in AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Publishers to encrypted SNS topics.
#
# Amazon SNS Developer Guide, "Enable compatibility between event sources from AWS services and
# encrypted topics" (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
# #compatibility-with-aws-services): the key policy must let the service principal use
# kms:GenerateDataKey* and kms:Decrypt; the documented statement carries no condition, and the
# review of this project found that EventBridge sends no aws:SourceAccount with that call.
# Topic policies: Amazon EventBridge User Guide, "Amazon SNS permissions"
# (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html
# #eb-sns-permissions): "You can't use Condition blocks in Amazon SNS topic policies for
# EventBridge"; CloudWatch alarms publish with aws:SourceArn = the alarm ARN (AWS re:Post
# Knowledge Center, "Why didn't I receive an SNS notification for my CloudWatch alarm trigger?",
# https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger); AWS Backup
# Developer Guide, "Notification options in AWS Backup"
# (https://docs.aws.amazon.com/aws-backup/latest/devguide/backup-notifications.html): the topic
# policy names backup.amazonaws.com without a condition.

SNS_KEY_ACTIONS = ("kms:GenerateDataKey*", "kms:Decrypt")


@dataclass(frozen=True)
class Publisher:
    """An AWS service that publishes to a topic; what it sends to SNS and (through SNS) to KMS."""

    service: str
    source_arn: str = ""  # pattern of the publishing resource, {region}/{account} substituted
    sends_source_account: bool = False  # to SNS
    sends_source_arn: bool = False  # to SNS

    def topic_context(self, region: str, account: str, source_arn: str | None = None) -> dict:
        context: dict[str, str] = {}
        if self.sends_source_account:
            context["aws:SourceAccount"] = account
        if self.sends_source_arn:
            context["aws:SourceArn"] = source_arn or self.source_arn.format(
                region=region, account=account, name="alarm"
            )
        return context

    def key_context(self) -> dict:
        # None of the publishers is documented to pass a source condition key through SNS to KMS.
        return {}


SNS_PUBLISHERS: dict[str, Publisher] = {
    "cloudwatch.amazonaws.com": Publisher(
        "cloudwatch.amazonaws.com",
        source_arn="arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
        sends_source_account=True,
        sends_source_arn=True,
    ),
    "events.amazonaws.com": Publisher("events.amazonaws.com"),
    "backup.amazonaws.com": Publisher("backup.amazonaws.com"),
}


def sns_topic_conditions(service: str, region: str, account: str) -> dict:
    """The narrowest topic-policy condition a publisher supports (empty: none is supported)."""
    publisher = SNS_PUBLISHERS[service]
    if publisher.sends_source_arn:
        return {
            "ArnLike": {
                "aws:SourceArn": publisher.source_arn.format(
                    region=region, account=account, name="*"
                )
            }
        }
    return {}


# ---------------------------------------------------------------------------------------------
# Services that write files into our buckets ("delivery targets").


@dataclass(frozen=True)
class BucketGrant:
    action: str
    on_objects: bool  # the object ARN (bucket/prefix...) rather than the bucket ARN
    context: tuple[tuple[str, str], ...] = ()  # condition keys the service sends, {account}...


@dataclass(frozen=True)
class DeliveryWriter:
    """Who writes, what S3 and KMS actions it needs, and what it sends.

    principal: {"Service": ...} or {"AWS": role ARN pattern}; ``iam_governed`` is True when the
    writer is a role of ours whose own IAM policy can grant the access (then the bucket and key
    policies need only not deny, and the key must enable IAM), False for service principals and
    service-linked roles, whose grants must be in the bucket and key policies themselves.
    object_path: the key under the delivery prefix the service writes, {account}/{region}.
    """

    name: str
    principal: dict
    bucket: tuple[BucketGrant, ...]
    key_actions: tuple[str, ...]
    key_context: tuple[tuple[str, str], ...] = ()
    object_path: str = "{prefix}/report"
    iam_governed: bool = False
    document: str = ""


ACL_FULL_CONTROL = ("s3:x-amz-acl", "bucket-owner-full-control")
BACKUP_REPORTS_ROLE = (
    "arn:aws:iam::{account}:role/aws-service-role/reports.backup.amazonaws.com/"
    "AWSServiceRoleForBackupReports"
)

DELIVERY_WRITERS: dict[str, DeliveryWriter] = {
    # AWS Backup Developer Guide, "Creating report plans using the console"
    # (https://docs.aws.amazon.com/aws-backup/latest/devguide/create-report-plan-console.html):
    # the bucket policy lets the AWSServiceRoleForBackupReports role s3:PutObject with
    # s3:x-amz-acl = bucket-owner-full-control; a customer managed key needs kms:GenerateDataKey
    # and kms:Encrypt for it. The role must exist before a policy can name it.
    "backup-reports": DeliveryWriter(
        "backup-reports",
        {"AWS": BACKUP_REPORTS_ROLE},
        (BucketGrant("s3:PutObject", True, (ACL_FULL_CONTROL,)),),
        ("kms:GenerateDataKey", "kms:Encrypt"),
        object_path="{prefix}/report.csv",
        document="AWS Backup Developer Guide, Creating report plans using the console",
    ),
    # AWS Config Developer Guide, "Permissions for the Amazon S3 Bucket"
    # (https://docs.aws.amazon.com/config/latest/developerguide/s3-bucket-policy.html) and
    # "Permissions for the KMS Key" (.../s3-kms-key-policy.html): the service principal checks
    # the bucket ACL, lists it and puts prefix/AWSLogs/<account>/Config/* with
    # bucket-owner-full-control; it sends aws:SourceAccount and aws:SourceArn
    # arn:aws:config:<region>:<account>:*; the key needs kms:Decrypt and kms:GenerateDataKey.
    "aws-config": DeliveryWriter(
        "aws-config",
        {"Service": "config.amazonaws.com"},
        (
            BucketGrant("s3:GetBucketAcl", False, (("aws:SourceAccount", "{account}"),)),
            BucketGrant("s3:ListBucket", False, (("aws:SourceAccount", "{account}"),)),
            BucketGrant(
                "s3:PutObject",
                True,
                (
                    ACL_FULL_CONTROL,
                    ("aws:SourceAccount", "{account}"),
                    ("aws:SourceArn", "arn:aws:config:{region}:{account}:*"),
                ),
            ),
        ),
        ("kms:Decrypt", "kms:GenerateDataKey"),
        key_context=(("aws:SourceAccount", "{account}"),),
        object_path="{prefix}/AWSLogs/{account}/Config/{region}/ConfigHistory/item.json.gz",
        document="AWS Config Developer Guide, Permissions for the Amazon S3 Bucket / KMS Key",
    ),
    # Amazon S3 User Guide, "Configuring Amazon S3 Inventory"
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/configure-inventory.html): the
    # destination bucket policy lets s3.amazonaws.com s3:PutObject, with aws:SourceAccount,
    # aws:SourceArn (the source bucket) and bucket-owner-full-control; an SSE-KMS destination
    # key lets s3.amazonaws.com kms:GenerateDataKey.
    "s3-inventory": DeliveryWriter(
        "s3-inventory",
        {"Service": "s3.amazonaws.com"},
        (
            BucketGrant(
                "s3:PutObject",
                True,
                (
                    ACL_FULL_CONTROL,
                    ("aws:SourceAccount", "{account}"),
                    ("aws:SourceArn", "{source_arn}"),
                ),
            ),
        ),
        ("kms:GenerateDataKey",),
        key_context=(("aws:SourceAccount", "{account}"), ("aws:SourceArn", "{source_arn}")),
        object_path="{prefix}/{source_bucket}/inventory/data/part.csv.gz",
        document="Amazon S3 User Guide, Configuring Amazon S3 Inventory",
    ),
    # Amazon S3 User Guide, "Granting permissions for Batch Operations"
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-iam-role-policies.html):
    # the job's own role writes the completion report (s3:PutObject on the report prefix), and
    # needs kms:GenerateDataKey/kms:Encrypt on an SSE-KMS report bucket's key.
    "s3-batch-operations": DeliveryWriter(
        "s3-batch-operations",
        {"AWS": "{role_arn}"},
        (BucketGrant("s3:PutObject", True),),
        ("kms:GenerateDataKey", "kms:Encrypt"),
        object_path="{prefix}/job-report/results.csv",
        iam_governed=True,
        document="Amazon S3 User Guide, Granting permissions for Batch Operations",
    ),
}


def delivery_bucket_statements(
    writer: str, bucket_arn: str, prefix: str, account: str, region: str, source_arn: str = ""
) -> list[dict]:
    """Bucket-policy statements that let ``writer`` deliver under ``prefix`` (service writers)."""
    spec = DELIVERY_WRITERS[writer]
    values = {"account": account, "region": region, "source_arn": source_arn}
    principal = {k: v.format(**values) for k, v in spec.principal.items()}
    statements = []
    for grant in spec.bucket:
        resource = f"{bucket_arn}/{prefix.strip('/')}/*" if grant.on_objects else bucket_arn
        statement = {
            "Sid": f"{writer.title().replace('-', '')}{grant.action.split(':')[1]}",
            "Effect": "Allow",
            "Principal": principal,
            "Action": grant.action,
            "Resource": resource,
        }
        if grant.context:
            conditions: dict[str, dict[str, str]] = {}
            for key, value in grant.context:
                operator = "ArnLike" if key == "aws:SourceArn" else "StringEquals"
                conditions.setdefault(operator, {})[key] = value.format(**values)
            statement["Condition"] = conditions
        statements.append(statement)
    return statements


# ---------------------------------------------------------------------------------------------
# Storage classes (Amazon S3 User Guide, "Transitioning objects using Amazon S3 Lifecycle",
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-transition-general-
# considerations.html, and "Using Amazon S3 storage classes").

MIN_STORAGE_DAYS = {
    "STANDARD": 0,
    "INTELLIGENT_TIERING": 0,
    "STANDARD_IA": 30,
    "ONEZONE_IA": 30,
    "GLACIER_IR": 90,
    "GLACIER": 90,
    "DEEP_ARCHIVE": 180,
}
# S3 refuses a transition into these before an object is 30 days old (or 30 days noncurrent).
IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
IA_MIN_AGE_DAYS = 30
# Archived objects are not available in real time: a GET fails until a restore completes.
ASYNC_ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")

# ---------------------------------------------------------------------------------------------
# AWS Backup (AWS Backup Developer Guide).

# "Choosing your controls" (https://docs.aws.amazon.com/aws-backup/latest/devguide/
# choosing-controls.html): every control needs AWS Config to record resource compliance, and the
# controls evaluate backup plans, selections, vaults and recovery points.
BACKUP_AUDIT_CONFIG_TYPES = (
    "AWS::Backup::BackupPlan",
    "AWS::Backup::BackupSelection",
    "AWS::Backup::BackupVault",
    "AWS::Backup::RecoveryPoint",
    "AWS::Config::ResourceCompliance",
)
# "Continuous backups and point-in-time recovery (PITR)": at most 35 days, only some services.
CONTINUOUS_MAX_DAYS = 35
# "Lifecycle and storage tiers": a recovery point stays in cold storage at least 90 days.
COLD_MIN_DAYS = 90
# "AWS Backup Vault Lock": in compliance mode the grace period (ChangeableForDays) is >= 3 days.
LOCK_MIN_CHANGEABLE_DAYS = 3

# ---------------------------------------------------------------------------------------------
# Which condition keys a service sends when it assumes a role (sts:AssumeRole).
# Amazon S3 User Guide, "Setting up permissions for live replication" (aws:SourceAccount,
# aws:SourceArn); AWS Backup Developer Guide, "Cross-service confused deputy prevention";
# AWS Config Developer Guide, "Permissions for the IAM role assigned to AWS Config"
# (aws:SourceAccount); Amazon EC2 instance profiles: EC2 assumes the role for the instance and
# sends neither (IAM User Guide, "Using an IAM role to grant permissions to applications running
# on Amazon EC2 instances").
ASSUME_ROLE_CONTEXT: dict[str, tuple[str, ...]] = {
    "s3.amazonaws.com": ("aws:SourceAccount", "aws:SourceArn"),
    "backup.amazonaws.com": ("aws:SourceAccount", "aws:SourceArn"),
    "config.amazonaws.com": ("aws:SourceAccount", "aws:SourceArn"),
    "ec2.amazonaws.com": (),
}

# ---------------------------------------------------------------------------------------------
# Route 53 health checks (Amazon Route 53 Developer Guide, "Values that you specify when you
# create or update health checks", https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/
# health-checks-creating-values.html).

ROUTE53_ALARM_STATISTICS = ("Average", "Minimum", "Maximum", "Sum", "SampleCount")
ENDPOINT_CHECK_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")


@dataclass(frozen=True)
class Citation:
    title: str
    url: str
    constraint: str
    extra: tuple[str, ...] = field(default_factory=tuple)
