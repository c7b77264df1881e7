"""A two-region cloud on moto's server for the failover tests, seeded like DrStandby declares it.

moto runs as a real HTTP server (ThreadedMotoServer on 127.0.0.1), so boto3 goes through its
full request path. Secrets Manager's StopReplicationToReplica is missing from moto: the DR
secrets client answers that one call from botocore's Stubber (validated against the real
service model) and sends every other call to moto.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from scripts.local.postgres import free_port
from scripts.runbooks.failover import ROUTE53_REGION, Aws, FailoverPlan

PRIMARY, DR = "us-east-1", "us-west-2"
NAMESPACE = "platform-dr/prod"
SECRETS = ("api/payments", "integrations/cdn")
REPO2 = "prod-pgbackrest-repo2-us-west-2"
CONTROL = "drctl-control-us-west-2"


class MotoCloud:
    def __init__(self):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.port}"
        self._sessions: dict[str, boto3.session.Session] = {}
        self._clients: dict[tuple[str, str], object] = {}

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10)

    def stop(self) -> None:
        self.server.stop()

    def session(self, region: str) -> boto3.session.Session:
        # Building a botocore session is the slow part of making a client: one per region.
        if region not in self._sessions:
            self._sessions[region] = boto3.session.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
            )
        return self._sessions[region]

    def client(self, service: str, region: str):
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.session(region).client(
                service, region_name=region, endpoint_url=self.url
            )
        return self._clients[key]


class _SplitClient:
    """Secrets Manager client: StopReplicationToReplica from a Stubber, the rest from moto."""

    def __init__(self, moto_client, stubbed_client):
        self._moto, self._stubbed = moto_client, stubbed_client

    def stop_replication_to_replica(self, **kwargs):
        return self._stubbed.stop_replication_to_replica(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._moto, name)


@dataclass
class CloudAws(Aws):
    """Aws for the tests: moto for everything, Stubber for the one call moto lacks.

    fail_once: {(service, operation)} calls that raise once, as an outage would.
    """

    cloud: MotoCloud | None = None
    fail_once: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self):
        super().__init__(self.cloud.session, endpoint_url=self.cloud.url)
        stub_client = boto3.client(
            "secretsmanager",
            region_name=DR,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.stubber = Stubber(stub_client)
        self.stubber.activate()
        self._stub_client = stub_client

    def expect_secret_promotions(self, arns: list[str]) -> None:
        for arn in arns:
            self.stubber.add_response(
                "stop_replication_to_replica", {"ARN": arn}, expected_params={"SecretId": arn}
            )

    def client(self, service: str, region: str):
        real = self.cloud.client(service, region)  # shared: making clients is slow
        if service == "secretsmanager" and region == DR:
            real = _SplitClient(real, self._stub_client)
        return _Failing(real, service, self.fail_once) if self.fail_once else real


class _Failing:
    def __init__(self, client, service, fail_once):
        self._client, self._service, self._fail_once = client, service, fail_once

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        key = (self._service, name)
        if key in self._fail_once and callable(attr):

            def failing(*args, **kwargs):
                self._fail_once.discard(key)
                raise ConnectionError(f"{self._service} {name}: injected outage")

            return failing
        return attr


@dataclass
class Seeded:
    zone_id: str
    health_check_id: str
    secret_arns_dr: list[str]
    replica_identifier: str | None = None
    source_arn: str | None = None
    control_bucket: str | None = None
    primary_security_group: str | None = None


def seed(
    cloud: MotoCloud,
    *,
    primary_endpoint: str,
    standby_endpoint: str,
    rds: bool = False,
    dr_backup: bool = True,
    control: bool = False,
) -> Seeded:
    """What DrStandby, PostgresBackup and SecretsBackup would have created in the account."""
    r53 = cloud.client("route53", ROUTE53_REGION)
    zone = r53.create_hosted_zone(Name="music-platform.example", CallerReference="seed")
    zone_id = zone["HostedZone"]["Id"].split("/")[-1]
    check = r53.create_health_check(
        CallerReference="seed-check",
        HealthCheckConfig={
            "Type": "TCP",
            "FullyQualifiedDomainName": primary_endpoint,
            "Port": 5432,
            "RequestInterval": 10,
            "FailureThreshold": 3,
        },
    )["HealthCheck"]["Id"]
    changes = []
    for role, target, hc in (
        ("PRIMARY", primary_endpoint, check),
        ("SECONDARY", standby_endpoint, None),
    ):
        record = {
            "Name": "db.music-platform.example",
            "Type": "CNAME",
            "SetIdentifier": role.lower(),
            "Failover": role,
            "TTL": 60,
            "ResourceRecords": [{"Value": target}],
        }
        if hc:
            record["HealthCheckId"] = hc
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})

    sm = cloud.client("secretsmanager", PRIMARY)
    for key in SECRETS:
        sm.create_secret(
            Name=f"{NAMESPACE}/{key}",
            SecretString=f"value-of-{key}",
            AddReplicaRegions=[{"Region": DR}],
        )
    sm_dr = cloud.client("secretsmanager", DR)
    arns = [
        s["ARN"]
        for s in sm_dr.list_secrets()["SecretList"]
        if s["Name"].startswith(NAMESPACE + "/")
    ]

    seeded = Seeded(zone_id, check, sorted(arns))
    if control:
        # FailoverControl: the lease and the shared journals, in the DR region.
        s3 = cloud.client("s3", DR)
        s3.create_bucket(Bucket=CONTROL, CreateBucketConfiguration={"LocationConstraint": DR})
        s3.put_bucket_versioning(Bucket=CONTROL, VersioningConfiguration={"Status": "Enabled"})
        seeded.control_bucket = CONTROL
    if rds:
        rds_p, rds_dr = cloud.client("rds", PRIMARY), cloud.client("rds", DR)
        ec2 = cloud.client("ec2", PRIMARY)
        group = ec2.create_security_group(GroupName="db", Description="primary database")
        ec2.authorize_security_group_ingress(
            GroupId=group["GroupId"],
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 5432,
                    "ToPort": 5432,
                    "IpRanges": [{"CidrIp": "10.0.0.0/16"}],
                },
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "IpRanges": [{"CidrIp": "10.0.0.0/16"}],
                },
            ],
        )
        seeded.primary_security_group = group["GroupId"]
        source = rds_p.create_db_instance(
            DBInstanceIdentifier="platform-dr-prod",
            Engine="postgres",
            DBInstanceClass="db.r6g.large",
            MasterUsername="postgres",
            MasterUserPassword="not-a-real-password",
            AllocatedStorage=20,
            BackupRetentionPeriod=1,
            VpcSecurityGroupIds=[group["GroupId"]],
        )["DBInstance"]
        rds_dr.create_db_instance_read_replica(
            DBInstanceIdentifier="dr-standby-replica",
            SourceDBInstanceIdentifier=source["DBInstanceArn"],
            DBInstanceClass="db.r6g.large",
        )
        seeded.replica_identifier = "dr-standby-replica"
        seeded.source_arn = source["DBInstanceArn"]
        if dr_backup:
            rds_dr.create_db_snapshot(
                DBInstanceIdentifier="dr-standby-replica", DBSnapshotIdentifier="dr-copy"
            )
    else:
        s3 = cloud.client("s3", DR)
        s3.create_bucket(Bucket=REPO2, CreateBucketConfiguration={"LocationConstraint": DR})
        if dr_backup:
            s3.put_object(Bucket=REPO2, Key="pgbackrest/backup/main/backup.info", Body=b"[backup]")
    return seeded


def replica_lag(cloud: MotoCloud, seconds: float, identifier: str = "dr-standby-replica") -> None:
    cloud.client("cloudwatch", DR).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                "Timestamp": dt.datetime.now(dt.UTC),
                "Value": seconds,
                "Unit": "Seconds",
            }
        ],
    )


def outputs_for(seeded: Seeded, *, backend: str, primary: str, standby: str) -> dict[str, Any]:
    """Stack outputs shaped like __main__.py exports them."""
    control = {"failoverControl": {"bucket": seeded.control_bucket, "region": DR}}
    return {
        **(control if seeded.control_bucket else {}),
        "drStandby": {
            "backend": backend,
            "mode": "warm-standby",
            "primaryRegion": PRIMARY,
            "drRegion": DR,
            "zoneId": seeded.zone_id,
            "recordName": "db.music-platform.example",
            "healthCheckId": seeded.health_check_id,
            "primaryEndpoint": primary,
            "standbyEndpoint": standby,
            "port": 5432,
            "replicaIdentifier": seeded.replica_identifier,
        },
        "database": {
            "backend": backend,
            "rdsInstanceArn": seeded.source_arn,
            "replicationSlotName": "dr_standby",
            "repoBuckets": {"repo1": "prod-repo1", "repo2": REPO2},
            "dumpBuckets": {DR: REPO2},
        },
    }


def primary_record(cloud: MotoCloud, plan: FailoverPlan) -> dict[str, Any]:
    sets = cloud.client("route53", ROUTE53_REGION).list_resource_record_sets(
        HostedZoneId=plan.zone_id
    )["ResourceRecordSets"]
    (primary,) = [s for s in sets if s.get("Failover") == "PRIMARY"]
    return primary


def parameter(cloud: MotoCloud, region: str, name: str) -> str | None:
    ssm = cloud.client("ssm", region)
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
