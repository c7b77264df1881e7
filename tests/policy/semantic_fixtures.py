"""A compliant and a non-compliant stack for every AWS-semantics rule (policy/aws_semantics).

Each fixture is the smallest set of resources, shaped as the engine hands them to a stack policy
(type, name, props; components by their registered outputs), that exercises one constraint. The
non-compliant variant differs from the compliant one by exactly the fault the rule exists for.
"""

from __future__ import annotations

import copy
import json

from policy.rules import Resource

ACCOUNT = "111122223333"
ROOT = {
    "Sid": "AccountAdministers",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def key(name, region, *grants, arn=None):
    arn = arn or f"arn:aws:kms:{region}:{ACCOUNT}:key/{name}"
    return [
        Resource("platform-dr:keys:MultiRegionKey", name, {"arns": {region: arn}}),
        Resource(
            "aws:kms/key:Key",
            f"{name}-{region}",
            {"region": region, "enableKeyRotation": True, "policy": doc(ROOT, *grants)},
        ),
    ]


def key_arn(name, region):
    return f"arn:aws:kms:{region}:{ACCOUNT}:key/{name}"


# -- S3 replication --

SRC, DST = "src-bucket", "dst-bucket"
SRC_ARN, DST_ARN = f"arn:aws:s3:::{SRC}", f"arn:aws:s3:::{DST}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/rep"


def replication_stack(context_suffix="", bucket_keys=True, dest_actions=None, trust_cond=None):
    ctx = lambda arn: f"{arn}{context_suffix}"  # noqa: E731
    dest_actions = dest_actions or ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"]
    policy = doc(
        {
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": SRC_ARN,
        },
        {
            "Effect": "Allow",
            "Action": [
                "s3:GetObjectVersionForReplication",
                "s3:GetObjectVersionAcl",
                "s3:GetObjectVersionTagging",
            ],
            "Resource": f"{SRC_ARN}/*",
        },
        {
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            "Resource": f"{DST_ARN}/*",
        },
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key_arn("src", "us-east-1"),
            "Condition": {
                "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": ctx(SRC_ARN)},
            },
        },
        {
            "Effect": "Allow",
            "Action": dest_actions,
            "Resource": key_arn("dst", "us-west-2"),
            "Condition": {
                "StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": ctx(DST_ARN)},
            },
        },
    )
    trust = {
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": trust_cond or {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
    }
    return [
        *key("src", "us-east-1"),
        *key("dst", "us-west-2"),
        Resource(
            "platform-dr:replicated_bucket:ReplicatedBucket",
            "data",
            {
                "bucket_names": {"us-east-1": SRC, "us-west-2": DST},
                "bucket_arns": {"us-east-1": SRC_ARN, "us-west-2": DST_ARN},
                "replication_role_arn": ROLE_ARN,
                "adopted_regions": [],
            },
        ),
        Resource("aws:s3/bucket:Bucket", "data-us-east-1", {"region": "us-east-1", "bucket": SRC}),
        Resource("aws:s3/bucket:Bucket", "data-us-west-2", {"region": "us-west-2", "bucket": DST}),
        Resource(
            "aws:s3/bucketServerSideEncryptionConfiguration:"
            "BucketServerSideEncryptionConfiguration",
            "data-us-east-1-encryption",
            {
                "bucket": SRC,
                "region": "us-east-1",
                "rules": [
                    {
                        "applyServerSideEncryptionByDefault": {
                            "sseAlgorithm": "aws:kms",
                            "kmsMasterKeyId": key_arn("src", "us-east-1"),
                        },
                        "bucketKeyEnabled": bucket_keys,
                    }
                ],
            },
        ),
        Resource("aws:iam/role:Role", "data-replication-role", {"assumeRolePolicy": doc(trust)}),
        Resource(
            "aws:iam/rolePolicy:RolePolicy",
            "data-replication-policy",
            {"role": "data-replication-role-id", "policy": policy},
        ),
        Resource(
            "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
            "data-replication",
            {
                "region": "us-east-1",
                "bucket": SRC,
                "role": ROLE_ARN,
                "rules": [
                    {
                        "id": "to-us-west-2",
                        "status": "Enabled",
                        "filter": {},
                        "sourceSelectionCriteria": {
                            "sseKmsEncryptedObjects": {"status": "Enabled"}
                        },
                        "destination": {
                            "bucket": DST_ARN,
                            "encryptionConfiguration": {
                                "replicaKmsKeyId": key_arn("dst", "us-west-2")
                            },
                            "replicationTime": {"status": "Enabled", "time": {"minutes": 15}},
                            "metrics": {"status": "Enabled", "eventThreshold": {"minutes": 15}},
                        },
                    }
                ],
            },
        ),
    ]


def _without_rtc_metrics(resources):
    changed = copy.deepcopy(resources)
    for r in changed:
        if r.name == "data-replication":
            r.props["rules"][0]["destination"]["metrics"] = {"status": "Disabled"}
    return changed


# -- SNS publishers --

TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts-us-east-1"


def sns_stack(key_condition=None, events_topic_condition=None, target_role=None):
    grant = {
        "Sid": "PublishersUseKey",
        "Effect": "Allow",
        "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
        "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
        "Resource": "*",
    }
    if key_condition:
        grant["Condition"] = key_condition
    events = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": TOPIC_ARN,
    }
    if events_topic_condition:
        events["Condition"] = events_topic_condition
    target = {"region": "us-east-1", "rule": "failed-jobs", "arn": TOPIC_ARN}
    if target_role:
        target["roleArn"] = target_role
    return [
        *key("alerts-key", "us-east-1", grant),
        Resource(
            "platform-dr:alerts:AlertTopics", "alerts", {"topic_arns": {"us-east-1": TOPIC_ARN}}
        ),
        Resource(
            "aws:sns/topic:Topic",
            "alerts-us-east-1",
            {"region": "us-east-1", "kmsMasterKeyId": key_arn("alerts-key", "us-east-1")},
        ),
        Resource(
            "aws:sns/topicPolicy:TopicPolicy",
            "alerts-us-east-1-policy",
            {
                "region": "us-east-1",
                "arn": TOPIC_ARN,
                "policy": doc(
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": "sns:Publish",
                        "Resource": TOPIC_ARN,
                        "Condition": {
                            "ArnLike": {
                                "aws:SourceArn": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:*"
                            }
                        },
                    },
                    events,
                ),
            },
        ),
        Resource(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "lag",
            {"region": "us-east-1", "alarmActions": [TOPIC_ARN]},
        ),
        Resource("aws:cloudwatch/eventTarget:EventTarget", "failed-jobs-topic", target),
    ]


# -- regional keys, IAM delegation, RDS --


def secret_stack(replica_key_region="us-west-2"):
    return [
        Resource(
            "aws:secretsmanager/secret:Secret",
            "api-key",
            {
                "region": "us-east-1",
                "kmsKeyId": key_arn("k", "us-east-1"),
                "replicas": [{"region": "us-west-2", "kmsKeyId": key_arn("k", replica_key_region)}],
            },
        )
    ]


def key_only(policy_statements):
    return [
        Resource(
            "aws:kms/key:Key",
            "k-us-east-1",
            {"region": "us-east-1", "policy": doc(*policy_statements)},
        )
    ]


def rds_stack(retention=7.0, replica_key=True):
    replica = {
        "region": "us-west-2",
        "replicateSourceDb": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:platform-dr-prod",
        "storageEncrypted": True,
    }
    if replica_key:
        replica["kmsKeyId"] = key_arn("db", "us-west-2")
    return [
        Resource(
            "aws:rds/instance:Instance",
            "database-instance",
            {
                "region": "us-east-1",
                "identifier": "platform-dr-prod",
                "storageEncrypted": True,
                "kmsKeyId": key_arn("db", "us-east-1"),
                "backupRetentionPeriod": retention,
            },
        ),
        Resource("aws:rds/instance:Instance", "dr-standby-replica", replica),
    ]


# -- delivery targets --

REPORTS = "reports-bucket"
SLR = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/reports.backup.amazonaws.com/"
    "AWSServiceRoleForBackupReports"
)


def delivery_stack(bucket_grant=True, key_grant=True, inventory_key_grant=True):
    statements = [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{REPORTS}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if bucket_grant:
        statements.append(
            {
                "Effect": "Allow",
                "Principal": {"AWS": SLR},
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{REPORTS}/backup-reports/*",
                "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}},
            }
        )
    statements.append(
        {
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{REPORTS}/inventory/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    )
    grants = []
    if key_grant:
        grants.append(
            {
                "Effect": "Allow",
                "Principal": {"AWS": SLR},
                "Action": ["kms:GenerateDataKey", "kms:Encrypt"],
                "Resource": "*",
            }
        )
    if inventory_key_grant:
        grants.append(
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "kms:GenerateDataKey",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            }
        )
    return [
        *key("reports-key", "us-east-1", *grants),
        Resource(
            "aws:s3/bucketPolicy:BucketPolicy",
            "reports-policy",
            {"bucket": REPORTS, "policy": doc(*statements)},
        ),
        Resource(
            "aws:s3/bucketServerSideEncryptionConfiguration:"
            "BucketServerSideEncryptionConfiguration",
            "reports-encryption",
            {
                "bucket": REPORTS,
                "rules": [
                    {
                        "applyServerSideEncryptionByDefault": {
                            "sseAlgorithm": "aws:kms",
                            "kmsMasterKeyId": key_arn("reports-key", "us-east-1"),
                        },
                        "bucketKeyEnabled": True,
                    }
                ],
            },
        ),
        Resource(
            "aws:backup/reportPlan:ReportPlan",
            "compliance-report",
            {
                "region": "us-east-1",
                "reportDeliveryChannel": {
                    "s3BucketName": REPORTS,
                    "s3KeyPrefix": "backup-reports/compliance",
                },
            },
        ),
        Resource(
            "aws:s3/inventory:Inventory",
            "audio-inventory",
            {
                "region": "us-east-1",
                "bucket": "audio",
                "destination": {
                    "bucket": {
                        "bucketArn": f"arn:aws:s3:::{REPORTS}",
                        "prefix": "inventory",
                        "format": "CSV",
                    }
                },
            },
        ),
    ]


# -- health checks --


def health_stack(kind="CLOUDWATCH_METRIC", missing="breaching", statistic="Minimum"):
    alarm = Resource(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "primary-down",
        {
            "region": "us-west-2",
            "namespace": "platform-dr",
            "metricName": "PrimaryDatabaseUp",
            "statistic": statistic,
            "period": 60,
            "treatMissingData": missing,
        },
    )
    if kind == "CLOUDWATCH_METRIC":
        check = {
            "type": kind,
            "cloudwatchAlarmName": "primary-down",
            "cloudwatchAlarmRegion": "us-west-2",
            "insufficientDataHealthStatus": "LastKnownStatus",
        }
    else:
        check = {
            "type": "TCP",
            "fqdn": "platform-dr-prod.c0ffee.us-east-1.rds.amazonaws.com",
            "port": 5432,
        }
    return [alarm, Resource("aws:route53/healthCheck:HealthCheck", "primary-check", check)]


# -- network paths --


def network_stack(backend="self-managed", route_back=True, overlap=False, ipv6_route=True):
    dr_cidr = "10.40.0.0/16" if overlap else "10.42.0.0/16"
    net = Resource(
        "platform-dr:dr_network:DrNetwork",
        "net",
        {
            "backend": backend,
            "drRegion": "us-west-2",
            "vpcCidr": dr_cidr,
            "dbPort": 5432,
            "primaryRegion": "us-east-1" if backend == "self-managed" else None,
            "primaryCidr": "10.40.0.0/16" if backend == "self-managed" else None,
            "private_route_table_id": "rt-private",
        },
    )

    def route(name, region, dest, table, **via):
        field = "destinationIpv6CidrBlock" if ":" in dest else "destinationCidrBlock"
        return Resource(
            "aws:ec2/route:Route",
            name,
            {"region": region, field: dest, "routeTableId": table, **via},
        )

    def rule(type_, name, region, **cidr):
        return Resource(
            f"aws:vpc/securityGroup{type_}Rule:SecurityGroup{type_}Rule",
            name,
            {"region": region, "ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, **cidr},
        )

    found = [
        net,
        route("nat", "us-west-2", "0.0.0.0/0", "rt-private", natGatewayId="nat-1"),
        route("igw", "us-west-2", "0.0.0.0/0", "rt-public", gatewayId="igw-1"),
    ]
    if backend == "self-managed":
        found += [
            Resource(
                "aws:ec2/vpcPeeringConnection:VpcPeeringConnection",
                "peering",
                {"region": "us-west-2", "peerRegion": "us-east-1"},
            ),
            Resource(
                "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter",
                "accept",
                {"region": "us-east-1", "autoAccept": True},
            ),
            route(
                "to-primary",
                "us-west-2",
                "10.40.0.0/16",
                "rt-private",
                vpcPeeringConnectionId="pcx-1",
            ),
            rule("Egress", "db-to-primary", "us-west-2", cidrIpv4="10.40.0.0/16"),
            rule("Ingress", "primary-from-dr", "us-east-1", cidrIpv4=dr_cidr),
        ]
        if route_back:
            found.append(
                route(
                    "from-primary",
                    "us-east-1",
                    dr_cidr,
                    "rtb-primary",
                    vpcPeeringConnectionId="pcx-1",
                )
            )
    if backend == "supabase":
        found += [
            rule("Egress", "db-to-publisher", "us-west-2", cidrIpv4="0.0.0.0/0"),
            rule("Egress", "db-to-publisher-ipv6", "us-west-2", cidrIpv6="::/0"),
        ]
        if ipv6_route:
            found.append(route("v6", "us-west-2", "::/0", "rt-private", egressOnlyGatewayId="eigw"))
    return found


# -- storage --


def lifecycle_stack(transitions, noncurrent=None, expiry=None, bucket="b"):
    rule = {
        "id": "archive",
        "status": "Enabled",
        "filter": {},
        "transitions": [{"days": d, "storageClass": c} for d, c in transitions],
    }
    if noncurrent:
        rule["noncurrentVersionTransitions"] = [
            {"noncurrentDays": d, "storageClass": c} for d, c in noncurrent[0]
        ]
        rule["noncurrentVersionExpiration"] = {"noncurrentDays": noncurrent[1]}
    if expiry:
        rule["expiration"] = {"days": expiry}
    return [
        Resource(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            f"{bucket}-lifecycle",
            {"bucket": bucket, "rules": [rule]},
        )
    ]


def repository_stack(transitions):
    return [
        Resource(
            "platform-dr:postgres_backup:PostgresBackup",
            "database",
            {"backend": "self-managed", "repo_bucket_names": {"repo1": "repo1-use1"}},
        ),
        Resource(
            "platform-dr:replicated_bucket:ReplicatedBucket",
            "database-repo1",
            {"bucket_names": {"us-east-1": "repo1-use1", "us-west-2": "repo1-usw2"}},
        ),
        *lifecycle_stack(transitions, bucket="repo1-usw2"),
    ]


def object_lock_stack(lock_days=14, noncurrent_expiry=365, versioned=True):
    return [
        Resource(
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
            "b-lock",
            {
                "bucket": "b",
                "rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": lock_days}},
            },
        ),
        Resource(
            "aws:s3/bucketVersioning:BucketVersioning",
            "b-versioning",
            {
                "bucket": "b",
                "versioningConfiguration": {"status": "Enabled" if versioned else "Suspended"},
            },
        ),
        *lifecycle_stack([(90, "STANDARD_IA")], noncurrent=([], noncurrent_expiry)),
    ]


# -- AWS Backup --


def vault_stack(delete_after=35, min_days=7, max_days=365, cold=None, continuous=False):
    lifecycle = {"deleteAfter": delete_after}
    if cold:
        lifecycle["coldStorageAfter"] = cold
    return [
        Resource(
            "aws:backup/vaultLockConfiguration:VaultLockConfiguration",
            "lock",
            {
                "backupVaultName": "vault",
                "minRetentionDays": min_days,
                "maxRetentionDays": max_days,
                "changeableForDays": 3,
            },
        ),
        Resource(
            "aws:backup/plan:Plan",
            "plan",
            {
                "rules": [
                    {
                        "ruleName": "daily",
                        "targetVaultName": "vault",
                        "lifecycle": lifecycle,
                        "enableContinuousBackup": continuous or None,
                    }
                ]
            },
        ),
    ]


def config_stack(types=None, organization=False, enabled=True):
    types = types or [
        "AWS::Backup::BackupPlan",
        "AWS::Backup::BackupSelection",
        "AWS::Backup::BackupVault",
        "AWS::Backup::RecoveryPoint",
        "AWS::Config::ResourceCompliance",
    ]
    found = [
        Resource("aws:backup/framework:Framework", "critical-framework", {"region": "us-east-1"}),
        Resource(
            "platform-dr:backup_plan:BackupPlan",
            "backup",
            {
                "config_recording": "organization" if organization else "stack",
                "framework_region": "us-east-1",
            },
        ),
    ]
    if not organization:
        found += [
            Resource(
                "aws:cfg/recorder:Recorder",
                "recorder",
                {
                    "region": "us-east-1",
                    "recordingGroup": {"allSupported": False, "resourceTypes": types},
                },
            ),
            Resource(
                "aws:cfg/deliveryChannel:DeliveryChannel",
                "delivery",
                {"region": "us-east-1", "s3BucketName": "cfg"},
            ),
            Resource(
                "aws:cfg/recorderStatus:RecorderStatus",
                "status",
                {"region": "us-east-1", "isEnabled": enabled},
            ),
        ]
    return found


def trust_stack(service, condition=None):
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return [
        *key_only([ROOT]),
        Resource("aws:iam/role:Role", "host", {"assumeRolePolicy": doc(statement)}),
    ]


def adoption_stack(reconfigure=False):
    found = [
        Resource(
            "platform-dr:replicated_bucket:ReplicatedBucket",
            "audio",
            {
                "bucket_names": {"us-west-2": "prods-replica", "us-east-2": "new-copy"},
                "adopted_regions": ["us-west-2"],
            },
        )
    ]
    found.append(
        Resource(
            "aws:s3/bucketVersioning:BucketVersioning",
            "audio-us-east-2-versioning",
            {"bucket": "new-copy", "versioningConfiguration": {"status": "Enabled"}},
        )
    )
    if reconfigure:
        found.append(
            Resource(
                "aws:s3/bucketPolicy:BucketPolicy",
                "audio-us-west-2-policy",
                {"bucket": "prods-replica", "policy": doc()},
            )
        )
    return found


# -- constraints per declared type --


def rds_family_stack(family="postgres16"):
    return [
        Resource("aws:rds/parameterGroup:ParameterGroup", "params", {"family": family}),
        Resource(
            "aws:rds/instance:Instance",
            "db",
            {"engine": "postgres", "engineVersion": "16", "parameterGroupName": "params"},
        ),
    ]


def subnet_group_stack(zones=("us-west-2a", "us-west-2b")):
    subnets = [
        Resource("aws:ec2/subnet:Subnet", f"s{i}", {"availabilityZone": z})
        for i, z in enumerate(zones)
    ]
    group = Resource(
        "aws:rds/subnetGroup:SubnetGroup",
        "db-subnets",
        {"subnetIds": [f"s{i}-id" for i in range(len(zones))]},
    )
    return [*subnets, group]


def replica_key_stack(multi_region=True, replica_region="us-west-2"):
    primary = key("k", "us-east-1")
    primary[1].props["multiRegion"] = multi_region
    return [
        *primary,
        Resource(
            "aws:kms/replicaKey:ReplicaKey",
            "k-us-west-2",
            {
                "region": replica_region,
                "primaryKeyArn": key_arn("k", "us-east-1"),
                "policy": doc(ROOT),
            },
        ),
    ]


def alarm_region_stack(region="us-east-1"):
    return [
        Resource(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "primary-unhealthy",
            {
                "region": region,
                "namespace": "AWS/Route53",
                "metricName": "HealthCheckStatus",
                "dimensions": {"HealthCheckId": "hc"},
            },
        )
    ]


def rotation_stack(lambda_region="us-east-1"):
    return [
        Resource(
            "aws:secretsmanager/secretRotation:SecretRotation",
            "rotate",
            {
                "region": "us-east-1",
                "rotationLambdaArn": f"arn:aws:lambda:{lambda_region}:{ACCOUNT}:function:rotate",
            },
        )
    ]


def backup_role_stack(s3_policy=True):
    attached = ["arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"]
    if s3_policy:
        attached.append("arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Backup")
    return [
        Resource("aws:iam/role:Role", "backup-role", {}),
        *[
            Resource(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                f"att-{i}",
                {"role": "backup-role", "policyArn": arn},
            )
            for i, arn in enumerate(attached)
        ],
        Resource(
            "aws:backup/selection:Selection",
            "critical-selection",
            {"iamRoleArn": f"arn:aws:iam::{ACCOUNT}:role/backup-role"},
        ),
    ]


def customer_key_topic_stack(key_id=None):
    stack = sns_stack()
    for r in stack:
        if r.type == "aws:sns/topic:Topic" and key_id:
            r.props["kmsMasterKeyId"] = key_id
    return stack


def endpoint_stack(on_private=True):
    net = Resource(
        "platform-dr:dr_network:DrNetwork",
        "net",
        {"drRegion": "us-west-2", "private_route_table_id": "rt-private"},
    )
    return [
        net,
        Resource(
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            "s3",
            {
                "region": "us-west-2",
                "serviceName": "com.amazonaws.us-west-2.s3",
                "routeTableIds": ["rt-private" if on_private else "rt-main"],
            },
        ),
    ]


# rule name -> (compliant resources, non-compliant resources, phrase the problem contains)
CASES = {
    "s3-replication-kms": (
        replication_stack(),
        replication_stack(context_suffix="/*"),  # the object ARN, with Bucket Keys on
        "encryption context arn:aws:s3:::src-bucket",
    ),
    "s3-replication-permissions": (
        replication_stack(),
        replication_stack(trust_cond={"StringEquals": {"aws:PrincipalOrgID": "o-123"}}),
        "cannot assume the replication role",
    ),
    "s3-rtc-metrics": (
        replication_stack(),
        _without_rtc_metrics(replication_stack()),
        "RTC needs metrics",
    ),
    "sns-publishers-deliver": (
        sns_stack(),
        sns_stack(key_condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
        "does not let events.amazonaws.com call kms:GenerateDataKey",
    ),
    "kms-key-in-region": (
        secret_stack(),
        secret_stack(replica_key_region="us-east-1"),
        "replica us-west-2: key",
    ),
    "kms-key-enables-iam": (
        key_only([ROOT]),
        key_only([{**ROOT, "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/admin"}}]),
        "IAM grants to it are void",
    ),
    "rds-cross-region": (rds_stack(), rds_stack(replica_key=False), "needs kmsKeyId in us-west-2"),
    "delivery-targets-writable": (
        delivery_stack(),
        delivery_stack(bucket_grant=False),
        "does not let backup-reports",
    ),
    "route53-health-check-evaluable": (
        health_stack(),
        health_stack(kind="TCP"),
        "Route 53 checkers run on the internet",
    ),
    "database-network-path": (
        network_stack(),
        network_stack(route_back=False),
        "no route back to 10.42.0.0/16",
    ),
    "s3-lifecycle-storage-minimums": (
        lifecycle_stack([(30, "STANDARD_IA"), (90, "GLACIER_IR")], ([(30, "GLACIER_IR")], 365)),
        lifecycle_stack([(30, "STANDARD_IA")], ([(30, "GLACIER_IR")], 31)),
        "minimum storage duration is 90 d",
    ),
    "pgbackrest-repository-readable": (
        repository_stack([(90, "STANDARD_IA"), (180, "GLACIER_IR")]),
        repository_stack([(90, "STANDARD_IA"), (365, "DEEP_ARCHIVE")]),
        "which pgBackRest cannot read",
    ),
    "s3-object-lock-consistent": (
        object_lock_stack(),
        object_lock_stack(noncurrent_expiry=7),
        "stay locked for 14 d",
    ),
    "backup-vault-lock-bounds": (vault_stack(), vault_stack(delete_after=5), "needs at least 7 d"),
    "backup-lifecycles-valid": (
        vault_stack(delete_after=365, cold=30),
        vault_stack(delete_after=100, cold=30),
        "cold storage keeps points at least 90 d",
    ),
    "backup-audit-config": (
        config_stack(),
        config_stack(types=["AWS::Backup::BackupPlan"]),
        "does not record AWS::Backup::BackupSelection",
    ),
    "service-role-trust": (
        trust_stack("ec2.amazonaws.com"),
        trust_stack("ec2.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
        "ec2.amazonaws.com cannot assume it",
    ),
    "adopted-not-reconfigured": (
        adoption_stack(),
        adoption_stack(reconfigure=True),
        "adopted bucket prods-replica",
    ),
    "rds-parameter-group-family": (
        rds_family_stack(),
        rds_family_stack("postgres15"),
        "RDS needs postgres16",
    ),
    "rds-subnet-group-azs": (
        subnet_group_stack(),
        subnet_group_stack(("us-west-2a",) * 2),
        "RDS needs 2",
    ),
    "kms-multi-region-replicas": (
        replica_key_stack(),
        replica_key_stack(multi_region=False),
        "not multi-Region",
    ),
    "alarm-metric-region": (
        alarm_region_stack(),
        alarm_region_stack("us-west-2"),
        "published in us-east-1",
    ),
    "same-region-references": (
        rotation_stack(),
        rotation_stack("us-west-2"),
        "is not in us-east-1",
    ),
    "backup-role-policies": (
        backup_role_stack(),
        backup_role_stack(s3_policy=False),
        "lacks AWSBackupServiceRolePolicyForS3Backup",
    ),
    "sns-customer-key-for-services": (
        customer_key_topic_stack(),
        customer_key_topic_stack("alias/aws/sns"),
        "AWS services cannot publish",
    ),
    "s3-endpoint-on-private-routes": (
        endpoint_stack(),
        endpoint_stack(on_private=False),
        "no S3 gateway endpoint",
    ),
}

# The object-scale audit's rules keep their fixtures beside their own tests.
from tests.policy.inventory_fixtures import CASES as _INVENTORY_CASES  # noqa: E402

CASES.update(_INVENTORY_CASES)
