"""What every bucket of the project gets on its own: S3 applies none of it across buckets.

``secure_bucket`` declares, as children ``<name>-ownership``, ``-public-access``, ``-versioning``,
``-encryption`` and ``-policy`` of the calling component: ACLs disabled (BucketOwnerEnforced), all
four public-access-block flags, versioning, SSE-KMS under a customer key with S3 Bucket Keys, and a
bucket policy (the caller's document, from ``components.s3_policies.bucket_policy``: TLS only,
plus what the bucket's delivery writers need). ReplicatedBucket uses
it for every copy, ObjectInventory for every inventory bucket; lifecycle and object lock stay with
the caller, because they differ.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def secure_bucket(
    name: str,
    region: str,
    bucket: aws.s3.Bucket,
    key_arn: pulumi.Input[str],
    policy: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.s3.BucketVersioning:
    """Declare the hardening of ``bucket``; returns its versioning (lifecycle depends on it)."""
    child = pulumi.ResourceOptions(parent=parent)
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        region=region,
        bucket=bucket.bucket,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=child,
    )
    public_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        region=region,
        bucket=bucket.bucket,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    versioning = aws.s3.BucketVersioning(
        f"{name}-versioning",
        region=region,
        bucket=bucket.bucket,
        versioning_configuration={"status": "Enabled"},
        opts=child,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        region=region,
        bucket=bucket.bucket,
        rules=[
            {
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": key_arn,
                },
                # Bucket keys cut KMS calls (and cost) per object by ~99%.
                "bucket_key_enabled": True,
            }
        ],
        opts=child,
    )
    aws.s3.BucketPolicy(
        f"{name}-policy",
        region=region,
        bucket=bucket.bucket,
        policy=policy,
        # S3 rejects a policy while the public access block is being changed.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[public_block]),
    )
    return versioning
