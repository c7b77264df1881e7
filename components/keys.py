"""MultiRegionKey: one KMS multi-Region customer key with a replica in every other region.

Multi-Region keys share key material, so data encrypted in the primary region can be decrypted
by the replica after a regional loss without re-encryption. Rotation is always on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.objectives import class_tags


@dataclass
class MultiRegionKeyArgs:
    """Arguments of MultiRegionKey.

    regions: the primary region first, then every region that needs a replica key.
    description: shown in the KMS console.
    data_class / dataset: tags, so AWS Backup selections and posture can group the key.
    service_principals: AWS services (e.g. "sns.amazonaws.com") allowed to use the key through
        the account; default none. The account root always administers the key, so IAM policies
        (not this key policy) grant each role exactly what it needs.
    deletion_window_days: days a scheduled deletion can still be cancelled; default 30 (the max).
    cloudfront_readers: ARNs of CloudFront distributions that read objects encrypted under the
        key through origin access control (kms:Decrypt, scoped by AWS:SourceArn); default none.
    """

    regions: Sequence[str]
    description: str
    data_class: str
    dataset: str
    service_principals: Sequence[str] = field(default_factory=tuple)
    deletion_window_days: int = 30
    cloudfront_readers: Sequence[pulumi.Input[str]] = field(default_factory=tuple)


def cloudfront_read_statement(distribution_arns: Sequence[str]) -> dict:
    """What a CloudFront distribution needs to serve SSE-KMS objects through origin access control:
    kms:Decrypt for the CloudFront service principal, only on behalf of these distributions
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html).
    The policy rule kms-cloudfront-grant-scoped (policy/status_page_rules.py) checks this shape."""
    return {
        "Sid": "AllowCloudFrontServicePrincipalSSE-KMS",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"AWS:SourceArn": source_arns(distribution_arns)}},
    }


def source_arns(arns: Sequence[str]) -> str | list[str]:
    """An AWS:SourceArn condition value: one ARN as a string (as documented), more as a list."""
    ordered = sorted(arns)
    return ordered[0] if len(ordered) == 1 else ordered


def key_policy(
    account_id: str,
    service_principals: Sequence[str],
    cloudfront_readers: Sequence[str] = (),
) -> str:
    statements = [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if service_principals:
        statements.append(
            {
                "Sid": "ServicesEncrypt",
                "Effect": "Allow",
                "Principal": {"Service": sorted(service_principals)},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    if cloudfront_readers:
        statements.append(cloudfront_read_statement(cloudfront_readers))
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class MultiRegionKey(pulumi.ComponentResource):
    """A multi-Region CMK in ``regions[0]`` with replica keys in the others.

    Outputs: ``arns`` (region -> key ARN), ``primary_arn``.
    """

    TYPE = "platform-dr:keys:MultiRegionKey"

    def __init__(
        self, name: str, args: MultiRegionKeyArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(self.TYPE, name, None, opts)
        primary, *others = args.regions
        tags = class_tags(args.data_class, args.dataset)
        account = aws.get_caller_identity_output().account_id
        policy = pulumi.Output.all(account, *args.cloudfront_readers).apply(
            lambda v: key_policy(v[0], args.service_principals, v[1:])
        )
        child = pulumi.ResourceOptions(parent=self)
        self.primary = aws.kms.Key(
            f"{name}-{primary}",
            region=primary,
            description=args.description,
            multi_region=True,
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_days,
            policy=policy,
            tags=tags,
            opts=child,
        )
        self.arns: dict[str, pulumi.Output[str]] = {primary: self.primary.arn}
        for region in others:
            replica = aws.kms.ReplicaKey(
                f"{name}-{region}",
                region=region,
                primary_key_arn=self.primary.arn,
                description=f"{args.description} (replica)",
                deletion_window_in_days=args.deletion_window_days,
                policy=policy,
                tags=tags,
                opts=child,
            )
            self.arns[region] = replica.arn
        self.primary_arn = self.primary.arn
        self.register_outputs({"arns": self.arns})
