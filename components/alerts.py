"""AlertTopics: a KMS-encrypted SNS topic per region for DR alarms and failed-job events.

CloudWatch alarms and EventBridge rules can only publish to a topic in their own region, so each
region that raises alerts gets one. The key and the topic policy allow exactly the services that
publish, each with only the condition keys that service sends (``policy.aws_semantics.services``
.SNS_PUBLISHERS): a condition a publisher does not send would deny it, and its alerts would
silently never arrive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.keys import KeyGrant, MultiRegionKey, MultiRegionKeyArgs
from components.objectives import ConfigError, class_tags
from policy.aws_semantics.services import SNS_KEY_ACTIONS, SNS_PUBLISHERS, sns_topic_conditions

# CloudWatch alarms and the EventBridge rules for failed AWS Backup jobs publish here.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


@dataclass
class AlertTopicsArgs:
    """Arguments of AlertTopics.

    regions: regions that need a topic; the first one holds the primary key.
    email_endpoints: addresses subscribed to every topic; default none (subscribe a pager instead).
    publishers: AWS services that publish (keys of SNS_PUBLISHERS); default CloudWatch and
        EventBridge. Add "backup.amazonaws.com" for AWS Backup vault notifications.
    """

    regions: Sequence[str]
    email_endpoints: Sequence[str] = field(default_factory=tuple)
    publishers: Sequence[str] = PUBLISHERS


class AlertTopics(pulumi.ComponentResource):
    """Outputs: ``topic_arns`` (region -> topic ARN)."""

    TYPE = "platform-dr:alerts:AlertTopics"

    def __init__(
        self, name: str, args: AlertTopicsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        unknown = sorted(set(args.publishers) - set(SNS_PUBLISHERS))
        if unknown:
            raise ConfigError("publishers", unknown, f"services in {sorted(SNS_PUBLISHERS)}")
        super().__init__(self.TYPE, name, None, opts)
        regions = list(dict.fromkeys(args.regions))
        child = pulumi.ResourceOptions(parent=self)
        publishers = sorted(args.publishers)
        self.key = MultiRegionKey(
            f"{name}-key",
            MultiRegionKeyArgs(
                regions=regions,
                description="platform-dr alert topics",
                data_class="operational",
                dataset="alerts",
                # SNS Developer Guide: the publishing service needs GenerateDataKey* and Decrypt;
                # none of these publishers sends a source condition key with that call.
                grants=[KeyGrant("PublishersUseKey", {"Service": publishers}, SNS_KEY_ACTIONS)],
            ),
            opts=child,
        )
        account = aws.get_caller_identity_output().account_id
        self.topic_arns: dict[str, pulumi.Output[str]] = {}
        for region in regions:
            topic = aws.sns.Topic(
                f"{name}-{region}",
                region=region,
                kms_master_key_id=self.key.arns[region],
                tags=class_tags("operational", "alerts"),
                opts=child,
            )
            aws.sns.TopicPolicy(
                f"{name}-{region}-policy",
                region=region,
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, account).apply(
                    lambda v, r=region: topic_policy(v[0], r, v[1], publishers)
                ),
                opts=child,
            )
            for i, email in enumerate(args.email_endpoints):
                aws.sns.TopicSubscription(
                    f"{name}-{region}-email-{i}",
                    region=region,
                    topic=topic.arn,
                    protocol="email",
                    endpoint=email,
                    opts=child,
                )
            self.topic_arns[region] = topic.arn
        self.register_outputs({"topic_arns": self.topic_arns, "publishers": publishers})


def topic_policy(topic_arn: str, region: str, account_id: str, publishers: Sequence[str]) -> str:
    """sns:Publish for each publisher, scoped by the narrowest condition it supports."""
    allows = []
    for service in publishers:
        statement = {
            "Sid": "Publish" + service.split(".")[0].title(),
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sns:Publish",
            "Resource": topic_arn,
        }
        conditions = sns_topic_conditions(service, region, account_id)
        if conditions:
            statement["Condition"] = conditions
        allows.append(statement)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                *allows,
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )
