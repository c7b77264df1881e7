"""Constraints found by reading each resource type the program declares against its AWS docs.

Beyond the defects the review listed: the list of types comes from evaluating prod and dr with
every backend; each rule here is one documented constraint on one of them that an evaluation under
mocks accepts and AWS would refuse, or accept and then silently not honour.
"""

from __future__ import annotations

import re

from .graph import ALARM_TYPE, KEY_TYPES, Stack, arn_region, get
from .iam_eval import as_list, policy_doc

Finding = tuple[str, str]
MANAGED_BACKUP = "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
MANAGED_S3_BACKUP = "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Backup"
MANAGED_RESTORE = "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores"
MANAGED_S3_RESTORE = "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Restore"


def rds_parameter_group_family(stack: Stack) -> list[Finding]:
    """An RDS instance's parameter group is of its engine's family and major version.

    Document: Amazon RDS User Guide, "Parameter groups for Amazon RDS" / "Working with DB
    parameter groups" (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/
    USER_WorkingWithParamGroups.html): a DB parameter group belongs to a family (for example
    postgres16) and can only be associated with instances of that engine and major version.

    Constraint: for every instance that names a parameter group declared here, the group's
    ``family`` is ``<engine><major version>``. Otherwise RDS refuses the instance (or the
    upgrade), and settings such as rds.force_ssl never apply.
    """
    found: list[Finding] = []
    groups = {
        get(g.props, "name") or g.name: g for g in stack.of("aws:rds/parameterGroup:ParameterGroup")
    }
    for instance in stack.of("aws:rds/instance:Instance"):
        group = groups.get(get(instance.props, "parameterGroupName"))
        engine, version = (
            get(instance.props, "engine"),
            str(get(instance.props, "engineVersion") or ""),
        )
        if group is None or not engine or not version:
            continue
        expected = f"{engine}{version.split('.')[0]}"
        family = get(group.props, "family")
        if family != expected:
            found.append(
                (
                    instance.name,
                    f"{engine} {version} with parameter group family "
                    f"{family}; RDS needs {expected}",
                )
            )
    return found


def rds_subnet_groups_span_two_zones(stack: Stack) -> list[Finding]:
    """A DB subnet group has subnets in at least two Availability Zones.

    Document: Amazon RDS User Guide, "Working with a DB instance in a VPC" / "Working with DB
    subnet groups" (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/
    USER_VPC.WorkingWithRDSInstanceinaVPC.html): "Each DB subnet group should have subnets in at
    least two Availability Zones in a given AWS Region".

    Constraint: the subnets a DB subnet group lists (when declared here) are in two or more
    distinct Availability Zones; RDS rejects the group otherwise, and a Multi-AZ standby needs
    the second zone.
    """
    found: list[Finding] = []
    for group in stack.of("aws:rds/subnetGroup:SubnetGroup"):
        zones = set()
        for ref in as_list(get(group.props, "subnetIds")):
            subnet = stack.ref(ref)
            if subnet is not None:
                zones.add(
                    get(subnet.props, "availabilityZone") or get(subnet.props, "availabilityZoneId")
                )
        if len(zones) < 2:
            found.append((group.name, f"subnets in {len(zones)} Availability Zone(s); RDS needs 2"))
    return found


def kms_replicas_of_multi_region_keys(stack: Stack) -> list[Finding]:
    """A replica key replicates a multi-Region primary key, into another region.

    Document: AWS KMS Developer Guide, "Create multi-Region replica keys"
    (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-replicate.html):
    only a multi-Region primary key can be replicated, and a replica is created in a region
    other than its primary's (one replica per region).

    Constraint: every ReplicaKey's primary key, when declared here, has ``multiRegion`` true and
    a different region; no two replicas of one primary share a region.
    """
    found: list[Finding] = []
    seen: dict[tuple[str, str], str] = {}
    for replica in stack.of("aws:kms/replicaKey:ReplicaKey"):
        primary_arn = get(replica.props, "primaryKeyArn")
        region = get(replica.props, "region") or ""
        primary = stack.key(primary_arn)
        if primary is not None and primary.type == KEY_TYPES[0]:
            if get(primary.props, "multiRegion") is not True:
                found.append(
                    (replica.name, f"replicates {primary.name}, which is not multi-Region")
                )
            if get(primary.props, "region") == region:
                found.append((replica.name, f"in the primary key's own region {region}"))
        if (primary_arn, region) in seen:
            found.append(
                (
                    replica.name,
                    f"a second replica of one key in {region} (also {seen[(primary_arn, region)]})",
                )
            )
        seen[(str(primary_arn), region)] = replica.name
    return found


def alarm_metric_regions(stack: Stack) -> list[Finding]:
    """Each alarm is in the region where its metric is published.

    Documents: Amazon Route 53 Developer Guide, "Monitoring health check status and getting
    notifications" (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/
    health-checks-monitor-view-status.html: health check metrics are only in US East (N.
    Virginia)); Amazon S3 User Guide, "Monitoring progress with replication metrics and Amazon S3
    event notifications" (replication metrics are published in the source bucket's region);
    Amazon RDS User Guide, "Amazon CloudWatch metrics for Amazon RDS" (per instance, in its
    region).

    Constraint: an AWS/Route53 alarm is in us-east-1; an AWS/S3 replication alarm is in the
    region of its SourceBucket; an AWS/RDS alarm on an instance declared here is in that
    instance's region. An alarm elsewhere sees no data: with missing data as breaching it pages
    forever, otherwise it never fires.
    """
    found: list[Finding] = []
    instances = {}
    for r in stack.of("aws:rds/instance:Instance"):
        instances[get(r.props, "identifier") or r.name] = get(r.props, "region")
        instances[f"{r.name}-id"] = get(r.props, "region")
        instances[r.name] = get(r.props, "region")
    for alarm in stack.of(ALARM_TYPE):
        p = alarm.props
        region, namespace = get(p, "region"), get(p, "namespace")
        dims = get(p, "dimensions") or {}
        want = None
        if namespace == "AWS/Route53":
            want = "us-east-1"
        elif namespace == "AWS/S3" and dims.get("SourceBucket"):
            bucket = stack.buckets.get(dims["SourceBucket"])
            want = get(bucket.props, "region") if bucket is not None else None
        elif namespace == "AWS/RDS" and dims.get("DBInstanceIdentifier") in instances:
            want = instances[dims["DBInstanceIdentifier"]]
        if want and region and want != region:
            found.append(
                (
                    alarm.name,
                    f"{namespace} metric is published in {want}, the alarm is "
                    f"in {region}: it never sees data",
                )
            )
    return found


def same_region_references(stack: Stack) -> list[Finding]:
    """Alarm actions and secret rotation functions are in the region of what uses them.

    Documents: Amazon CloudWatch User Guide, "Using Amazon CloudWatch alarms" / PutMetricAlarm
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html:
    an SNS alarm action is a topic in the alarm's region); AWS Secrets Manager User Guide,
    "Rotation by Lambda function" (https://docs.aws.amazon.com/secretsmanager/latest/userguide/
    rotate-secrets_lambda.html: the rotation function runs in the secret's region).

    Constraint: every SNS ARN in an alarm's actions is in the alarm's region; a SecretRotation's
    Lambda is in the secret's region.
    """
    found: list[Finding] = []
    for alarm in stack.of(ALARM_TYPE):
        region = get(alarm.props, "region")
        for field in ("alarmActions", "okActions", "insufficientDataActions"):
            for arn in as_list(get(alarm.props, field)):
                if str(arn).startswith("arn:aws:sns:") and region and arn_region(arn) != region:
                    found.append((alarm.name, f"{field}: topic {arn} is not in {region}"))
    for rotation in stack.of("aws:secretsmanager/secretRotation:SecretRotation"):
        region, arn = get(rotation.props, "region"), get(rotation.props, "rotationLambdaArn")
        if arn and region and str(arn).startswith("arn:") and arn_region(arn) != region:
            found.append((rotation.name, f"rotation Lambda {arn} is not in {region}"))
    return found


def _role_attachments(stack: Stack, role) -> set[str]:
    refs = {role.name, f"{role.name}-id", get(role.props, "name"), get(role.props, "id")}
    return {
        get(a.props, "policyArn")
        for a in stack.of("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if get(a.props, "role") in refs
    } | set(as_list(get(role.props, "managedPolicyArns")))


def backup_roles_can_protect(stack: Stack) -> list[Finding]:
    """The role of each backup selection and restore test may back up and restore S3 and RDS.

    Document: AWS Backup Developer Guide, "Managed policies for AWS Backup" and "Amazon S3
    backups" / "Prerequisites for S3 backups" (https://docs.aws.amazon.com/aws-backup/latest/
    devguide/s3-backups.html): AWSBackupServiceRolePolicyForBackup does not cover S3; an S3
    backup needs AWSBackupServiceRolePolicyForS3Backup (and S3 restores
    AWSBackupServiceRolePolicyForS3Restore) or equivalent permissions on the role.

    Constraint: a Selection's role has the backup policy and the S3 backup policy; a
    RestoreTestingSelection of S3 has a role with the S3 restore policy, of RDS with the restore
    policy. Otherwise jobs for the selected resources fail with an access error.
    """
    found: list[Finding] = []

    def role_of(arn):
        role = stack.role(arn)
        if role is None:
            for r in stack.of("aws:iam/role:Role"):
                if str(arn).endswith((f":{r.name}", f"/{r.name}", f"/{get(r.props, 'name')}")):
                    return r
        return role

    for selection in stack.of("aws:backup/selection:Selection"):
        role = role_of(get(selection.props, "iamRoleArn"))
        if role is None:
            continue
        missing = {MANAGED_BACKUP, MANAGED_S3_BACKUP} - _role_attachments(stack, role)
        if missing:
            found.append(
                (
                    selection.name,
                    f"role {role.name} lacks "
                    f"{', '.join(sorted(m.rsplit('/', 1)[-1] for m in missing))}",
                )
            )
    for test in stack.of("aws:backup/restoreTestingSelection:RestoreTestingSelection"):
        role = role_of(get(test.props, "iamRoleArn"))
        kind = get(test.props, "protectedResourceType")
        need = {"S3": MANAGED_S3_RESTORE, "RDS": MANAGED_RESTORE}.get(kind)
        if role is not None and need and need not in _role_attachments(stack, role):
            found.append(
                (
                    test.name,
                    f"restores {kind} with role {role.name}, which lacks {need.rsplit('/', 1)[-1]}",
                )
            )
    return found


_AWS_MANAGED_KEY = re.compile(r"(^|:)alias/aws/")


def service_publishers_use_customer_keys(stack: Stack) -> list[Finding]:
    """A topic that AWS services publish to is encrypted with a customer managed key.

    Document: Amazon SNS Developer Guide, "Enable compatibility between event sources from AWS
    services and encrypted topics" (https://docs.aws.amazon.com/sns/latest/dg/
    sns-key-management.html#compatibility-with-aws-services), step 1: "Use a customer managed
    KMS key": the AWS managed key for SNS (alias/aws/sns) cannot be granted to other services.

    Constraint: every topic named in an alarm action or an EventBridge target is encrypted with
    a key ARN, not ``alias/aws/sns``.
    """
    found: list[Finding] = []
    targets = set()
    for alarm in stack.of(ALARM_TYPE):
        for field in ("alarmActions", "okActions", "insufficientDataActions"):
            targets |= set(map(str, as_list(get(alarm.props, field))))
    for target in stack.of("aws:cloudwatch/eventTarget:EventTarget"):
        targets.add(str(get(target.props, "arn")))
    for topic in stack.of("aws:sns/topic:Topic"):
        key = str(get(topic.props, "kmsMasterKeyId") or "")
        arn = next((a for a, r in stack.by_arn.items() if r is topic), get(topic.props, "arn"))
        if arn in targets and _AWS_MANAGED_KEY.search(key):
            found.append((topic.name, f"encrypted with {key}; AWS services cannot publish to it"))
    return found


def s3_endpoint_on_private_routes(stack: Stack) -> list[Finding]:
    """The S3 gateway endpoint is attached to the route table the private subnets use.

    Document: Amazon VPC User Guide (AWS PrivateLink), "Gateway endpoints for Amazon S3"
    (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html): a gateway
    endpoint only serves subnets whose route tables it is associated with.

    Constraint: in every DR network declared here, the S3 gateway endpoint lists the private
    route table; otherwise pgBackRest and the dump jobs reach S3 through the NAT gateway (paid
    per GB) or not at all.
    """
    found: list[Finding] = []
    endpoints = stack.of("aws:ec2/vpcEndpoint:VpcEndpoint")
    for net in stack.of("platform-dr:dr_network:DrNetwork"):
        table = get(net.props, "private_route_table_id")
        region = get(net.props, "drRegion")
        ok = any(
            str(get(e.props, "serviceName") or "").endswith(".s3")
            and get(e.props, "region") == region
            and table in as_list(get(e.props, "routeTableIds"))
            for e in endpoints
        )
        if table and not ok:
            found.append(
                (net.name, f"no S3 gateway endpoint on the private route table in {region}")
            )
    return found


RULES = [
    (
        "rds-parameter-group-family",
        "RDS parameter groups match the engine family",
        rds_parameter_group_family,
    ),
    (
        "rds-subnet-group-azs",
        "DB subnet groups span two Availability Zones",
        rds_subnet_groups_span_two_zones,
    ),
    (
        "kms-multi-region-replicas",
        "Replica keys replicate a multi-Region key into another region",
        kms_replicas_of_multi_region_keys,
    ),
    ("alarm-metric-region", "Alarms are where their metrics are published", alarm_metric_regions),
    (
        "same-region-references",
        "Alarm topics and rotation functions are in the caller's region",
        same_region_references,
    ),
    (
        "backup-role-policies",
        "Backup and restore-test roles may protect S3 and RDS",
        backup_roles_can_protect,
    ),
    (
        "sns-customer-key-for-services",
        "Topics AWS services publish to use a customer key",
        service_publishers_use_customer_keys,
    ),
    (
        "s3-endpoint-on-private-routes",
        "The S3 gateway endpoint serves the private subnets",
        s3_endpoint_on_private_routes,
    ),
]

__all__ = ["RULES", "policy_doc"]
