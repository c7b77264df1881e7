"""Network semantics: health checks Route 53 can evaluate, and paths database traffic can take."""

from __future__ import annotations

import ipaddress

from .graph import ALARM_TYPE, Stack, get, whole
from .iam_eval import as_list
from .services import ENDPOINT_CHECK_TYPES, ROUTE53_ALARM_STATISTICS

Finding = tuple[str, str]
HEALTH_CHECK_TYPE = "aws:route53/healthCheck:HealthCheck"
DR_NETWORK_TYPE = "platform-dr:dr_network:DrNetwork"
POSTGRES_BACKUP_TYPE = "platform-dr:postgres_backup:PostgresBackup"
ROUTE_TYPE = "aws:ec2/route:Route"
EGRESS_TYPE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INGRESS_TYPE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RESERVED = (".example", ".invalid", ".test", ".localhost", ".internal", ".local")


def _unreachable_name(host: str) -> str | None:
    """Why Route 53's internet health checkers cannot reach ``host``, or None if they may."""
    name = host.strip().lower().rstrip(".")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        if not address.is_global:
            return f"{host} is a private, local or reserved address"
        return None
    if name == "localhost" or name.endswith(RESERVED):
        return f"{host} does not resolve on the internet"
    if name.endswith(".rds.amazonaws.com"):
        return f"{host} is an RDS endpoint, private unless the instance is publicly accessible"
    return None


def health_checks_evaluable(stack: Stack) -> list[Finding]:
    """Every Route 53 health check can be evaluated by Route 53.

    Document: Amazon Route 53 Developer Guide, "Values that you specify when you create or
    update health checks" (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/
    health-checks-creating-values.html) and "How Amazon Route 53 determines whether a health
    check is healthy".

    Constraint: endpoint checks (HTTP, HTTPS, TCP) are made by checkers on the internet, so the
    endpoint must be publicly reachable: not a private, local or reserved address, not a name
    that only resolves inside a VPC (a database endpoint, a private host), and by domain name
    only with a public A record. A check that monitors a CloudWatch alarm needs that alarm to
    exist in the named region, on a standard-resolution metric (period of at least 60 s) with a
    plain statistic (Average, Minimum, Maximum, Sum, SampleCount), and it must say what to do on
    insufficient data. For a failover record the alarm must treat missing data as breaching: a
    probe that stops reporting must not keep the record healthy. A calculated check must have
    children.
    """
    found: list[Finding] = []
    databases = {
        str(get(p.props, "primary_endpoint") or "").rsplit(":", 1)[0]
        for p in stack.of(POSTGRES_BACKUP_TYPE)
    } - {""}
    alarms = stack.of(ALARM_TYPE)
    for check in stack.of(HEALTH_CHECK_TYPE):
        props = check.props
        kind = get(props, "type")
        if kind in ENDPOINT_CHECK_TYPES:
            host = get(props, "ipAddress") or get(props, "fqdn") or ""
            why = _unreachable_name(host)
            if host in databases:
                why = f"{host} is a database endpoint, which is never public here"
            if why:
                found.append(
                    (
                        check.name,
                        f"{kind} check on {host}: Route 53 checkers run on the "
                        f"internet and {why}; the check can never pass",
                    )
                )
        elif kind == "CLOUDWATCH_METRIC":
            name, region = get(props, "cloudwatchAlarmName"), get(props, "cloudwatchAlarmRegion")
            alarm = next(
                (
                    a
                    for a in alarms
                    if (get(a.props, "name") or a.name) == name and get(a.props, "region") == region
                ),
                None,
            )
            if alarm is None:
                found.append((check.name, f"monitors alarm {name!r} in {region}, not declared"))
                continue
            a = alarm.props
            if get(a, "extendedStatistic") or get(a, "statistic") not in ROUTE53_ALARM_STATISTICS:
                found.append(
                    (
                        check.name,
                        f"alarm {alarm.name} uses statistic "
                        f"{get(a, 'statistic') or get(a, 'extendedStatistic')}, which "
                        "Route 53 does not support",
                    )
                )
            if (whole(get(a, "period")) or 0) < 60:
                found.append(
                    (
                        check.name,
                        f"alarm {alarm.name} is high-resolution (period "
                        f"{get(a, 'period')}); Route 53 supports standard resolution only",
                    )
                )
            if not get(props, "insufficientDataHealthStatus"):
                found.append((check.name, "no insufficientDataHealthStatus"))
            if get(a, "treatMissingData") != "breaching":
                found.append(
                    (
                        check.name,
                        f"alarm {alarm.name} treats missing data as "
                        f"{get(a, 'treatMissingData') or 'missing'}: a silent probe keeps "
                        "the record healthy",
                    )
                )
        elif kind == "CALCULATED" and not as_list(get(props, "childHealthchecks")):
            found.append((check.name, "a calculated check without children"))
    return found


def _covers(cidr: str | None, target: str | None) -> bool:
    try:
        return ipaddress.ip_network(target).subnet_of(ipaddress.ip_network(cidr))
    except (TypeError, ValueError):
        return False


def _port_open(rule_props, port) -> bool:
    proto = get(rule_props, "ipProtocol")
    if proto in ("-1", "all"):
        return True
    low, high = whole(get(rule_props, "fromPort")), whole(get(rule_props, "toPort"))
    return proto == "tcp" and low is not None and high is not None and low <= port <= high


def database_network_path(stack: Stack) -> list[Finding]:
    """The DR database can reach what it replicates from, per backend, and hosts reach AWS APIs.

    Documents: Amazon VPC Peering Guide (https://docs.aws.amazon.com/vpc/latest/peering/),
    "Create a VPC peering connection" (inter-Region requests
    are accepted in the accepter's region), "Update your route tables for a VPC peering
    connection" (a route in *each* VPC), "VPC peering limitations" (no overlapping CIDRs; an
    inter-Region peering cannot reference the peer's security groups) and "Enable DNS
    resolution for a VPC peering connection"; Amazon VPC User Guide, "NAT gateways" (a public NAT
    gateway sits in a public subnet routed to an internet gateway), "Enable outbound IPv6
    traffic using an egress-only internet gateway", "Gateway endpoints for Amazon S3" (same
    Region only); Amazon RDS User Guide, "Creating a read replica in a different AWS Region".

    Constraint: ``rds`` replicates over AWS's network (no path to declare). ``self-managed``
    streams from the primary VPC: an accepted peering to the primary region, a route to the
    primary CIDR in the DR route table and back to the DR CIDR in the primary's, egress to the
    primary CIDR and ingress on the primary database's group from the DR CIDR, on the database
    port, by CIDR, with disjoint CIDRs. ``supabase`` dials the hosted project on the internet:
    egress on the database port to anywhere over IPv4 and IPv6, a default route through a NAT
    gateway (in a subnet routed to an internet gateway) and ``::/0`` through an egress-only
    internet gateway. Every backend's hosts need a default route to reach the AWS APIs their
    security groups allow (CloudWatch, KMS, Secrets Manager; S3 in other regions).
    """
    found: list[Finding] = []
    routes = stack.of(ROUTE_TYPE)
    for net in stack.of(DR_NETWORK_TYPE):
        p = net.props
        backend, dr, cidr = get(p, "backend"), get(p, "drRegion"), get(p, "vpcCidr")
        port = whole(get(p, "dbPort")) or 5432
        private_rt = get(p, "private_route_table_id")

        def route(region, destination, via, table=None):
            field = "destinationIpv6CidrBlock" if ":" in destination else "destinationCidrBlock"
            return any(
                get(r.props, "region") == region
                and get(r.props, field) == destination
                and get(r.props, via)
                and (table is None or get(r.props, "routeTableId") == table)
                for r in routes
            )

        def sg_rule(type_, region, target, v6=False, port=port):
            field = "cidrIpv6" if v6 else "cidrIpv4"
            return any(
                get(r.props, "region") == region
                and _covers(get(r.props, field), target)
                and _port_open(r.props, port)
                for r in stack.of(type_)
            )

        if not route(dr, "0.0.0.0/0", "natGatewayId", private_rt):
            found.append(
                (
                    net.name,
                    "no default route through a NAT gateway from the private "
                    "subnets: hosts cannot reach the AWS APIs their groups allow",
                )
            )
        elif not route(dr, "0.0.0.0/0", "gatewayId"):
            found.append((net.name, "the NAT gateway's subnet has no route to an internet gateway"))
        if backend == "self-managed":
            primary, primary_cidr = get(p, "primaryRegion"), get(p, "primaryCidr")
            if (
                _covers(cidr, primary_cidr)
                or _covers(primary_cidr, cidr)
                or (
                    primary_cidr
                    and cidr
                    and ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(primary_cidr))
                )
            ):
                found.append(
                    (
                        net.name,
                        f"DR CIDR {cidr} overlaps the primary's {primary_cidr}: "
                        "VPC peering refuses overlapping CIDRs",
                    )
                )
            peerings = [
                r
                for r in stack.of("aws:ec2/vpcPeeringConnection:VpcPeeringConnection")
                if get(r.props, "region") == dr and get(r.props, "peerRegion") == primary
            ]
            accepted = any(
                get(r.props, "region") == primary and get(r.props, "autoAccept")
                for r in stack.of(
                    "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter"
                )
            )
            if not peerings:
                found.append((net.name, f"no VPC peering from {dr} to the primary in {primary}"))
            elif not accepted:
                found.append((net.name, f"the peering is never accepted in {primary}"))
            if not route(dr, primary_cidr or "", "vpcPeeringConnectionId", private_rt):
                found.append(
                    (
                        net.name,
                        f"no route to the primary CIDR {primary_cidr} over the "
                        "peering in the DR route table",
                    )
                )
            if not route(primary, cidr, "vpcPeeringConnectionId"):
                found.append((net.name, f"no route back to {cidr} in the primary's route tables"))
            if not sg_rule(EGRESS_TYPE, dr, primary_cidr):
                found.append((net.name, f"no egress to {primary_cidr} on port {port}"))
            if not sg_rule(INGRESS_TYPE, primary, cidr):
                found.append(
                    (
                        net.name,
                        f"the primary database's group admits nothing from {cidr} on port {port}",
                    )
                )
            for rule in stack.of(INGRESS_TYPE, EGRESS_TYPE):
                if (
                    get(rule.props, "region") in (dr, primary)
                    and get(rule.props, "referencedSecurityGroupId")
                    and get(rule.props, "region") != dr
                ):
                    found.append(
                        (
                            rule.name,
                            "references a security group across an inter-Region "
                            "peering, which AWS does not support",
                        )
                    )
        elif backend == "supabase":
            if not sg_rule(EGRESS_TYPE, dr, "8.8.8.8/32"):
                found.append((net.name, f"no IPv4 egress on port {port} to the hosted project"))
            if not sg_rule(EGRESS_TYPE, dr, "2001:4860::/32", v6=True):
                found.append((net.name, f"no IPv6 egress on port {port} to the hosted project"))
            if not route(dr, "::/0", "egressOnlyGatewayId", private_rt):
                found.append(
                    (
                        net.name,
                        "no ::/0 route through an egress-only internet gateway: "
                        "Supabase's direct connection is IPv6",
                    )
                )
    for endpoint in stack.of("aws:ec2/vpcEndpoint:VpcEndpoint"):
        service, region = (
            str(get(endpoint.props, "serviceName") or ""),
            get(endpoint.props, "region"),
        )
        if service.endswith(".s3") and region and f".{region}." not in service:
            found.append(
                (
                    endpoint.name,
                    f"{service} in {region}: a gateway endpoint serves its own region only",
                )
            )
    return found


RULES = [
    (
        "route53-health-check-evaluable",
        "Route 53 can evaluate every health check",
        health_checks_evaluable,
    ),
    (
        "database-network-path",
        "The DR database and hosts have a route, per backend",
        database_network_path,
    ),
]
