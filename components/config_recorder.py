"""ConfigRecorder: AWS Config recording the AWS Backup resource types, so audit frameworks work.

AWS Backup Audit Manager evaluates its controls from AWS Config: every control needs the
"resource compliance" type recorded, and the controls read backup plans, selections, vaults and
recovery points (AWS Backup Developer Guide, "Choosing your controls"). Without a recorder the
frameworks deploy and never evaluate.

AWS Config allows one recorder per account and region. When an organisation records centrally
(``awsConfigRecording: organization``), this component is not declared and ``drctl verify``
checks the central recorder instead (scripts/checks/prerequisites.py).

What it declares in one region:

- an IAM role AWS Config assumes (only on behalf of this account), with AWS's managed
  ``AWS_ConfigRole`` policy to read resource configurations and an inline policy to deliver into
  exactly the given bucket prefix under its key;
- the recorder, recording only the AWS Backup types (not every resource: that is a cost choice
  for whoever owns Config in the account), a delivery channel into the given bucket (whose bucket
  and key policies must also admit the Config service principal: ``DeliveryTarget("aws-config")``
  on the ReplicatedBucket), and the recorder status that starts it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.iam import service_trust_policy
from components.objectives import PROJECT, Objectives, class_tags
from policy.aws_semantics.services import BACKUP_AUDIT_CONFIG_TYPES

CONFIG_ROLE_POLICY = "arn:aws:iam::aws:policy/service-role/AWS_ConfigRole"
CONFIG_PREFIX = "aws-config"


@dataclass
class ConfigRecorderArgs:
    """Arguments of ConfigRecorder.

    objectives: the stack's Objectives (stack name for the recorder's name, tags).
    region: where the audit frameworks are (AWS Config records per region).
    bucket_name / bucket_arn / key_arn: the delivery bucket's primary copy and its key.
    prefix: key prefix of the deliveries; default "aws-config".
    resource_types: what to record; default the AWS Backup types the audit controls read.
    """

    objectives: Objectives
    region: str
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    prefix: str = CONFIG_PREFIX
    resource_types: Sequence[str] = field(default_factory=lambda: BACKUP_AUDIT_CONFIG_TYPES)


def delivery_policy(bucket_arn: str, key_arn: str, prefix: str, account: str) -> str:
    """What the recorder role needs to deliver: the bucket ACL check and objects under the
    prefix (AWS Config Developer Guide, "Permissions for the IAM Role Assigned to AWS Config")."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CheckBucket",
                    "Effect": "Allow",
                    "Action": ["s3:GetBucketAcl", "s3:ListBucket"],
                    "Resource": bucket_arn,
                },
                {
                    "Sid": "Deliver",
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/{prefix}/AWSLogs/{account}/Config/*",
                    "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}},
                },
                {
                    "Sid": "EncryptDeliveries",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": key_arn,
                },
            ],
        }
    )


class ConfigRecorder(pulumi.ComponentResource):
    """Outputs: ``recorder_name``, ``region``, ``resource_types``."""

    TYPE = f"{PROJECT}:config_recorder:ConfigRecorder"

    def __init__(
        self, name: str, args: ConfigRecorderArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = class_tags("operational", "aws-config")
        account = aws.get_caller_identity_output().account_id
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=account.apply(
                lambda a: service_trust_policy("config.amazonaws.com", a)
            ),
            description="AWS Config recorder of the AWS Backup resource types",
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-role-config", role=role.name, policy_arn=CONFIG_ROLE_POLICY, opts=child
        )
        delivery = aws.iam.RolePolicy(
            f"{name}-role-delivery",
            role=role.id,
            policy=pulumi.Output.all(args.bucket_arn, args.key_arn, account).apply(
                lambda v: delivery_policy(v[0], v[1], args.prefix, v[2])
            ),
            opts=child,
        )
        recorder_name = f"{PROJECT}-{args.objectives.stack}"
        recorder = aws.cfg.Recorder(
            f"{name}-recorder",
            region=args.region,
            name=recorder_name,
            role_arn=role.arn,
            recording_group=aws.cfg.RecorderRecordingGroupArgs(
                all_supported=False,
                include_global_resource_types=False,
                resource_types=list(args.resource_types),
                recording_strategies=[
                    aws.cfg.RecorderRecordingGroupRecordingStrategyArgs(
                        use_only="INCLUSION_BY_RESOURCE_TYPES"
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[delivery]),
        )
        channel = aws.cfg.DeliveryChannel(
            f"{name}-delivery",
            region=args.region,
            name=recorder_name,
            s3_bucket_name=args.bucket_name,
            s3_key_prefix=args.prefix,
            s3_kms_key_arn=args.key_arn,
            # A recorder cannot start without a delivery channel.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[recorder]),
        )
        aws.cfg.RecorderStatus(
            f"{name}-status",
            region=args.region,
            name=recorder.name,
            is_enabled=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[channel]),
        )
        self.recorder_name = recorder.name
        self.register_outputs(
            {
                "recorder_name": recorder.name,
                "region": args.region,
                "resource_types": list(args.resource_types),
            }
        )
