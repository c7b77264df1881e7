"""Delivery targets: services that write files into our buckets must be allowed to.

A delivery is (writer, bucket, prefix, key). The writers and what they need are in
``services.DELIVERY_WRITERS``; the deliveries are read from what the stack declares:

- ``aws:backup/reportPlan:ReportPlan`` (AWS Backup Audit Manager reports),
- ``aws:cfg/deliveryChannel:DeliveryChannel`` (AWS Config; also by the recorder's role),
- ``aws:s3/inventory:Inventory`` (S3 Inventory reports),
- any component that registers ``deliveries`` outputs: ``[{"writer", "bucket", "prefix",
  "roleArn"?, "sourceArn"?}]`` (for example an S3 Batch Operations job role writing its
  completion report: writer ``s3-batch-operations``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Stack, get
from .iam_eval import as_list, kms_allows, resource_allows
from .services import DELIVERY_WRITERS

Finding = tuple[str, str]


@dataclass(frozen=True)
class Delivery:
    source: str  # the resource that causes the delivery
    writer: str
    bucket: str
    prefix: str
    region: str
    key: str | None = None  # an explicit encryption key (else the bucket's default)
    role: str | None = None  # the writer's role ARN (IAM-governed writers)
    source_arn: str = ""


def _bucket_name(value) -> str:
    return str(value or "").removeprefix("arn:aws:s3:::")


def deliveries(stack: Stack) -> list[Delivery]:
    found = []
    for r in stack.of("aws:backup/reportPlan:ReportPlan"):
        channel = get(r.props, "reportDeliveryChannel") or {}
        found.append(
            Delivery(
                r.name,
                "backup-reports",
                _bucket_name(channel.get("s3BucketName")),
                channel.get("s3KeyPrefix") or "",
                get(r.props, "region") or "",
            )
        )
    for r in stack.of("aws:cfg/deliveryChannel:DeliveryChannel"):
        role = None
        for recorder in stack.of("aws:cfg/recorder:Recorder"):
            if get(recorder.props, "region") == get(r.props, "region"):
                role = get(recorder.props, "roleArn")
        found.append(
            Delivery(
                r.name,
                "aws-config",
                _bucket_name(get(r.props, "s3BucketName")),
                get(r.props, "s3KeyPrefix") or "",
                get(r.props, "region") or "",
                key=get(r.props, "s3KmsKeyArn"),
                role=role,
            )
        )
    for r in stack.of("aws:s3/inventory:Inventory"):
        dest = get(r.props, "destination", "bucket") or {}
        key = get(dest, "encryption", "sseKms", "keyId")
        found.append(
            Delivery(
                r.name,
                "s3-inventory",
                _bucket_name(dest.get("bucketArn")),
                dest.get("prefix") or "",
                get(r.props, "region") or "",
                key=key,
                source_arn=f"arn:aws:s3:::{get(r.props, 'bucket')}",
            )
        )
    for comp in stack.resources:
        for entry in as_list(get(comp.props, "deliveries")):
            if not isinstance(entry, dict) or not entry.get("bucket"):
                continue  # ReplicatedBucket lists its writers without a bucket: the services do
            found.append(
                Delivery(
                    comp.name,
                    entry.get("writer", ""),
                    _bucket_name(entry["bucket"]),
                    entry.get("prefix", ""),
                    entry.get("region", ""),
                    role=entry.get("roleArn"),
                    source_arn=entry.get("sourceArn", ""),
                )
            )
    return found


def delivery_targets_writable(stack: Stack) -> list[Finding]:
    """Every service that delivers files into a bucket may write there and use its key.

    Documents: AWS Backup Developer Guide, "Creating report plans using the console"
    (https://docs.aws.amazon.com/aws-backup/latest/devguide/create-report-plan-console.html);
    AWS Config Developer Guide, "Permissions for the Amazon S3 Bucket" and "Permissions for the
    KMS Key" (https://docs.aws.amazon.com/config/latest/developerguide/s3-bucket-policy.html);
    Amazon S3 User Guide, "Configuring Amazon S3 Inventory" and "Granting permissions for Batch
    Operations".

    Constraint: the bucket policy grants the writer each S3 action it performs on the delivery
    prefix, accepting the condition keys it sends (bucket-owner-full-control, aws:SourceAccount,
    aws:SourceArn); when the bucket encrypts with a customer managed key, the key policy lets the
    writer use it (kms:GenerateDataKey, and kms:Encrypt or kms:Decrypt as the service needs).
    A service-linked role (AWS Backup reports) is governed by AWS's policy, not ours, so only
    the bucket and key policies can grant it; a writer that is one of our roles (S3 Batch
    Operations, the AWS Config recorder's role) is granted by its own IAM policy and a key that
    delegates to IAM. Otherwise every delivery fails, and nothing says so until the report is
    missed.
    """
    found: list[Finding] = []
    for d in deliveries(stack):
        spec = DELIVERY_WRITERS.get(d.writer)
        if spec is None:
            found.append((d.source, f"unknown delivery writer {d.writer!r}"))
            continue
        values = {
            "account": stack.account,
            "region": d.region,
            "source_arn": d.source_arn,
            "role_arn": d.role or "",
            "prefix": d.prefix.strip("/"),
            "source_bucket": d.source_arn.removeprefix("arn:aws:s3:::"),
        }
        bucket_arn = stack.bucket_arn(d.bucket)
        bucket_doc = stack.bucket_policy(d.bucket)
        role = stack.role(d.role) if d.role else None
        identity = stack.role_policies(role) if role is not None else []
        service_ok = _writer_allowed(stack, spec, values, bucket_arn, bucket_doc, [], d)
        role_ok = role is not None and _writer_allowed(
            stack, spec, values, bucket_arn, bucket_doc, identity, d, principal={"AWS": d.role}
        )
        if spec.iam_governed:
            service_ok = role_ok
        if service_ok is not True and role_ok is not True:
            found.append((d.source, service_ok or "the writer's role may not deliver"))
    return found


def _writer_allowed(stack, spec, values, bucket_arn, bucket_doc, identity, d, principal=None):
    """True, or why the writer cannot deliver (bucket or key)."""
    principal = principal or {k: v.format(**values) for k, v in spec.principal.items()}
    obj = f"{bucket_arn}/{spec.object_path.format(**values)}"
    for grant in spec.bucket:
        context = {k: v.format(**values) for k, v in grant.context}
        resource = obj if grant.on_objects else bucket_arn
        if not resource_allows(
            bucket_doc, principal, grant.action, resource, stack.account, context, identity
        ):
            return (
                f"bucket {d.bucket} does not let {d.writer} ({principal}) {grant.action} "
                f"{resource} with {sorted(context) or 'no condition keys'}"
            )
    key = d.key
    if key is None:
        encryption = stack.bucket_encryption(d.bucket)
        key = encryption[0] if encryption else None
    key_doc = stack.key_policy(key) if key else None
    if key_doc is None:
        return True  # SSE-S3, or a key another stack owns
    context = {k: v.format(**values) for k, v in spec.key_context}
    for action in spec.key_actions:
        if not kms_allows(key_doc, principal, action, key, stack.account, context, identity):
            return f"key {key} of bucket {d.bucket} does not let {d.writer} ({principal}) {action}"
    return True


RULES = [
    (
        "delivery-targets-writable",
        "Services that deliver into a bucket may write it and use its key",
        delivery_targets_writable,
    ),
]
