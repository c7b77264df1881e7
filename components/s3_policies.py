"""S3 policy documents: the bucket policy every copy gets and the replication role's policy.

Pure functions of ARNs and flags, so tests and the AWS-semantics rules can build and read the same
documents without declaring anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from components.iam import source_arns


def tls_only_policy(bucket_arn: str) -> str:
    return bucket_policy(bucket_arn)


def bucket_policy(bucket_arn: str, extra_statements: Sequence[dict] = ()) -> str:
    """TLS only, plus the statements that let service writers deliver (DeliveryTarget)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                *extra_statements,
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
                {
                    "Sid": "DenyOutdatedTls",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
                },
            ],
        }
    )


def cloudfront_read_statements(bucket_arn: str, distribution_arns: Sequence[str]) -> list[dict]:
    """s3:GetObject for the CloudFront service principal on behalf of exactly these distributions
    (origin access control:
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html).
    Block Public Access stays on: a grant to a service principal scoped by AWS:SourceArn is not
    public. None without a distribution."""
    if not distribution_arns:
        return []
    return [
        {
            "Sid": "AllowCloudFrontServicePrincipalReadOnly",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {"StringEquals": {"AWS:SourceArn": source_arns(distribution_arns)}},
        }
    ]


def encryption_contexts(bucket_arn: str, bucket_keys: bool | None) -> list[str]:
    """The ``aws:s3:arn`` encryption context S3 sends to KMS for objects of a bucket.

    Amazon S3 User Guide, "Replicating encrypted objects", section "Amazon S3 Bucket Keys and
    replication": with an S3 Bucket Key the context is the *bucket* ARN, without one it is the
    object ARN. ``bucket_keys=None`` (not known: an adopted bucket) allows both.
    """
    if bucket_keys is None:
        return [bucket_arn, f"{bucket_arn}/*"]
    return [bucket_arn] if bucket_keys else [f"{bucket_arn}/*"]


def replication_policy(
    source_arn: str,
    source_region: str,
    source_keys: Sequence[str],
    destinations: Sequence[Sequence[str]],
    object_lock: bool = False,
    bucket_keys: bool | None = True,
) -> str:
    """Exactly what S3 replication needs, on exactly these buckets and keys; no wildcard actions.

    KMS (Amazon S3 User Guide, "Replicating encrypted objects"): kms:Decrypt on the source keys,
    kms:Encrypt and kms:GenerateDataKey on each destination key, and kms:Decrypt on it too
    because S3 checks a Bucket Key's integrity with Decrypt; each scoped to S3 in that region
    and to the encryption context S3 really sends (``encryption_contexts``). A replica keeps
    the source object's Bucket Key setting, so the destination context follows the source's.
    """
    read_versions = [
        "s3:GetObjectVersionForReplication",
        "s3:GetObjectVersionAcl",
        "s3:GetObjectVersionTagging",
    ]
    if object_lock:
        read_versions += ["s3:GetObjectRetention", "s3:GetObjectLegalHold"]
    statements = [
        {
            "Sid": "ReadReplicationConfig",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": source_arn,
        },
        {
            "Sid": "ReadSourceVersions",
            "Effect": "Allow",
            "Action": read_versions,
            "Resource": f"{source_arn}/*",
        },
        {
            "Sid": "WriteReplicas",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            "Resource": [f"{arn}/*" for _, arn, _ in destinations],
        },
        {
            "Sid": "DecryptSource",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": list(source_keys),
            "Condition": {
                "StringEquals": {"kms:ViaService": f"s3.{source_region}.amazonaws.com"},
                "StringLike": {
                    "kms:EncryptionContext:aws:s3:arn": encryption_contexts(source_arn, bucket_keys)
                },
            },
        },
    ]
    for region, arn, key in destinations:
        statements.append(
            {
                "Sid": f"EncryptReplica{region.replace('-', '')}",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": key,
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                    "StringLike": {
                        "kms:EncryptionContext:aws:s3:arn": encryption_contexts(arn, bucket_keys)
                    },
                },
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
