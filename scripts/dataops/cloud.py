"""AWS operations of failover and failback, over an injected client factory.

Every call goes through ``Aws`` (region -> boto3 Session), so tests run this exact code against
moto, and botocore's Stubber where moto lacks an API (Secrets Manager StopReplicationToReplica).

Network fencing (``revoke_db_ingress``) revokes the old primary's database ingress rules and
returns them for failback to restore. It is a second layer, not the fence: security groups are
stateful, and removing a rule does not interrupt connections already tracked through it (Amazon
EC2 User Guide, "Security group connection tracking"); and in a region loss the primary
region's EC2/RDS API may not answer at all. The lease and the host's fence guard
(runbooks/fencing.py) are what hold without the old primary's region.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3

from scripts.common import DrctlError, ExitCode
from scripts.dataops.failover_plan import FailoverPlan
from scripts.dataops.lag import UNKNOWN_HELP, LagReading

SessionFactory = Callable[[str], Any]
ROUTE53_REGION = "us-east-1"


def default_sessions(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


class Aws:
    """boto3 clients per (service, region), from an injected session factory."""

    def __init__(
        self, sessions: SessionFactory = default_sessions, endpoint_url: str | None = None
    ):
        self._sessions = sessions
        self._endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            extra = {"endpoint_url": self._endpoint_url} if self._endpoint_url else {}
            session = self._sessions(region)
            self._clients[key] = session.client(service, region_name=region, **extra)
        return self._clients[key]


def check_dr_backups(plan: FailoverPlan, aws: Aws) -> dict[str, Any]:
    """Is there a recovery point in the DR region, should the promoted database fail too?"""
    spec = plan.dr_backup
    if not spec:
        return {"present": False, "where": "no DR backup location in the stack outputs"}
    if spec["kind"] == "s3":
        s3 = aws.client("s3", plan.dr_region)
        listing = s3.list_objects_v2(Bucket=spec["bucket"], Prefix=spec["prefix"], MaxKeys=100)
        objects = listing.get("Contents") or []
        where = f"s3://{spec['bucket']}/{spec['prefix']}"
        if not objects:
            return {"present": False, "where": where}
        newest = max(o["LastModified"] for o in objects)
        return {"present": True, "where": where, "newest": newest.isoformat()}
    rds = aws.client("rds", plan.dr_region)
    backups = rds.describe_db_instance_automated_backups().get("DBInstanceAutomatedBackups", [])
    replicated = [b for b in backups if b.get("DBInstanceArn") == spec["source_arn"]]
    if replicated:
        return {"present": True, "where": f"replicated automated backups in {plan.dr_region}"}
    # Copies of the source's snapshots, or snapshots of the replica itself; nothing unrelated.
    ours = {spec["source_arn"].rsplit(":", 1)[-1], plan.replica_identifier}
    snapshots = [
        s
        for s in rds.describe_db_snapshots().get("DBSnapshots", [])
        if s.get("DBInstanceIdentifier") in ours
    ]
    if snapshots:
        newest = max(s.get("SnapshotCreateTime") or dt.datetime.min for s in snapshots)
        return {
            "present": True,
            "where": f"{len(snapshots)} DB snapshot(s) in {plan.dr_region}",
            "newest": str(newest),
        }
    return {"present": False, "where": f"no automated backups or snapshots in {plan.dr_region}"}


def rds_replica_lag(plan: FailoverPlan, aws: Aws) -> LagReading:
    cw = aws.client("cloudwatch", plan.dr_region)
    end = dt.datetime.now(dt.UTC)
    stats = cw.get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName="ReplicaLag",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": plan.replica_identifier}],
        StartTime=end - dt.timedelta(minutes=5),
        EndTime=end + dt.timedelta(minutes=1),  # the current, still open period too
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(stats.get("Datapoints", []), key=lambda p: p["Timestamp"])
    if not points:
        return LagReading(
            None,
            None,
            False,
            "no ReplicaLag datapoint in the last 5 minutes",
            how_to_proceed=UNKNOWN_HELP,
        )
    # RDS computes ReplicaLag from the replica's replay; an idle source reports 0.
    latest = float(points[-1]["Maximum"])
    return LagReading(latest, None, False, "CloudWatch ReplicaLag (latest)", "cloudwatch")


def describe_instance(rds: Any, identifier: str) -> dict[str, Any]:
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def promote_rds(plan: FailoverPlan, aws: Aws, waiter_delay: int = 15) -> dict[str, Any]:
    rds = aws.client("rds", plan.dr_region)
    ident = plan.replica_identifier
    if not ident:
        raise DrctlError("the stack outputs name no DR replica", ExitCode.PRECONDITION_FAILED)
    instance = describe_instance(rds, ident)
    source = instance.get("ReadReplicaSourceDBInstanceIdentifier")
    if source:
        rds.promote_read_replica(
            DBInstanceIdentifier=ident, BackupRetentionPeriod=plan.pitr_window_days
        )
    waiter = rds.get_waiter("db_instance_available")
    waiter.wait(
        DBInstanceIdentifier=ident, WaiterConfig={"Delay": waiter_delay, "MaxAttempts": 120}
    )
    result = {"replica": ident, "was_replica_of": source, "already_promoted": not source}
    target_class = plan.full_instance_class
    if plan.mode == "pilot-light" and target_class:
        # A pilot light replicates on a small class; production load needs the full one.
        current = describe_instance(rds, ident)["DBInstanceClass"]
        if current != target_class:
            rds.modify_db_instance(
                DBInstanceIdentifier=ident, DBInstanceClass=target_class, ApplyImmediately=True
            )
            waiter.wait(
                DBInstanceIdentifier=ident,
                WaiterConfig={"Delay": waiter_delay, "MaxAttempts": 240},
            )
        result["scaled"] = {"from": current, "to": target_class}
    return result


def list_namespace_secrets(sm: Any, namespace: str) -> list[dict[str, Any]]:
    found = []
    for page in sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [f"{namespace}/"]}]
    ):
        found += [s for s in page["SecretList"] if s["Name"].startswith(f"{namespace}/")]
    return sorted(found, key=lambda s: s["Name"])


def promote_secret_replicas(plan: FailoverPlan, aws: Aws) -> dict[str, Any]:
    """Make the DR copies standalone secrets, so they stay writable without the primary region."""
    sm = aws.client("secretsmanager", plan.dr_region)
    promoted, standalone = [], []
    for secret in list_namespace_secrets(sm, plan.namespace):
        detail = sm.describe_secret(SecretId=secret["ARN"])
        primary_region = detail.get("PrimaryRegion")
        if primary_region and primary_region != plan.dr_region:
            sm.stop_replication_to_replica(SecretId=detail["ARN"])
            promoted.append(detail["Name"])
        else:
            standalone.append(detail["Name"])
    return {"promoted": promoted, "already_standalone": standalone}


def point_config_at(
    plan: FailoverPlan, aws: Aws, region: str, host: str, required: Sequence[str]
) -> dict[str, Any]:
    """Write the runtime parameters in both regions; a region in ``required`` must succeed."""
    written, failed = [], {}
    for target in (plan.dr_region, plan.primary_region):
        ssm = aws.client("ssm", target)
        try:
            for name, value in (
                (plan.active_region_parameter, region),
                (plan.database_host_parameter, host),
            ):
                ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
            written.append(target)
        except Exception as exc:
            if target in required:
                raise
            # The old primary region may be the one that is down; the DR copy is what counts.
            failed[target] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return {"active_region": region, "database_host": host, "written": written, "failed": failed}


def _normalise(name: str) -> str:
    return name.rstrip(".").lower()


def failover_record_sets(plan: FailoverPlan, aws: Aws) -> dict[str, dict[str, Any]]:
    r53 = aws.client("route53", ROUTE53_REGION)
    listing = r53.list_resource_record_sets(
        HostedZoneId=plan.zone_id, StartRecordName=plan.record_name, MaxItems="20"
    )
    found = {}
    for rs in listing["ResourceRecordSets"]:
        if _normalise(rs["Name"]) == _normalise(plan.record_name) and rs.get("Failover"):
            found[rs["Failover"]] = rs
    if "PRIMARY" not in found or "SECONDARY" not in found:
        raise DrctlError(
            f"zone {plan.zone_id} has no PRIMARY/SECONDARY failover records named "
            f"{plan.record_name}; found {sorted(found)}",
            ExitCode.PRECONDITION_FAILED,
        )
    return found


def upsert_primary_record(
    plan: FailoverPlan, aws: Aws, target: str, health_check_id: str | None
) -> dict[str, Any]:
    sets = failover_record_sets(plan, aws)
    current = sets["PRIMARY"]
    values = [r["Value"] for r in current.get("ResourceRecords", [])]
    previous = {"records": values, "health_check_id": current.get("HealthCheckId")}
    if values == [target] and current.get("HealthCheckId") == health_check_id:
        return {"changed": False, "previous": previous, "now": target}
    record = {
        "Name": current["Name"],
        "Type": current["Type"],
        "SetIdentifier": current["SetIdentifier"],
        "Failover": "PRIMARY",
        "TTL": current.get("TTL", 60),
        "ResourceRecords": [{"Value": target}],
    }
    if health_check_id:
        record["HealthCheckId"] = health_check_id
    r53 = aws.client("route53", ROUTE53_REGION)
    change = r53.change_resource_record_sets(
        HostedZoneId=plan.zone_id,
        ChangeBatch={
            "Comment": f"drctl {plan.stack}: PRIMARY -> {target}",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}],
        },
    )["ChangeInfo"]
    deadline = time.monotonic() + 120
    status = change["Status"]
    while status != "INSYNC" and time.monotonic() < deadline:
        time.sleep(2)
        status = r53.get_change(Id=change["Id"])["ChangeInfo"]["Status"]
    return {
        "changed": True,
        "previous": previous,
        "now": target,
        "change_id": change["Id"],
        "status": status,
    }


def secondary_target(plan: FailoverPlan, aws: Aws) -> str:
    sets = failover_record_sets(plan, aws)
    return sets["SECONDARY"]["ResourceRecords"][0]["Value"]


def rejoin_secret_replicas(plan: FailoverPlan, aws: Aws) -> dict[str, Any]:
    """Copy DR-side secret changes back to the primary region, then replicate to DR again."""
    sm_dr = aws.client("secretsmanager", plan.dr_region)
    sm_primary = aws.client("secretsmanager", plan.primary_region)
    rejoined, synced = [], []
    for secret in list_namespace_secrets(sm_dr, plan.namespace):
        detail = sm_dr.describe_secret(SecretId=secret["ARN"])
        if detail.get("PrimaryRegion") not in (None, plan.dr_region):
            continue  # still a replica: nothing to rejoin
        name = detail["Name"]
        dr_value = sm_dr.get_secret_value(SecretId=name)
        primary_value = sm_primary.get_secret_value(SecretId=name)
        if _secret_digest(dr_value) != _secret_digest(primary_value):
            # Rotated or edited in DR while it served: the DR value is the live one.
            payload = (
                {"SecretString": dr_value["SecretString"]}
                if "SecretString" in dr_value
                else {"SecretBinary": dr_value["SecretBinary"]}
            )
            sm_primary.put_secret_value(SecretId=name, **payload)
            synced.append(name)
        region = {"Region": plan.dr_region}
        if detail.get("KmsKeyId"):
            region["KmsKeyId"] = detail["KmsKeyId"]
        sm_primary.replicate_secret_to_regions(
            SecretId=name, AddReplicaRegions=[region], ForceOverwriteReplicaSecret=True
        )
        rejoined.append(name)
    return {"rejoined": rejoined, "values_copied_back": synced}


def _secret_digest(value: Mapping[str, Any]) -> str:
    data = value.get("SecretString")
    raw = data.encode() if data is not None else bytes(value.get("SecretBinary") or b"")
    return hashlib.sha256(raw).hexdigest()


# -- network fencing -------------------------------------------------------------------------------


def primary_security_groups(plan: FailoverPlan, aws: Aws) -> tuple[list[str], str]:
    """The old primary's security groups and how they were found (outputs, RDS, or its ENI)."""
    if plan.primary_security_group_ids:
        return list(plan.primary_security_group_ids), "stack outputs"
    if plan.backend == "rds" and plan.source_arn:
        ident = plan.source_arn.rsplit(":", 1)[-1]
        instance = describe_instance(aws.client("rds", plan.primary_region), ident)
        groups = [g["VpcSecurityGroupId"] for g in instance.get("VpcSecurityGroups", [])]
        return groups, f"RDS instance {ident}"
    if plan.backend == "self-managed":
        try:
            address = socket.getaddrinfo(plan.primary_endpoint, plan.port)[0][4][0]
        except OSError as exc:
            return [], f"{plan.primary_endpoint} does not resolve ({exc})"
        enis = aws.client("ec2", plan.primary_region).describe_network_interfaces(
            Filters=[{"Name": "addresses.private-ip-address", "Values": [address]}]
        )["NetworkInterfaces"]
        groups = sorted({g["GroupId"] for eni in enis for g in eni.get("Groups", [])})
        return groups, f"network interface of {address}"
    return [], f"{plan.backend}: the primary's network is not ours to fence"


def _covers(rule: Mapping[str, Any], port: int) -> bool:
    if rule.get("IpProtocol") == "-1":
        return True
    if rule.get("IpProtocol") not in ("tcp", "6"):
        return False
    return int(rule.get("FromPort", -1)) <= port <= int(rule.get("ToPort", -1))


def revoke_db_ingress(aws: Aws, region: str, group_ids: Sequence[str], port: int) -> list[dict]:
    """Revoke every ingress rule of ``group_ids`` that admits ``port``; returns what was revoked
    (the rule definitions, so failback can put them back)."""
    if not group_ids:
        return []
    ec2 = aws.client("ec2", region)
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": list(group_ids)}]
    )["SecurityGroupRules"]
    revoked = [r for r in rules if not r.get("IsEgress") and _covers(r, port)]
    by_group: dict[str, list[str]] = {}
    for rule in revoked:
        by_group.setdefault(rule["GroupId"], []).append(rule["SecurityGroupRuleId"])
    for group, ids in by_group.items():
        ec2.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=ids)
    keep = ("GroupId", "IpProtocol", "FromPort", "ToPort", "CidrIpv4", "CidrIpv6", "Description")
    out = []
    for rule in revoked:
        entry = {k: rule[k] for k in keep if rule.get(k) is not None}
        if rule.get("ReferencedGroupInfo"):
            entry["ReferencedGroupId"] = rule["ReferencedGroupInfo"]["GroupId"]
        out.append(entry)
    return out


def restore_db_ingress(aws: Aws, region: str, rules: Sequence[Mapping[str, Any]]) -> int:
    """Put back rules ``revoke_db_ingress`` removed (failback); returns how many."""
    ec2 = aws.client("ec2", region)
    for rule in rules:
        permission: dict[str, Any] = {
            "IpProtocol": rule["IpProtocol"],
            "FromPort": rule.get("FromPort", -1),
            "ToPort": rule.get("ToPort", -1),
        }
        if rule.get("CidrIpv4"):
            permission["IpRanges"] = [{"CidrIp": rule["CidrIpv4"]}]
        if rule.get("CidrIpv6"):
            permission["Ipv6Ranges"] = [{"CidrIpv6": rule["CidrIpv6"]}]
        if rule.get("ReferencedGroupId"):
            permission["UserIdGroupPairs"] = [{"GroupId": rule["ReferencedGroupId"]}]
        ec2.authorize_security_group_ingress(GroupId=rule["GroupId"], IpPermissions=[permission])
    return len(rules)
