"""AlertTopics: a KMS-encrypted SNS topic per region for DR alarms and failed-job events.

CloudWatch alarms and EventBridge rules can only publish to a topic in their own region, so each
region that raises alerts gets one. The key allows exactly the services that publish.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.iam import deny_insecure_transport
from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import class_tags

PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com", "backup.amazonaws.com")


@dataclass
class AlertTopicsArgs:
    """Arguments of AlertTopics.

    regions: regions that need a topic; the first one holds the primary key.
    email_endpoints: addresses subscribed to every topic; default none (subscribe a pager instead).
    """

    regions: Sequence[str]
    email_endpoints: Sequence[str] = field(default_factory=tuple)


class AlertTopics(pulumi.ComponentResource):
    """Outputs: ``topic_arns`` (region -> topic ARN)."""

    TYPE = "platform-dr:alerts:AlertTopics"

    def __init__(
        self, name: str, args: AlertTopicsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(self.TYPE, name, None, opts)
        regions = list(dict.fromkeys(args.regions))
        child = pulumi.ResourceOptions(parent=self)
        self.key = MultiRegionKey(
            f"{name}-key",
            MultiRegionKeyArgs(
                regions=regions,
                description="platform-dr alert topics",
                data_class="operational",
                dataset="alerts",
                service_principals=PUBLISHERS,
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
                    lambda v: _topic_policy(v[0], v[1])
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
        self.register_outputs({"topic_arns": self.topic_arns})


def _topic_policy(topic_arn: str, account_id: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ServicesPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": list(PUBLISHERS)},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
                deny_insecure_transport("sns:Publish", topic_arn),
            ],
        }
    )
