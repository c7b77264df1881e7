"""NotificationTopics: the team topic and the stakeholder topic, in the regions that survive a
primary-region loss, with subscriptions from secret config (components/contacts.py).

- **team**: chat webhooks and the team's list get every message ``drctl recover`` (and
  ``failover``) sends. The on-call contacts are subscribed too, each with a filter policy on the
  ``escalation-level`` message attribute: contact *i* receives pages of level *i* and above, and
  nothing else. Paging the next contact is publishing one message with a higher level; drctl
  never holds a contact's address.
- **stakeholders**: investor/partner updates and the media holding statement, kept apart from
  the team's traffic. A subscriber may narrow what it gets with ``audiences`` (a filter policy on
  the ``audience`` attribute).

SNS is regional and the primary region is the one a disaster takes away, so each topic exists in
the DR and the third region; publishers try the DR topic first (scripts/dataops/notify.py).
Topics are encrypted with a multi-Region key; SNS decrypts before it delivers, so email and
HTTPS subscribers need nothing from KMS. An HTTPS endpoint must confirm its subscription (SNS
posts a SubscriptionConfirmation first): paging services and chat relays do; a bare chat
incoming-webhook URL cannot, so put a relay in front of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.contacts import AUDIENCE_ATTRIBUTE, ESCALATION_ATTRIBUTE, Contacts, Endpoint
from components.iam import deny_insecure_transport
from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import ConfigError, Objectives, class_tags

DATASET = "communication"
DATA_CLASS = "operational"
TOPICS = ("team", "stakeholders")


@dataclass
class NotificationTopicsArgs:
    """Arguments of NotificationTopics.

    objectives: the stack's Objectives.
    contacts: on-call contacts, team and stakeholder endpoints (secret); default none.
    regions: where the topics live; default the DR and the third region (they survive the
        primary's loss). The first is where publishers go first.
    """

    objectives: Objectives
    contacts: Contacts = field(default_factory=Contacts)
    regions: Sequence[str] | None = None


def topic_policy(topic_arn: str, account_id: str) -> str:
    """The account publishes (drctl's IAM identity needs sns:Publish); nothing over plain HTTP."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountPublishes",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes"],
                    "Resource": topic_arn,
                },
                deny_insecure_transport("sns:Publish", topic_arn),
            ],
        }
    )


def escalation_filter(level: int) -> str:
    """Contact ``level`` gets pages of its level and above: the first contact stays informed."""
    return json.dumps({ESCALATION_ATTRIBUTE: [{"numeric": [">=", level]}]})


def audience_filter(audiences: Sequence[str]) -> str:
    return json.dumps({AUDIENCE_ATTRIBUTE: sorted(audiences)})


class NotificationTopics(pulumi.ComponentResource):
    """Outputs: ``team_topic_arns`` and ``stakeholder_topic_arns`` (region -> ARN, in the order
    publishers try them), ``escalation_levels`` (how many on-call contacts; never who)."""

    TYPE = "platform-dr:notification_topics:NotificationTopics"

    def __init__(
        self, name: str, args: NotificationTopicsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(self.TYPE, name, None, opts)
        objectives = args.objectives
        regions = list(args.regions or objectives.regions.replicas)
        if objectives.regions.primary in regions or len(set(regions)) != len(regions):
            raise ConfigError(
                "notificationRegions",
                regions,
                f"distinct regions other than primaryRegion ({objectives.regions.primary})",
            )
        child = pulumi.ResourceOptions(parent=self)
        self.key = MultiRegionKey(
            f"{name}-key",
            MultiRegionKeyArgs(
                regions=regions,
                description="platform-dr team and stakeholder topics",
                data_class=DATA_CLASS,
                dataset=DATASET,
            ),
            opts=child,
        )
        account = aws.get_caller_identity_output().account_id
        self.team_topic_arns: dict[str, pulumi.Output[str]] = {}
        self.stakeholder_topic_arns: dict[str, pulumi.Output[str]] = {}
        contacts = args.contacts
        for region in regions:
            team = self._topic(name, "team", region, account, child)
            stakeholders = self._topic(name, "stakeholders", region, account, child)
            self.team_topic_arns[region] = team.arn
            self.stakeholder_topic_arns[region] = stakeholders.arn
            for i, endpoint in enumerate(contacts.team):
                self._subscribe(f"{name}-team-{region}-{i}", region, team, endpoint, None, child)
            for contact in contacts.oncall:
                for j, endpoint in enumerate(contact.endpoints):
                    self._subscribe(
                        f"{name}-oncall-{region}-{contact.level}-{j}",
                        region,
                        team,
                        endpoint,
                        escalation_filter(contact.level),
                        child,
                    )
            for i, endpoint in enumerate(contacts.stakeholders):
                self._subscribe(
                    f"{name}-stakeholders-{region}-{i}",
                    region,
                    stakeholders,
                    endpoint,
                    audience_filter(endpoint.audiences) if endpoint.audiences else None,
                    child,
                )
        self.escalation_levels = contacts.escalation_levels
        self.register_outputs(
            {
                "team_topic_arns": self.team_topic_arns,
                "stakeholder_topic_arns": self.stakeholder_topic_arns,
                "escalation_levels": self.escalation_levels,
            }
        )

    def _topic(self, name, role, region, account, child) -> aws.sns.Topic:
        topic = aws.sns.Topic(
            f"{name}-{role}-{region}",
            region=region,
            kms_master_key_id=self.key.arns[region],
            tags=class_tags(DATA_CLASS, DATASET),
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-{role}-{region}-policy",
            region=region,
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account).apply(lambda v: topic_policy(*v)),
            opts=child,
        )
        return topic

    @staticmethod
    def _subscribe(
        resource_name: str,
        region: str,
        topic: aws.sns.Topic,
        endpoint: Endpoint,
        filter_policy: str | None,
        child: pulumi.ResourceOptions,
    ) -> None:
        aws.sns.TopicSubscription(
            resource_name,
            region=region,
            topic=topic.arn,
            protocol=endpoint.protocol,
            # A contact's address or a webhook's token is secret config; it stays a secret.
            endpoint=pulumi.Output.secret(endpoint.address),
            filter_policy=filter_policy,
            opts=child,
        )

    @property
    def publish_outputs(self) -> dict[str, pulumi.Input]:
        """What the notifier (scripts/dataops/notify.py) needs, as a stack output."""
        return {
            "teamTopicArns": self.team_topic_arns,
            "stakeholderTopicArns": self.stakeholder_topic_arns,
            "escalationLevels": self.escalation_levels,
        }
