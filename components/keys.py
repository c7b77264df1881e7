"""MultiRegionKey: one KMS multi-Region customer key with a replica in every other region.

Multi-Region keys share key material, so data encrypted in the primary region can be decrypted
by the replica after a regional loss without re-encryption. Rotation is always on.

The key policy has two parts (AWS KMS Developer Guide, "Default key policy" and "Key policies in
AWS KMS"):

- the account statement, which lets IAM policies in this account grant use of the key. Every role
  this project creates (replication, backup, database hosts) is granted exactly what it needs by
  its own IAM policy, which only works because of this statement;
- one statement per ``KeyGrant``: a principal that is *not* governed by this account's IAM
  policies (an AWS service principal, or a service-linked role whose policy AWS owns) and so must
  be named in the key policy, with only the condition keys that service sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.iam import source_arns
from components.objectives import class_tags


@dataclass(frozen=True)
class KeyGrant:
    """One key-policy statement for a principal that IAM policies in the account cannot cover.

    sid: statement id, e.g. "AlarmsPublish".
    principal: {"Service": "events.amazonaws.com"} or {"AWS": "<role ARN>"}; ``{account}`` in a
        value is replaced by the account id.
    actions: KMS actions, e.g. ("kms:GenerateDataKey*", "kms:Decrypt").
    conditions: IAM condition block, ``{account}`` substituted; default none. Only put keys here
        that the calling service documents it sends (policy/aws_semantics checks them).
    """

    sid: str
    principal: Mapping[str, str]
    actions: Sequence[str]
    conditions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass
class MultiRegionKeyArgs:
    """Arguments of MultiRegionKey.

    regions: the primary region first, then every region that needs a replica key.
    description: shown in the KMS console.
    data_class / dataset: tags, so AWS Backup selections and posture can group the key.
    grants: ``KeyGrant`` statements for principals outside the account's IAM (service principals,
        service-linked roles); default none. The account always administers the key, so IAM
        policies (not this key policy) grant each of our roles exactly what it needs.
    deletion_window_days: days a scheduled deletion can still be cancelled; default 30 (the max).
    cloudfront_readers: ARNs of CloudFront distributions that read objects encrypted under the
        key through origin access control (kms:Decrypt, scoped by AWS:SourceArn); default none.
    """

    regions: Sequence[str]
    description: str
    data_class: str
    dataset: str
    grants: Sequence[KeyGrant] = field(default_factory=tuple)
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


def _substitute(value, account_id: str):
    if isinstance(value, str):
        return value.replace("{account}", account_id)
    if isinstance(value, Mapping):
        return {k: _substitute(v, account_id) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_substitute(v, account_id) for v in value]
    return value


def key_policy(
    account_id: str,
    grants: Sequence[KeyGrant] = (),
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
    for grant in grants:
        statement = {
            "Sid": grant.sid,
            "Effect": "Allow",
            "Principal": _substitute(dict(grant.principal), account_id),
            "Action": list(grant.actions),
            "Resource": "*",
        }
        if grant.conditions:
            statement["Condition"] = _substitute(dict(grant.conditions), account_id)
        statements.append(statement)
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
            lambda v: key_policy(v[0], args.grants, v[1:])
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
        # The rules map a key ARN back to the resource (and its policy) through these outputs.
        self.register_outputs({"arns": self.arns})
