"""DrStandby: the DR region kept ready to take over, sized from the recovery time objectives.

Two postures, chosen by ``choose_standby_mode`` from the tightest RTO of any data class:

- **warm standby**: a scaled-down but fully working copy. The database standby runs on the same
  instance class as the primary and the app tier keeps one instance up, so failover is a promotion
  and a DNS switch (minutes).
- **pilot light**: the data keeps replicating (the RPO needs that in either posture) on the
  smallest instance class that keeps up, and app compute stays at zero. Failover must first scale
  the database up and start compute from nothing, which takes ``pilot_light_recovery_s``.

So a class whose RTO does not leave room for that scale-up forces a warm standby. The DR region
always gets: the network of ``DrNetwork`` (private subnets in two Availability Zones, egress, and
the path the backend's replication needs), the database standby of the chosen backend,
PRIMARY/SECONDARY Route 53 failover records whose health check Route 53 can actually evaluate
(``components/health_probe.py``: an in-VPC probe feeds a CloudWatch alarm in the DR region), and a
health-check alarm in us-east-1 (the only region with Route 53 metrics) that pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import health_probe
from components.dr_network import DrNetwork, DrNetworkArgs, PrimaryNetwork, subnet_cidrs
from components.dr_settings import (  # noqa: F401  (re-exported: callers import them here)
    DEFAULT_PILOT_LIGHT_RECOVERY,
    DEFAULT_RECORD_NAME,
    DEFAULT_VPC_CIDR,
    DrSettings,
    StandbyMode,
    choose_standby_mode,
    load_dr_settings,
    parse_dr_settings,
    split_endpoint,
)
from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import (
    HOUR,
    ConfigError,
    Objectives,
    class_tags,
    format_duration,
)
from policy.rules import PILOT_LIGHT, WARM_STANDBY

ROUTE53_METRICS_REGION = "us-east-1"
private_subnet_cidrs = subnet_cidrs  # kept for callers of the old name


@dataclass
class StandbyDatabase:
    """What the primary database exposes to its DR standby (PostgresBackup's outputs).

    source_arn: rds only; ARN of the source instance (a cross-region replica needs the ARN).
    replication_slot_name: self-managed only; the physical slot the standby streams from.
    publication_name: supabase only; the publication the DR-region subscriber subscribes to.
    subscription_name: supabase only; the subscription on the DR-region subscriber.
    replication_user: role the standby connects as; default "replicator" (its password lives in
        a passfile on the standby host, never in this config).
    port: database port; default 5432.
    instance_class: class of the primary; the warm standby uses it; default "db.r6g.large".
    pilot_light_instance_class: the pilot-light standby's class; default "db.t4g.medium".
    kms_key_arn: rds only; DR-region key for the replica; default: the component makes a
        multi-Region key in the DR region.
    dbname: database the sample checks and the subscription use; default "postgres".
    standby_host: self-managed/supabase; the DR-region Postgres host when it already has a
        name (supabase: the subscriber PostgresBackup configures); default: the component
        declares a fixed private address (ENI) in the DR VPC for the standby host to claim.
    """

    source_arn: pulumi.Input[str] | None = None
    replication_slot_name: pulumi.Input[str] | None = None
    publication_name: pulumi.Input[str] | None = None
    subscription_name: pulumi.Input[str] | None = None
    replication_user: str = "replicator"
    port: int = 5432
    instance_class: str = "db.r6g.large"
    pilot_light_instance_class: str = "db.t4g.medium"
    kms_key_arn: pulumi.Input[str] | None = None
    dbname: str = "postgres"
    standby_host: pulumi.Input[str] | None = None


_REQUIRED_INPUT = {
    "rds": ("source_arn", "the source instance ARN (PostgresBackup.rds_instance_arn)"),
    "self-managed": (
        "replication_slot_name",
        "the physical slot name (PostgresBackup.replication_slot_name)",
    ),
    "supabase": ("publication_name", "the publication (PostgresBackup.publication_name)"),
}


@dataclass
class DrStandbyArgs:
    """Arguments of DrStandby.

    objectives: the stack's Objectives; regions, backend and class RTOs come from here.
    alarm_topic_arns: region -> encrypted SNS topic (AlertTopics.topic_arns); must include
        us-east-1 (Route 53 metrics) and the DR region.
    primary_endpoint: the primary database's DNS name, optionally with ':port'.
    database: StandbyDatabase; default: nothing but defaults, which only suits no backend (the
        backend's required field is checked).
    settings: DrSettings from stack config; default DrSettings() (documented there).
    az_count: private subnets, one per Availability Zone; default 2 (the minimum).
    adopt_zone_id: a hosted zone id to use instead of settings.zone_id or creating one; a
        rebuild stack passes prod's zone; default none.
    take_over_records: overwrite records another stack created (a rebuild stack takes over
        prod's records); default False.
    primary_network: PrimaryNetwork the self-managed standby peers with; required for that
        backend (from config, or a rebuild stack's source), unused by the others.
    """

    objectives: Objectives
    alarm_topic_arns: Mapping[str, pulumi.Input[str]]
    primary_endpoint: pulumi.Input[str]
    database: StandbyDatabase = field(default_factory=StandbyDatabase)
    settings: DrSettings = field(default_factory=DrSettings)
    az_count: int = 2
    adopt_zone_id: pulumi.Input[str] | None = None
    take_over_records: bool = False
    primary_network: PrimaryNetwork | None = None


class DrStandby(pulumi.ComponentResource):
    """Outputs: ``mode``, ``mode_reason``, ``vpc_id``, ``private_subnet_ids``,
    ``app_security_group_id``, ``db_security_group_id``, ``standby_endpoint``, ``zone_id``,
    ``record_fqdn``, ``health_check_id``, ``replica_arn`` (rds), ``standby_config`` (self-managed
    files), ``subscription_target`` (supabase), ``app_min_capacity``, ``failover_outputs`` (what
    ``drctl failover`` reads), ``network_outputs`` (what a rebuild stack peers with),
    ``probe_artefacts`` (the primary probe's systemd units), ``probe_policy_arn``.
    """

    TYPE = "platform-dr:dr_standby:DrStandby"

    def __init__(self, name: str, args: DrStandbyArgs, opts: pulumi.ResourceOptions | None = None):
        obj = args.objectives
        backend = obj.db_backend
        required, what = _REQUIRED_INPUT[backend]
        if getattr(args.database, required) is None:
            raise ConfigError(f"database.{required}", None, f"{what} for dbBackend={backend}")
        for region in (ROUTE53_METRICS_REGION, obj.regions.dr):
            if region not in args.alarm_topic_arns:
                raise ConfigError(
                    "alarm_topic_arns", sorted(args.alarm_topic_arns), f"a topic in {region}"
                )
        if args.az_count < 2:
            raise ConfigError("az_count", args.az_count, "at least 2 Availability Zones")
        if not args.settings.zone_name:
            raise ConfigError("dnsZoneName", None, "the domain of the failover records' zone")
        self.standby_mode = choose_standby_mode(obj, args.settings.pilot_light_recovery_s)
        # Posture reads the choice and the reason from these (registered as outputs too:
        # CrossGuard's stack policies see a component's outputs, not its inputs).
        identity = {
            "mode": self.standby_mode.mode,
            "reason": self.standby_mode.reason,
            "drivingClass": self.standby_mode.driving_class,
            "backend": backend,
            "drRegion": obj.regions.dr,
            "pilotLightRecoveryS": args.settings.pilot_light_recovery_s,
        }
        super().__init__(self.TYPE, name, identity, opts)
        child = pulumi.ResourceOptions(parent=self)
        dr = obj.regions.dr
        self.mode = self.standby_mode.mode
        self.mode_reason = self.standby_mode.reason
        self.app_min_capacity = self.standby_mode.app_min_capacity
        db = args.database

        self._network(name, dr, args, child)
        host_port = pulumi.Output.from_input(args.primary_endpoint).apply(
            lambda e: split_endpoint(e, db.port)
        )
        self.primary_host = host_port.apply(lambda hp: hp[0])
        self.primary_port = host_port.apply(lambda hp: hp[1])

        self.replica_arn: pulumi.Output[str] | None = None
        self.standby_config: pulumi.Output[dict] | None = None
        self.subscription_target: pulumi.Output[dict] | None = None
        if backend == "rds":
            self._rds_replica(name, dr, args, child)
        else:
            self._standby_host(name, dr, args, child)

        self._health(name, dr, args, child)
        self._dns(name, args, child)
        self._alarms(name, dr, args, child)

        self.failover_outputs = pulumi.Output.all(
            zone=self.zone_id,
            record=self.record_fqdn,
            hc=self.health_check_id,
            primary=self.primary_host,
            port=self.primary_port,
            standby=self.standby_endpoint,
            replica=self.replica_id if backend == "rds" else None,
        ).apply(
            lambda v: {
                "backend": backend,
                "mode": self.mode,
                "primaryRegion": obj.regions.primary,
                "drRegion": dr,
                "zoneId": v["zone"],
                "recordName": v["record"],
                "healthCheckId": v["hc"],
                "primaryEndpoint": v["primary"],
                "standbyEndpoint": v["standby"],
                "port": v["port"],
                "replicaIdentifier": v["replica"],
                # What a pilot-light standby is scaled to on failover.
                "fullInstanceClass": db.instance_class,
            }
        )
        self.network_outputs = pulumi.Output.all(
            self.vpc_id, self.network.private_route_table_id, self.db_security_group_id
        ).apply(
            lambda v: {
                "region": dr,
                "vpcId": v[0],
                "vpcCidr": args.settings.vpc_cidr,
                "privateRouteTableId": v[1],
                "dbSecurityGroupId": v[2],
            }
        )
        self.register_outputs(
            {
                **identity,
                "mode_reason": self.mode_reason,
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "standby_endpoint": self.standby_endpoint,
                "zone_id": self.zone_id,
                "health_check_id": self.health_check_id,
                "failover_outputs": self.failover_outputs,
            }
        )

    # -- network -----------------------------------------------------------------------------

    def _network(self, name: str, dr: str, args: DrStandbyArgs, child) -> None:
        self.network = DrNetwork(
            f"{name}-network",
            DrNetworkArgs(
                objectives=args.objectives,
                vpc_cidr=args.settings.vpc_cidr,
                db_port=args.database.port,
                primary=args.primary_network,
                az_count=args.az_count,
            ),
            opts=child,
        )
        self.vpc_id = self.network.vpc_id
        self.subnets = self.network.subnets
        self.private_subnet_ids = self.network.private_subnet_ids
        self.app_security_group_id = self.network.app_security_group_id
        self.db_security_group_id = self.network.db_security_group_id

    # -- database standby --------------------------------------------------------------------

    def _instance_class(self, db: StandbyDatabase) -> str:
        if self.mode == WARM_STANDBY:
            return db.instance_class
        return db.pilot_light_instance_class

    def _rds_replica(self, name: str, dr: str, args: DrStandbyArgs, child) -> None:
        obj, db = args.objectives, args.database
        key_arn = db.kms_key_arn
        if key_arn is None:
            key = MultiRegionKey(
                f"{name}-key",
                MultiRegionKeyArgs(
                    regions=[dr],
                    description="platform-dr DR database replica",
                    data_class="critical",
                    dataset="database",
                    # RDS uses the key through grants it creates with the caller's IAM
                    # permissions (the account statement), not as a service principal.
                ),
                opts=child,
            )
            key_arn = key.arns[dr]
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-db-subnets",
            region=dr,
            subnet_ids=self.private_subnet_ids,
            description="private subnets of the DR database standby",
            tags=class_tags("critical", "database"),
            opts=child,
        )
        replica = aws.rds.Instance(
            f"{name}-replica",
            region=dr,
            replicate_source_db=db.source_arn,
            instance_class=self._instance_class(db),
            storage_encrypted=True,
            kms_key_id=key_arn,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[self.db_security_group_id],
            publicly_accessible=False,
            multi_az=self.mode == WARM_STANDBY,
            # Its own backups, so PITR keeps working the moment it is promoted.
            backup_retention_period=obj.pitr_window_days,
            copy_tags_to_snapshot=True,
            deletion_protection=obj.protect_data,
            skip_final_snapshot=not obj.protect_data,
            final_snapshot_identifier=f"{name}-replica-final" if obj.protect_data else None,
            auto_minor_version_upgrade=True,
            apply_immediately=True,
            tags=class_tags("critical", "database", {"dr-role": "standby"}),
            opts=pulumi.ResourceOptions(parent=self, protect=obj.protect_data),
        )
        self.replica_arn = replica.arn
        self.replica_id = replica.identifier
        self.standby_endpoint = replica.address
        # The replica is asynchronous: nothing else bounds what a region loss costs. ReplicaLag
        # above the critical RPO pages within a minute, so the declared worst case is that RPO
        # (the rule in policy/rules.py reads this alarm). A replica that stops reporting is not
        # known to be in sync, so missing data breaches.
        critical = obj.of("critical")
        aws.cloudwatch.MetricAlarm(
            f"{name}-replica-lag",
            region=dr,
            namespace="AWS/RDS",
            metric_name="ReplicaLag",
            dimensions={"DBInstanceIdentifier": replica.identifier},
            statistic="Maximum",
            period=60,
            evaluation_periods=1,
            threshold=critical.rpo_s,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="breaching",
            alarm_description=(
                f"DR replica lag above the critical RPO ({format_duration(critical.rpo_s)}), or "
                "the replica stopped reporting it"
            ),
            alarm_actions=[args.alarm_topic_arns[dr]],
            ok_actions=[args.alarm_topic_arns[dr]],
            tags=class_tags("critical", "database"),
            opts=child,
        )

    def _standby_host(self, name: str, dr: str, args: DrStandbyArgs, child) -> None:
        """A fixed private address the DR database host claims, and what it runs there."""
        db, obj = args.database, args.objectives
        if db.standby_host is not None:
            self.standby_endpoint = pulumi.Output.from_input(db.standby_host)
        else:
            eni = aws.ec2.NetworkInterface(
                f"{name}-db-address",
                region=dr,
                subnet_id=self.subnets[0].id,
                security_groups=[self.db_security_group_id],
                description="address of the DR database host (attached by the host at boot)",
                tags=class_tags("critical", "database", {"dr-role": "standby"}),
                opts=child,
            )
            self.standby_endpoint = eni.private_ip
        self.replica_id = None
        if obj.db_backend == "self-managed":
            self.standby_config = pulumi.Output.all(
                self.primary_host, self.primary_port, db.replication_slot_name
            ).apply(lambda v: render_standby_config(v[0], v[1], db.replication_user, v[2]))
        else:
            self.subscription_target = pulumi.Output.all(
                self.standby_endpoint, db.publication_name, db.subscription_name
            ).apply(
                lambda v: {
                    "host": v[0],
                    "port": db.port,
                    "dbname": db.dbname,
                    "publication": v[1],
                    "subscription": v[2],
                }
            )

    # -- health, DNS and alarms --------------------------------------------------------------

    def _health(self, name: str, dr: str, args: DrStandbyArgs, child) -> None:
        """A health check Route 53 can evaluate: the probe's alarm (components/health_probe.py)."""
        settings = args.settings
        fqdn = f"{settings.record_name}.{settings.zone_name}"
        periods = self.standby_mode.detection_periods
        topic = args.alarm_topic_arns[dr]
        alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-primary-down",
            region=dr,
            namespace=health_probe.PROBE_NAMESPACE,
            metric_name=health_probe.PROBE_METRIC,
            dimensions={health_probe.PROBE_DIMENSION: fqdn},
            statistic="Minimum",
            period=60,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            threshold=1,
            comparison_operator="LessThanThreshold",
            # A probe that stops publishing (its host or region is gone) is a failed probe.
            treat_missing_data="breaching",
            alarm_description=(
                f"the primary database behind {fqdn} refused connections, or its in-VPC probe "
                f"went silent, for {periods} minutes; Route 53 fails the record over"
            ),
            alarm_actions=[topic],
            ok_actions=[topic],
            tags=class_tags("critical", "dr-standby"),
            opts=child,
        )
        self.health_check = aws.route53.HealthCheck(
            f"{name}-primary-check",
            type="CLOUDWATCH_METRIC",
            cloudwatch_alarm_name=alarm.name,
            cloudwatch_alarm_region=dr,
            # No data from CloudWatch (the DR region's monitoring is down) is not a reason to
            # move writers: keep the last known state.
            insufficient_data_health_status="LastKnownStatus",
            tags={**class_tags("critical", "dr-standby"), "Name": f"{name}-primary"},
            opts=child,
        )
        self.health_check_id = self.health_check.id
        self.probe_artefacts = pulumi.Output.all(self.primary_host, self.primary_port).apply(
            lambda v: health_probe.render_probe_units(v[0], v[1], dr, fqdn)
        )
        probe_policy = aws.iam.Policy(
            f"{name}-probe-publish",
            description=f"attach to the role of the host that probes the primary behind {fqdn}",
            policy=health_probe.probe_publish_policy(),
            tags=class_tags("critical", "dr-standby"),
            opts=child,
        )
        self.probe_policy_arn = probe_policy.arn

    def _dns(self, name: str, args: DrStandbyArgs, child) -> None:
        settings = args.settings
        zone_id = args.adopt_zone_id or settings.zone_id
        if not zone_id:
            zone = aws.route53.Zone(
                f"{name}-zone",
                name=settings.zone_name,
                comment="platform-dr database failover records",
                tags=class_tags("critical", "dr-standby"),
                opts=pulumi.ResourceOptions(parent=self, protect=args.objectives.protect_data),
            )
            zone_id = zone.id  # a hosted zone's resource id is its zone id
        self.zone_id = pulumi.Output.from_input(zone_id)
        fqdn = f"{settings.record_name}.{settings.zone_name}"
        self.record_fqdn = pulumi.Output.from_input(fqdn)
        check = self.health_check
        records_opts = pulumi.ResourceOptions(parent=self)
        secondary_target: pulumi.Input[str] = self.standby_endpoint
        if args.objectives.db_backend != "rds" and args.database.standby_host is None:
            # Failover records of one name must share a type; the host address gets its own A
            # record and the SECONDARY record is a CNAME to it, like the PRIMARY one.
            standby_name = f"{settings.record_name}-standby.{settings.zone_name}"
            aws.route53.Record(
                f"{name}-standby-address",
                zone_id=self.zone_id,
                name=standby_name,
                type="A",
                ttl=60,
                records=[self.standby_endpoint],
                allow_overwrite=args.take_over_records,
                opts=records_opts,
            )
            secondary_target = standby_name
        for role, target, check_id in (
            ("PRIMARY", self.primary_host, check.id),
            ("SECONDARY", secondary_target, None),
        ):
            aws.route53.Record(
                f"{name}-{role.lower()}",
                zone_id=self.zone_id,
                name=fqdn,
                type="CNAME",
                ttl=60,
                records=[target],
                set_identifier=role.lower(),
                failover_routing_policies=[{"type": role}],
                health_check_id=check_id,
                allow_overwrite=args.take_over_records,
                opts=records_opts,
            )

    def _alarms(self, name: str, dr: str, args: DrStandbyArgs, child) -> None:
        topic = args.alarm_topic_arns[ROUTE53_METRICS_REGION]
        aws.cloudwatch.MetricAlarm(
            f"{name}-primary-unhealthy",
            region=ROUTE53_METRICS_REGION,
            namespace="AWS/Route53",
            metric_name="HealthCheckStatus",
            dimensions={"HealthCheckId": self.health_check_id},
            statistic="Minimum",
            period=60,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="LessThanThreshold",
            # No data from the health checkers is as bad as a failed check.
            treat_missing_data="breaching",
            alarm_description="primary database endpoint failed its Route 53 health check; "
            "consider `drctl failover`",
            alarm_actions=[topic],
            ok_actions=[topic],
            tags=class_tags("critical", "dr-standby"),
            opts=child,
        )


def render_standby_config(
    primary_host: str, primary_port: int, replication_user: str, slot: str
) -> dict[str, str]:
    """The files that make a base backup a streaming standby of the primary, through the slot.

    The password is never here: libpq reads it from the standby host's passfile.
    """
    conninfo = (
        f"host={primary_host} port={primary_port} user={replication_user} "
        "application_name=dr_standby sslmode=verify-full passfile=/var/lib/postgresql/.pgpass"
    )
    text = (
        "# Rendered by platform-dr DrStandby. Append to postgresql.auto.conf of the DR standby.\n"
        f"primary_conninfo = '{conninfo}'\n"
        f"primary_slot_name = '{slot}'\n"
        "hot_standby = on\n"
        "hot_standby_feedback = on\n"
        "recovery_target_timeline = 'latest'\n"
        "wal_receiver_timeout = '30s'\n"
    )
    return {"standby.conf": text, "standby.signal": ""}


__all__ = [
    "DrSettings",
    "DrStandby",
    "DrStandbyArgs",
    "HOUR",
    "PILOT_LIGHT",
    "StandbyDatabase",
    "StandbyMode",
    "WARM_STANDBY",
    "choose_standby_mode",
    "load_dr_settings",
    "parse_dr_settings",
    "render_standby_config",
]
