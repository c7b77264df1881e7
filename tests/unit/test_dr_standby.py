"""DrStandby under Pulumi mocks: the sizing decision, the network, each backend's standby, DNS.

The component is declared on its own through the same RecordingMocks the stack evaluations use,
so every input below is what the real pulumi_aws classes accepted.
"""

from __future__ import annotations

import contextvars

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.dr_network import PrimaryNetwork
from components.dr_standby import (
    PILOT_LIGHT,
    WARM_STANDBY,
    DrSettings,
    DrStandby,
    DrStandbyArgs,
    StandbyDatabase,
    choose_standby_mode,
    parse_dr_settings,
    private_subnet_cidrs,
    render_standby_config,
    split_endpoint,
)
from components.objectives import ConfigError, parse_objectives
from scripts.local.evaluate import RecordingMocks, evaluate_stack

BASE = {
    "primaryRegion": "us-east-1",
    "drRegion": "us-west-2",
    "thirdRegion": "eu-west-1",
}
TOPICS = {
    r: f"arn:aws:sns:{r}:111122223333:alerts" for r in ("us-east-1", "us-west-2", "eu-west-1")
}
DATABASES = {
    "rds": StandbyDatabase(source_arn="arn:aws:rds:us-east-1:111122223333:db:prod-db"),
    "self-managed": StandbyDatabase(replication_slot_name="dr_standby"),
    "supabase": StandbyDatabase(publication_name="dr_pub", subscription_name="dr_sub"),
}


ZONE = "music-platform.example"
SETTINGS = DrSettings(zone_name=ZONE)
PRIMARY = PrimaryNetwork(
    "us-east-1", "vpc-0e7a3b1c2d4f50617", "10.40.0.0/16", ["rtb-0a", "rtb-0b"], "sg-0e7a"
)


def objectives(**overrides):
    return parse_objectives({**BASE, **overrides}, "test")


def standby_args(obj, topics, endpoint, database, **extra):
    """DrStandbyArgs with what every stack config must give (zone; the primary network)."""
    extra.setdefault("settings", SETTINGS)
    if obj.db_backend == "self-managed":
        extra.setdefault("primary_network", PRIMARY)
    return DrStandbyArgs(
        objectives=obj,
        alarm_topic_arns=topics,
        primary_endpoint=endpoint,
        database=database,
        **extra,
    )


def declare(build):
    """Run ``build()`` as a Pulumi program under mocks; return (records, value build returned)."""
    mocks = RecordingMocks()
    holder = {}

    def run():
        pulumi.runtime.set_mocks(mocks, project="platform-dr", stack="test", preview=False)
        pulumi_settings.SETTINGS.rpc_manager.clear()

        def program():
            holder["component"] = build()

        _sync_await(run_pulumi_func(program))

    contextvars.Context().run(run)
    return mocks.records, holder["component"]


def resolve(output):
    return contextvars.Context().run(lambda: _sync_await(pulumi.Output.from_input(output).future()))


def standby(backend="self-managed", endpoint="db.primary.example.com:5432", **obj_overrides):
    obj = objectives(dbBackend=backend, **obj_overrides)
    return declare(lambda: DrStandby("dr", standby_args(obj, TOPICS, endpoint, DATABASES[backend])))


def by_type(records, type_token):
    return [r for r in records if r.type == type_token]


def named(records, name):
    (match,) = [r for r in records if r.name == name]
    return match


# -- the sizing decision -------------------------------------------------------------------------


def test_spec_defaults_give_a_warm_standby_because_critical_rto_is_one_hour():
    mode = choose_standby_mode(objectives(), 3600)
    assert mode.mode == WARM_STANDBY and mode.driving_class == "critical"
    assert "critical RTO 1h" in mode.reason and mode.app_min_capacity == 1


def test_relaxed_rtos_give_a_pilot_light_with_compute_at_zero():
    mode = choose_standby_mode(objectives(criticalRto="4h", importantRto="8h"), 3600)
    assert mode.mode == PILOT_LIGHT and mode.app_min_capacity == 0
    assert "critical, 4h" in mode.reason
    # The boundary: an RTO equal to the scale-up time leaves no margin, so it is warm.
    assert choose_standby_mode(objectives(criticalRto="4h"), 4 * 3600).mode == WARM_STANDBY


def test_the_tightest_class_drives_the_choice_whatever_its_name():
    mode = choose_standby_mode(objectives(criticalRto="6h", operationalRto="30m"), 3600)
    assert mode.mode == WARM_STANDBY and mode.driving_class == "operational"


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("drVpcCidr", "8.8.0.0/16", "private IPv4 network"),
        ("drVpcCidr", "10.0.0.0/8", "/16 to /24"),
        ("drVpcCidr", "banana", "IPv4 network"),
        ("dnsZoneName", "not a domain", "DNS domain name"),
        ("dbRecordName", "db.primary", "one DNS label"),
        ("dnsZoneId", "zone-1", "hosted zone id"),
        ("pilotLightRecovery", "0m", "positive duration"),
    ],
)
def test_bad_dr_settings_name_the_key_the_value_and_what_is_allowed(key, value, needle):
    with pytest.raises(ConfigError) as raised:
        parse_dr_settings({key: value})
    assert raised.value.key == key and needle in str(raised.value)
    assert repr(value.lower() if key != "drVpcCidr" else value) in str(raised.value) or (
        value in str(raised.value)
    )


def test_dr_settings_defaults_and_values():
    # No zone name: whether one is required is the objectives' call (check_infrastructure_keys).
    assert parse_dr_settings({}) == DrSettings() and DrSettings().zone_name == ""
    s = parse_dr_settings({"pilotLightRecovery": "2h", "dnsZoneName": "Example.COM."})
    assert s.pilot_light_recovery_s == 7200 and s.zone_name == "example.com"


def test_endpoint_and_subnet_helpers():
    assert split_endpoint("db.example.com:6543", 5432) == ("db.example.com", 6543)
    assert split_endpoint("db.example.com", 5432) == ("db.example.com", 5432)
    assert private_subnet_cidrs("10.42.0.0/16", 2) == ["10.42.0.0/20", "10.42.16.0/20"]


def test_standby_config_uses_the_slot_and_never_a_password():
    files = render_standby_config("db.example.com", 5432, "replicator", "dr_standby")
    conf = files["standby.conf"]
    assert "primary_slot_name = 'dr_standby'" in conf
    assert "host=db.example.com port=5432 user=replicator" in conf
    assert "password" not in conf.replace("passfile", "")
    assert files["standby.signal"] == ""


# -- the declared resources ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(DATABASES))
def test_network_private_subnets_in_two_zones_and_db_port_from_app_only(backend):
    records, _ = standby(backend)
    (vpc,) = by_type(records, "aws:ec2/vpc:Vpc")
    assert vpc.region == "us-west-2" and vpc.inputs["cidrBlock"] == "10.42.0.0/16"
    subnets = [s for s in by_type(records, "aws:ec2/subnet:Subnet") if s.tags["tier"] == "private"]
    assert len(subnets) >= 2
    assert len({s.inputs["availabilityZone"] for s in subnets}) == len(subnets)
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    ingress = [
        r
        for r in by_type(records, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.region == "us-west-2"
    ]
    assert len(ingress) == 1
    rule = ingress[0].inputs
    assert rule["fromPort"] == rule["toPort"] == 5432
    assert "cidrIpv4" not in rule and rule["referencedSecurityGroupId"] == "dr-network-app-sg-id"
    assert rule["securityGroupId"] == "dr-network-db-sg-id"
    assert vpc.tags["backup-class"] == "critical"
    # Hosts reach the AWS APIs their groups allow through a NAT gateway.
    routes = {r.name: r.inputs for r in by_type(records, "aws:ec2/route:Route")}
    assert routes["dr-network-private-internet"]["natGatewayId"] == "dr-network-nat-id"
    assert routes["dr-network-public-internet"]["gatewayId"] == "dr-network-igw-id"


def test_self_managed_streams_over_peering_with_routes_and_rules_both_ways():
    records, _ = standby("self-managed")
    (peering,) = by_type(records, "aws:ec2/vpcPeeringConnection:VpcPeeringConnection")
    assert peering.region == "us-west-2"
    assert (peering.inputs["peerVpcId"], peering.inputs["peerRegion"]) == (
        PRIMARY.vpc_id,
        "us-east-1",
    )
    (accept,) = by_type(
        records, "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter"
    )
    assert accept.region == "us-east-1" and accept.inputs["autoAccept"] is True
    routes = {r.name: r for r in by_type(records, "aws:ec2/route:Route")}
    there = routes["dr-network-to-primary"]
    assert there.region == "us-west-2" and there.inputs["destinationCidrBlock"] == "10.40.0.0/16"
    back = [r for n, r in routes.items() if n.startswith("dr-network-from-primary-")]
    assert {r.inputs["routeTableId"] for r in back} == set(PRIMARY.route_table_ids)
    assert all(
        r.region == "us-east-1" and r.inputs["destinationCidrBlock"] == "10.42.0.0/16" for r in back
    )
    ingress = named(records, "dr-network-primary-from-dr")
    assert ingress.region == "us-east-1" and ingress.inputs["securityGroupId"] == "sg-0e7a"
    assert ingress.inputs["cidrIpv4"] == "10.42.0.0/16" and ingress.inputs["fromPort"] == 5432
    egress = named(records, "dr-network-db-to-primary")
    assert egress.inputs["cidrIpv4"] == "10.40.0.0/16"


def test_supabase_subscriber_gets_ipv4_and_ipv6_egress():
    records, _ = standby("supabase")
    (vpc,) = by_type(records, "aws:ec2/vpc:Vpc")
    assert vpc.inputs["assignGeneratedIpv6CidrBlock"] is True
    assert not by_type(records, "aws:ec2/vpcPeeringConnection:VpcPeeringConnection")
    route = named(records, "dr-network-private-internet-ipv6").inputs
    assert route["destinationIpv6CidrBlock"] == "::/0"
    assert route["egressOnlyGatewayId"] == "dr-network-eigw-id"
    assert named(records, "dr-network-db-to-publisher-ipv6").inputs["cidrIpv6"] == "::/0"


def test_self_managed_without_a_primary_network_is_refused():
    obj = objectives()
    with pytest.raises(ConfigError) as raised:
        declare(
            lambda: DrStandby(
                "dr",
                DrStandbyArgs(
                    obj, TOPICS, "db.x.com", database=DATABASES["self-managed"], settings=SETTINGS
                ),
            )
        )
    assert raised.value.key == "primaryVpcId"


def test_rds_gets_an_encrypted_cross_region_read_replica_with_a_dr_key():
    records, component = standby("rds")
    (replica,) = by_type(records, "aws:rds/instance:Instance")
    inputs = replica.inputs
    assert replica.region == "us-west-2"
    assert inputs["replicateSourceDb"] == DATABASES["rds"].source_arn
    assert inputs["storageEncrypted"] is True and ":us-west-2:" in inputs["kmsKeyId"]
    assert inputs["publiclyAccessible"] is False and inputs["backupRetentionPeriod"] == 7
    assert inputs["dbSubnetGroupName"] == "dr-db-subnets"
    assert inputs["vpcSecurityGroupIds"] == ["dr-network-db-sg-id"]
    assert inputs["instanceClass"] == "db.r6g.large"  # warm standby: full size
    assert replica.tags["backup-class"] == "critical"
    (group,) = by_type(records, "aws:rds/subnetGroup:SubnetGroup")
    assert len(group.inputs["subnetIds"]) == 2
    alarm = named(records, "dr-replica-lag")
    lag = alarm.inputs
    assert alarm.region == "us-west-2"
    assert (lag["namespace"], lag["metricName"]) == ("AWS/RDS", "ReplicaLag")
    # The replica's own identifier, as the mocks answered it (the primary's would be wrong).
    assert lag["dimensions"] == {"DBInstanceIdentifier": "dr-replica"}
    assert (lag["statistic"], lag["period"], lag["evaluationPeriods"]) == ("Maximum", 60, 1)
    # The critical RPO (15 min), the bound posture reports for a region loss.
    assert lag["threshold"] == 900 == objectives().of("critical").rpo_s
    assert lag["comparisonOperator"] == "GreaterThanThreshold"
    assert lag["treatMissingData"] == "breaching"
    assert lag["alarmActions"] == lag["okActions"] == [TOPICS["us-west-2"]]
    assert alarm.tags["backup-class"] == "critical" and alarm.tags["dr-dataset"] == "database"
    outputs = resolve(component.failover_outputs)
    assert outputs["backend"] == "rds" and outputs["replicaIdentifier"] == "dr-replica"
    assert outputs["standbyEndpoint"].endswith(".us-west-2.rds.amazonaws.com")


def test_pilot_light_rds_replica_runs_small():
    records, component = standby("rds", criticalRto="4h", importantRto="8h")
    (replica,) = by_type(records, "aws:rds/instance:Instance")
    assert replica.inputs["instanceClass"] == "db.t4g.medium"
    assert component.mode == PILOT_LIGHT and component.app_min_capacity == 0
    (wrapper,) = by_type(records, DrStandby.TYPE)
    assert wrapper.inputs["mode"] == PILOT_LIGHT and "4h" in wrapper.inputs["reason"]


def test_self_managed_renders_streaming_standby_config_through_the_slot():
    records, component = standby("self-managed")
    assert not by_type(records, "aws:rds/instance:Instance")
    files = resolve(component.standby_config)
    assert "primary_slot_name = 'dr_standby'" in files["standby.conf"]
    assert "host=db.primary.example.com port=5432" in files["standby.conf"]
    eni = named(records, "dr-db-address")
    assert eni.region == "us-west-2" and eni.inputs["securityGroups"] == ["dr-network-db-sg-id"]


def test_supabase_exposes_the_subscription_target():
    _, component = standby("supabase")
    target = resolve(component.subscription_target)
    assert target["publication"] == "dr_pub" and target["port"] == 5432
    assert target["subscription"] == "dr_sub"


@pytest.mark.parametrize("backend", sorted(DATABASES))
def test_route53_health_check_and_failover_records(backend):
    records, component = standby(backend, endpoint="db.primary.example.com:6543")
    (check,) = by_type(records, "aws:route53/healthCheck:HealthCheck")
    # Route 53 cannot reach the private primary: it watches the in-VPC probe's alarm instead.
    assert check.inputs["type"] == "CLOUDWATCH_METRIC" and "fqdn" not in check.inputs
    alarm = named(records, "dr-primary-down")
    assert check.inputs["cloudwatchAlarmName"] == alarm.name
    assert check.inputs["cloudwatchAlarmRegion"] == alarm.region == "us-west-2"
    assert check.inputs["insufficientDataHealthStatus"] == "LastKnownStatus"
    probe = alarm.inputs
    assert (probe["namespace"], probe["metricName"]) == ("platform-dr", "PrimaryDatabaseUp")
    assert probe["dimensions"] == {"Database": "db.music-platform.example"}
    assert probe["treatMissingData"] == "breaching" and probe["threshold"] == 1
    assert probe["evaluationPeriods"] == 2  # warm standby: two silent or failed minutes
    units = resolve(component.probe_artefacts)
    service = units["systemd/platform-dr-primary-probe.service"]
    assert "pg_isready -q -h db.primary.example.com -p 6543" in service
    assert "--region us-west-2" in service and "Database=db.music-platform.example" in service
    failover = {
        r.inputs["failoverRoutingPolicies"][0]["type"]: r
        for r in by_type(records, "aws:route53/record:Record")
        if r.inputs.get("failoverRoutingPolicies")
    }
    assert set(failover) == {"PRIMARY", "SECONDARY"}
    primary, secondary = failover["PRIMARY"].inputs, failover["SECONDARY"].inputs
    assert primary["name"] == secondary["name"] == "db.music-platform.example"
    assert primary["type"] == secondary["type"] == "CNAME"
    assert primary["records"] == ["db.primary.example.com"]
    assert primary["healthCheckId"] == check.id and "healthCheckId" not in secondary
    (zone,) = by_type(records, "aws:route53/zone:Zone")
    assert primary["zoneId"] == secondary["zoneId"]
    outputs = resolve(component.failover_outputs)
    assert outputs["recordName"] == "db.music-platform.example"
    assert outputs["healthCheckId"] == check.id and outputs["port"] == 6543


def test_health_check_alarm_lives_in_us_east_1_and_pages_the_encrypted_topic():
    records, _ = standby()
    alarm = named(records, "dr-primary-unhealthy")
    inputs = alarm.inputs
    assert alarm.region == "us-east-1" and inputs["namespace"] == "AWS/Route53"
    assert inputs["metricName"] == "HealthCheckStatus"
    assert inputs["comparisonOperator"] == "LessThanThreshold" and inputs["threshold"] == 1
    assert inputs["alarmActions"] == [TOPICS["us-east-1"]]
    assert inputs["treatMissingData"] == "breaching"


def test_adopted_zone_is_used_and_records_taken_over():
    obj = objectives()
    records, _ = declare(
        lambda: DrStandby(
            "dr",
            standby_args(
                obj,
                TOPICS,
                "db.example.com",
                DATABASES["self-managed"],
                adopt_zone_id="ZPRODZONE123",
                take_over_records=True,
            ),
        )
    )
    assert not by_type(records, "aws:route53/zone:Zone")
    for record in by_type(records, "aws:route53/record:Record"):
        assert record.inputs["zoneId"] == "ZPRODZONE123" and record.inputs["allowOverwrite"]


@pytest.mark.parametrize(
    ("backend", "database", "field"),
    [
        ("rds", StandbyDatabase(), "database.source_arn"),
        ("self-managed", StandbyDatabase(), "database.replication_slot_name"),
        ("supabase", StandbyDatabase(), "database.publication_name"),
    ],
)
def test_missing_backend_input_is_refused_before_anything_is_declared(backend, database, field):
    obj = objectives(dbBackend=backend)
    with pytest.raises(ConfigError) as raised:
        declare(lambda: DrStandby("dr", standby_args(obj, TOPICS, "db.example.com", database)))
    assert raised.value.key == field and backend in str(raised.value)


def test_missing_us_east_1_topic_is_refused():
    obj = objectives()
    topics = {"us-west-2": TOPICS["us-west-2"]}
    with pytest.raises(ConfigError, match="us-east-1"):
        declare(
            lambda: DrStandby(
                "dr", standby_args(obj, topics, "db.x.com", DATABASES["self-managed"])
            )
        )


def test_a_named_dr_host_is_used_as_is_without_an_address_of_our_own():
    obj = objectives(dbBackend="supabase")
    db = StandbyDatabase(publication_name="dr_pub", standby_host="dr-db.internal.example")
    records, component = declare(
        lambda: DrStandby("dr", standby_args(obj, TOPICS, "db.abc.supabase.co", db))
    )
    assert not by_type(records, "aws:ec2/networkInterface:NetworkInterface")
    secondary = named(records, "dr-secondary").inputs
    assert secondary["records"] == ["dr-db.internal.example"]
    assert resolve(component.subscription_target)["host"] == "dr-db.internal.example"


# -- the real program ----------------------------------------------------------------------------


def test_prod_declares_the_standby_and_exports_what_failover_reads(prod):
    (component,) = prod.of_type(DrStandby.TYPE)
    assert component.inputs["mode"] == WARM_STANDBY and component.inputs["drRegion"] == "us-west-2"
    outputs = prod.outputs["drStandby"]
    assert outputs["primaryRegion"] == "us-east-1" and outputs["drRegion"] == "us-west-2"
    assert outputs["zoneId"] == prod.named("dr-standby-zone").id
    assert prod.outputs["drStandbyMode"]["mode"] == WARM_STANDBY
    assert all(r.region == "us-west-2" for r in prod.of_type("aws:ec2/subnet:Subnet"))


def test_dr_rebuild_takes_over_prods_zone_and_records(prod, dr):
    assert not dr.of_type("aws:route53/zone:Zone")
    records = dr.of_type("aws:route53/record:Record")
    assert records and all(
        r.inputs["zoneId"] == prod.outputs["drStandby"]["zoneId"] for r in records
    )
    assert all(r.inputs["allowOverwrite"] is True for r in records)
    assert dr.outputs["drStandby"]["drRegion"] == "eu-west-1"


def test_prod_exports_the_app_tier_capacity_of_the_chosen_posture(prod):
    assert prod.outputs["drStandbyMode"]["appMinCapacity"] == 1
    relaxed = evaluate_stack(
        "prod", overrides={"criticalRto": "4h", "importantRto": "8h", "operationalRto": "24h"}
    )
    assert relaxed.outputs["drStandbyMode"]["mode"] == PILOT_LIGHT
    assert relaxed.outputs["drStandbyMode"]["appMinCapacity"] == 0
