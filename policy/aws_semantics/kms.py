"""KMS keys against every service that must use them: publishers, regions, IAM delegation."""

from __future__ import annotations

from .graph import (
    ALARM_TYPE,
    EVENT_TARGET_TYPE,
    KEY_TYPES,
    TOPIC_POLICY_TYPE,
    TOPIC_TYPE,
    Stack,
    arn_region,
    get,
)
from .iam_eval import as_list, enables_iam, kms_allows, policy_doc, resource_allows
from .services import SNS_KEY_ACTIONS, SNS_PUBLISHERS

Finding = tuple[str, str]
VAULT_NOTIFICATIONS_TYPE = "aws:backup/vaultNotifications:VaultNotifications"


def _topic_arn(stack: Stack, topic) -> str | None:
    if isinstance(get(topic.props, "arn"), str):
        return topic.props["arn"]
    return next((arn for arn, r in stack.by_arn.items() if r is topic), None)


def _publishers(stack: Stack, topic_arn: str) -> list[tuple[str, str, str, dict]]:
    """(service, publishing resource, its region, what else it declares) for a topic."""
    found = []
    for alarm in stack.of(ALARM_TYPE):
        props = alarm.props
        actions = [
            *as_list(props.get("alarmActions")),
            *as_list(props.get("okActions")),
            *as_list(props.get("insufficientDataActions")),
        ]
        if topic_arn in actions:
            found.append(
                ("cloudwatch.amazonaws.com", alarm.name, get(props, "region") or "", props)
            )
    for target in stack.of(EVENT_TARGET_TYPE):
        if get(target.props, "arn") == topic_arn:
            found.append(
                (
                    "events.amazonaws.com",
                    target.name,
                    get(target.props, "region") or "",
                    target.props,
                )
            )
    for notify in stack.of(VAULT_NOTIFICATIONS_TYPE):
        if get(notify.props, "snsTopicArn") == topic_arn:
            found.append(
                (
                    "backup.amazonaws.com",
                    notify.name,
                    get(notify.props, "region") or "",
                    notify.props,
                )
            )
    return found


def sns_publishers_can_deliver(stack: Stack) -> list[Finding]:
    """Every service that publishes to an encrypted topic can: topic policy, key policy, region.

    Documents: Amazon SNS Developer Guide, "Key management" / "Enable compatibility between event
    sources from AWS services and encrypted topics"
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html); Amazon EventBridge User
    Guide, "Using resource-based policies for Amazon EventBridge" / "Amazon SNS permissions"
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html);
    AWS Backup Developer Guide, "Notification options in AWS Backup".

    Constraint: the key policy must let each publishing service principal call
    kms:GenerateDataKey* and kms:Decrypt *with the request context it sends* (none of these
    publishers sends aws:SourceAccount or aws:SourceArn to KMS, so a statement conditioned on
    them denies it); the topic policy must allow it sns:Publish with the context it sends to SNS
    (EventBridge: no condition at all; CloudWatch: the alarm ARN and account); a CloudWatch
    alarm and an EventBridge rule can only publish to a topic in their own region, and an
    EventBridge target for a topic must not set a RoleArn (EventBridge uses the topic policy;
    with a role, delivery to KMS-encrypted topics can fail).
    """
    found: list[Finding] = []
    for topic in stack.of(TOPIC_TYPE):
        arn = _topic_arn(stack, topic)
        key = get(topic.props, "kmsMasterKeyId")
        region = get(topic.props, "region") or arn_region(arn or "")
        if not arn:
            continue
        topic_doc = {}
        for policy in stack.of(TOPIC_POLICY_TYPE):
            if get(policy.props, "arn") == arn:
                topic_doc = policy_doc(get(policy.props, "policy"))
        key_doc = stack.key_policy(key) if key else None
        for service, source, source_region, props in _publishers(stack, arn):
            publisher = SNS_PUBLISHERS.get(service)
            if source_region and region and source_region != region:
                found.append(
                    (
                        source,
                        f"publishes to topic {arn} in {region} from {source_region}: "
                        "only a topic in the publisher's own region is allowed",
                    )
                )
            if service == "events.amazonaws.com" and get(props, "roleArn"):
                found.append(
                    (
                        source,
                        "an EventBridge target for an SNS topic must not set a "
                        "RoleArn (the topic policy grants; with KMS the role path fails)",
                    )
                )
            if publisher is None:
                continue
            source_arn = {
                "cloudwatch.amazonaws.com": f"arn:aws:cloudwatch:{region}:{stack.account}:alarm:"
                f"{get(props, 'name') or source}",
            }.get(service)
            context = publisher.topic_context(region, stack.account, source_arn)
            principal = {"Service": service}
            if not resource_allows(
                topic_doc, principal, "sns:Publish", arn, stack.account, context
            ):
                found.append(
                    (
                        topic.name,
                        f"the topic policy does not let {service} publish with "
                        f"the context it sends ({sorted(context) or 'no condition keys'})",
                    )
                )
            if key_doc is None:
                continue
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                if not kms_allows(
                    key_doc, principal, action, key, stack.account, publisher.key_context()
                ):
                    found.append(
                        (
                            stack.key(key).name,
                            f"the key of topic {topic.name} does not "
                            f"let {service} call {action} with the context it sends (no "
                            "condition keys): its messages are never delivered",
                        )
                    )
    return found


def _key_uses(stack: Stack):
    """(resource, where, key ARN, region the key must be in) for every declared use of a key."""
    for r in stack.resources:
        props, region = r.props, get(r.props, "region") or ""
        if r.type == "aws:secretsmanager/secret:Secret":
            yield r, "kmsKeyId", get(props, "kmsKeyId"), region
            for replica in as_list(get(props, "replicas")):
                yield (
                    r,
                    f"replica {replica.get('region')}",
                    replica.get("kmsKeyId"),
                    replica.get("region"),
                )
        elif r.type == "aws:ssm/parameter:Parameter" and get(props, "type") == "SecureString":
            yield r, "keyId", get(props, "keyId"), region
        elif r.type == "aws:rds/instance:Instance":
            for field in ("kmsKeyId", "performanceInsightsKmsKeyId", "masterUserSecretKmsKeyId"):
                yield r, field, get(props, field), region
        elif r.type.endswith(":InstanceAutomatedBackupsReplication"):
            yield r, "kmsKeyId", get(props, "kmsKeyId"), region
        elif r.type == TOPIC_TYPE:
            yield r, "kmsMasterKeyId", get(props, "kmsMasterKeyId"), region
        elif r.type == "aws:backup/vault:Vault":
            yield r, "kmsKeyArn", get(props, "kmsKeyArn"), region
        elif r.type.endswith(":BucketServerSideEncryptionConfiguration"):
            for rule in as_list(get(props, "rules")):
                key = get(rule, "applyServerSideEncryptionByDefault", "kmsMasterKeyId")
                yield r, "kmsMasterKeyId", key, region
        elif r.type.endswith(":BucketReplicationConfig"):
            for rule in as_list(get(props, "rules")):
                dest = get(rule, "destination", "bucket") or ""
                bucket = stack.buckets.get(dest.removeprefix("arn:aws:s3:::"))
                want = get(bucket.props, "region") if bucket is not None else None
                key = get(rule, "destination", "encryptionConfiguration", "replicaKmsKeyId")
                yield r, f"rule {rule.get('id')} replica key", key, want


def keys_in_their_region(stack: Stack) -> list[Finding]:
    """Every use of a KMS key names a key in the region where the data is.

    Documents: AWS KMS Developer Guide, "Multi-Region keys in AWS KMS"
    (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html: a key,
    and each replica of a multi-Region key, is a regional resource with its own ARN), and the
    services that take a
    key for data in another region: AWS Secrets Manager User Guide, "Replicate an AWS Secrets
    Manager secret to other AWS Regions"; Amazon RDS User Guide, "Creating a read replica in a
    different AWS Region" and "Replicating automated backups to another AWS Region"; Amazon S3
    User Guide, "Replicating encrypted objects" ("The AWS KMS key must have been created in the
    same AWS Region as the destination buckets").

    Constraint: the key ARN given for a resource (or a replica, or a replication destination) is
    in that resource's region; a key from another region is refused at deploy time or, for S3
    replication, accepted and then every replication fails.
    """
    found: list[Finding] = []
    for resource, where, key, region in _key_uses(stack):
        if not key or not region or not str(key).startswith("arn:"):
            continue
        if arn_region(key) != region:
            found.append(
                (
                    resource.name,
                    f"{where}: key {key} is in {arn_region(key)}, the data is in {region}",
                )
            )
    return found


def key_policies_enable_iam(stack: Stack) -> list[Finding]:
    """Every customer managed key lets IAM policies in the account grant its use.

    Document: AWS KMS Developer Guide, "Default key policy", section "Allows access to the AWS
    account and enables IAM policies" (https://docs.aws.amazon.com/kms/latest/developerguide/
    key-policy-default.html).

    Constraint: the roles this program declares (S3 replication, AWS Backup, the database hosts,
    the AWS Config recorder) and the services acting with the deployer's credentials (RDS,
    Secrets Manager, SSM, AWS Backup's managed policies) are granted key use by *IAM* policies,
    which only take effect when the key policy allows the account principal. A key policy
    without that statement silently voids every one of those grants.
    """
    found: list[Finding] = []
    if not stack.account:
        return found
    for key in stack.of(*KEY_TYPES):
        if not enables_iam(policy_doc(get(key.props, "policy")), stack.account):
            found.append(
                (
                    key.name,
                    "the key policy does not allow the account principal "
                    f"(arn:aws:iam::{stack.account}:root) kms:*: IAM grants to it are void",
                )
            )
    return found


def rds_cross_region_copies(stack: Stack) -> list[Finding]:
    """Cross-region RDS read replicas and automated-backup copies can be created and encrypted.

    Documents: Amazon RDS User Guide, "Creating a read replica in a different AWS Region"
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.XRgn.html) and
    "Working with DB instance read replicas" (automatic backups must be on for the source);
    "Replicating automated backups to another AWS Region"
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReplicateBackups.html).

    Constraint: a read replica of an encrypted source in another region is encrypted with a key
    given explicitly for its own region (the source's key cannot be used there); its source must
    keep automated backups (retention of at least one day); an automated-backups replication of
    an encrypted instance names a key in the destination region.
    """
    found: list[Finding] = []
    instances = stack.of("aws:rds/instance:Instance")
    for r in instances:
        source = get(r.props, "replicateSourceDb")
        if not source or not str(source).startswith("arn:"):
            continue
        region = get(r.props, "region") or ""
        if arn_region(source) == region:
            continue
        if get(r.props, "storageEncrypted") and not get(r.props, "kmsKeyId"):
            found.append(
                (r.name, f"an encrypted cross-region read replica needs kmsKeyId in {region}")
            )
        for other in instances:
            if other is r or get(other.props, "replicateSourceDb"):
                continue
            retention = get(other.props, "backupRetentionPeriod")
            if other.name in str(source) or get(other.props, "identifier") in str(source):
                if not retention or float(retention) < 1:
                    found.append(
                        (
                            other.name,
                            "source of a read replica keeps no automated "
                            "backups (backupRetentionPeriod 0)",
                        )
                    )
    for r in stack.resources:
        if r.type.endswith(":InstanceAutomatedBackupsReplication") and not get(r.props, "kmsKeyId"):
            found.append(
                (
                    r.name,
                    "replicated automated backups of an encrypted instance need a "
                    "kmsKeyId in the destination region",
                )
            )
    return found


RULES = [
    (
        "sns-publishers-deliver",
        "Services that publish to encrypted topics can (topic + key policy)",
        sns_publishers_can_deliver,
    ),
    ("kms-key-in-region", "Every resource uses a KMS key in its own region", keys_in_their_region),
    (
        "kms-key-enables-iam",
        "Key policies let the account's IAM policies grant use",
        key_policies_enable_iam,
    ),
    (
        "rds-cross-region",
        "Cross-region RDS replicas and backup copies are encryptable",
        rds_cross_region_copies,
    ),
]

__all__ = ["RULES", "SNS_KEY_ACTIONS"]
