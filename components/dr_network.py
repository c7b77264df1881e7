"""DrNetwork: the DR-region VPC and the paths its database traffic needs, per backend.

Declared for every backend:

- a VPC with private subnets in at least two Availability Zones, one private route table, and an
  S3 gateway endpoint on it (pgBackRest repo2 and dumps in this region, without NAT charges);
- a NAT gateway in a public subnet (with an internet gateway) for everything else the hosts call:
  CloudWatch (lag and probe metrics), KMS, Secrets Manager, S3 in other regions. A gateway
  endpoint only serves S3 in its own region (Amazon VPC User Guide, "Gateway endpoints for
  Amazon S3"); a security-group egress rule without a route goes nowhere;
- an app and a database security group; the database port is open from the app group only.

And per ``dbBackend`` (what the DR database dials):

- ``rds``: nothing more. A cross-region read replica replicates over AWS's network (Amazon RDS
  User Guide, "Creating a read replica in a different AWS Region").
- ``self-managed``: the standby streams from the primary's VPC. Inter-region VPC peering with
  the primary VPC (``PrimaryNetwork``), accepted in the primary region, with private DNS
  resolution both ways, a route to the primary CIDR here and a route back to this VPC in every
  primary route table, egress to the primary CIDR on the database port, and ingress on the
  primary database's security group from this CIDR. Inter-region peering cannot reference a
  security group of the peer VPC, so both rules use CIDRs, and the CIDRs must not overlap
  (Amazon VPC Peering Guide, "VPC peering limitations" and "Update your security groups to
  reference peer security groups").
- ``supabase``: the DR subscriber dials the hosted project on the internet. Supabase's direct
  connection is IPv6 unless the project has the IPv4 add-on, so the VPC is dual-stack with an
  egress-only internet gateway (IPv6) beside the NAT gateway (IPv4), and the database group may
  reach the database port anywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.objectives import PROJECT, ConfigError, Objectives, class_tags

_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_RTB_ID = re.compile(r"^rtb-[0-9a-f]{8,17}$")
_SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class PrimaryNetwork:
    """The primary region's network a self-managed DR standby streams from.

    From stack config (primaryVpcId, primaryVpcCidr, primaryRouteTableIds,
    primaryDbSecurityGroupId), or for a rebuild stack from the ``drNetwork`` output of its source
    stack (the source's DR VPC is the rebuild's primary).
    """

    region: str
    vpc_id: pulumi.Input[str]
    cidr: pulumi.Input[str]
    route_table_ids: Sequence[pulumi.Input[str]]
    db_security_group_id: pulumi.Input[str]


def _private_network(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        raise ConfigError(key, value, "an IPv4 network such as 10.40.0.0/16") from None
    if not network.is_private:
        raise ConfigError(key, value, "a private IPv4 network")
    return network


def parse_primary_network(
    raw: Mapping[str, Any], region: str, dr_cidr: str
) -> PrimaryNetwork | None:
    """The primaryVpc* keys, validated (formats, a private CIDR that does not overlap the DR VPC).

    None when none is set (other backends, rebuild stacks); presence for the self-managed backend
    is enforced by objectives.check_infrastructure_keys.
    """
    values = {k: str(raw.get(k) or "").strip() for k in _PRIMARY_KEYS}
    if not any(values.values()):
        return None
    checks = (
        ("primaryVpcId", _VPC_ID, "a VPC id such as vpc-0123456789abcdef0"),
        ("primaryDbSecurityGroupId", _SG_ID, "a security group id such as sg-0123456789abcdef0"),
    )
    for key, pattern, allowed in checks:
        if not pattern.match(values[key]):
            raise ConfigError(key, values[key], allowed)
    tables = [t.strip() for t in values["primaryRouteTableIds"].split(",") if t.strip()]
    if not tables or not all(_RTB_ID.match(t) for t in tables):
        raise ConfigError(
            "primaryRouteTableIds",
            values["primaryRouteTableIds"],
            "comma-separated route table ids such as rtb-0123456789abcdef0",
        )
    cidr = _private_network("primaryVpcCidr", values["primaryVpcCidr"])
    if cidr.overlaps(ipaddress.IPv4Network(dr_cidr)):
        raise ConfigError(
            "primaryVpcCidr",
            str(cidr),
            f"a network that does not overlap drVpcCidr {dr_cidr} (VPC peering needs disjoint "
            "CIDRs)",
        )
    return PrimaryNetwork(
        region, values["primaryVpcId"], str(cidr), tables, values["primaryDbSecurityGroupId"]
    )


def load_primary_network(objectives: Objectives, dr_cidr: str) -> PrimaryNetwork | None:
    """The running stack's primary network (config); None for a rebuild, which peers with the
    DR VPC its source stack exports (``rebuild_primary_network``)."""
    from components.objectives import raw_config_from_pulumi

    if objectives.is_rebuild:
        return None
    return parse_primary_network(raw_config_from_pulumi(), objectives.regions.primary, dr_cidr)


def rebuild_primary_network(exported: pulumi.Output, region: str) -> PrimaryNetwork:
    """A rebuild stack's primary network: the ``drNetwork`` output of its source stack."""

    def field_(key: str) -> pulumi.Output:
        return exported.apply(lambda n: _exported(n, key, region))

    return PrimaryNetwork(
        region=region,
        vpc_id=field_("vpcId"),
        cidr=field_("vpcCidr"),
        route_table_ids=[field_("privateRouteTableId")],
        db_security_group_id=field_("dbSecurityGroupId"),
    )


def _exported(network: Mapping[str, Any], key: str, region: str) -> str:
    if network.get("region") != region or not network.get(key):
        raise ValueError(
            f"the source stack's drNetwork output has no {key} in {region}; a rebuild stack's "
            "primaryRegion must be its source stack's drRegion"
        )
    return network[key]


_PRIMARY_KEYS = (
    "primaryVpcId",
    "primaryVpcCidr",
    "primaryRouteTableIds",
    "primaryDbSecurityGroupId",
)


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """``count`` equal subnets carved from the front of the VPC (room left for more)."""
    network = ipaddress.IPv4Network(vpc_cidr)
    new_prefix = min(network.prefixlen + 4, 28)
    return [str(s) for s in list(network.subnets(new_prefix=new_prefix))[:count]]


def ipv6_subnet(vpc_ipv6_cidr: str | None, index: int) -> str | None:
    """The index-th /64 of the VPC's Amazon-provided /56."""
    if not vpc_ipv6_cidr:
        return None
    network = ipaddress.IPv6Network(vpc_ipv6_cidr)
    return str(next(s for i, s in enumerate(network.subnets(new_prefix=64)) if i == index))


@dataclass
class DrNetworkArgs:
    """Arguments of DrNetwork.

    objectives: regions and dbBackend come from here.
    vpc_cidr: the DR VPC's private CIDR (config drVpcCidr).
    db_port: the database port the paths open.
    primary: PrimaryNetwork to peer with; required for dbBackend self-managed, unused otherwise.
    az_count: private subnets, one per Availability Zone; default 2 (the minimum).
    """

    objectives: Objectives
    vpc_cidr: str
    db_port: int
    primary: PrimaryNetwork | None = None
    az_count: int = 2


class DrNetwork(pulumi.ComponentResource):
    """Outputs: ``vpc_id``, ``private_subnet_ids``, ``private_route_table_id``,
    ``app_security_group_id``, ``db_security_group_id``, ``peering_id`` (self-managed)."""

    TYPE = f"{PROJECT}:dr_network:DrNetwork"

    def __init__(self, name: str, args: DrNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        backend = args.objectives.db_backend
        if backend == "self-managed" and args.primary is None:
            raise ConfigError(
                "primaryVpcId", None, "the primary network to peer with (dbBackend self-managed)"
            )
        if args.az_count < 2:
            raise ConfigError("az_count", args.az_count, "at least 2 Availability Zones")
        dr = args.objectives.regions.dr
        identity = {
            "backend": backend,
            "drRegion": dr,
            "vpcCidr": args.vpc_cidr,
            "dbPort": args.db_port,
            "path": {"rds": "aws-managed", "self-managed": "peering", "supabase": "internet"}[
                backend
            ],
        }
        super().__init__(self.TYPE, name, identity, opts)
        self._name, self._dr, self._args = name, dr, args
        self._tags = class_tags("critical", "dr-standby")
        self._child = pulumi.ResourceOptions(parent=self)
        ipv6 = backend == "supabase"
        self._vpc(ipv6)
        self._security_groups()
        self._egress(ipv6)
        self.peering_id = None
        if backend == "self-managed":
            self._peering(args.primary)
        self.register_outputs(
            {
                **identity,
                "primaryRegion": args.primary.region if args.primary else None,
                "primaryCidr": args.primary.cidr if args.primary else None,
                "vpc_id": self.vpc_id,
                "private_route_table_id": self.private_route_table_id,
                "db_security_group_id": self.db_security_group_id,
            }
        )

    def _tagged(self, role: str) -> dict:
        return {**self._tags, "Name": f"{self._name}-{role}"}

    def _vpc(self, ipv6: bool) -> None:
        name, dr, args, child = self._name, self._dr, self._args, self._child
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            region=dr,
            cidr_block=args.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            assign_generated_ipv6_cidr_block=ipv6 or None,
            tags=self._tagged("vpc"),
            opts=child,
        )
        zones = aws.get_availability_zones_output(region=dr, state="available")
        cidrs = subnet_cidrs(args.vpc_cidr, args.az_count + 1)
        route_table = aws.ec2.RouteTable(
            f"{name}-private-routes",
            region=dr,
            vpc_id=vpc.id,
            tags=self._tagged("private"),
            opts=child,
        )
        self.subnets = []
        for i, cidr in enumerate(cidrs[: args.az_count]):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{i}",
                region=dr,
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zones.names.apply(lambda n, i=i: _nth_zone(n, i, dr)),
                map_public_ip_on_launch=False,
                ipv6_cidr_block=vpc.ipv6_cidr_block.apply(lambda c, i=i: ipv6_subnet(c, i))
                if ipv6
                else None,
                assign_ipv6_address_on_creation=ipv6 or None,
                tags={**self._tagged(f"private-{i}"), "tier": "private"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}-association",
                region=dr,
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                opts=child,
            )
            self.subnets.append(subnet)
        # The NAT gateway's subnet: public, in the first zone, routed to the internet gateway.
        self._public_cidr = cidrs[args.az_count]
        self._zones = zones
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            region=dr,
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{dr}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[route_table.id],
            tags=self._tags,
            opts=child,
        )
        self.vpc = vpc
        self.vpc_id = vpc.id
        self.private_route_table = route_table
        self.private_route_table_id = route_table.id
        self.private_subnet_ids = [s.id for s in self.subnets]

    def _egress(self, ipv6: bool) -> None:
        name, dr, child = self._name, self._dr, self._child
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", region=dr, vpc_id=self.vpc_id, tags=self._tagged("igw"), opts=child
        )
        public = aws.ec2.Subnet(
            f"{name}-public",
            region=dr,
            vpc_id=self.vpc_id,
            cidr_block=self._public_cidr,
            availability_zone=self._zones.names.apply(lambda n: _nth_zone(n, 0, dr)),
            map_public_ip_on_launch=False,
            tags={**self._tagged("public"), "tier": "public"},
            opts=child,
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-routes",
            region=dr,
            vpc_id=self.vpc_id,
            tags=self._tagged("public"),
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-association",
            region=dr,
            subnet_id=public.id,
            route_table_id=public_routes.id,
            opts=child,
        )
        self._route("public-internet", public_routes.id, "0.0.0.0/0", gateway_id=igw.id)
        address = aws.ec2.Eip(
            f"{name}-nat-address", region=dr, domain="vpc", tags=self._tagged("nat"), opts=child
        )
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            region=dr,
            subnet_id=public.id,
            allocation_id=address.id,
            connectivity_type="public",
            tags=self._tagged("nat"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
        )
        private = self.private_route_table_id
        self._route("private-internet", private, "0.0.0.0/0", nat_gateway_id=nat.id)
        if ipv6:
            eigw = aws.ec2.EgressOnlyInternetGateway(
                f"{name}-eigw",
                region=dr,
                vpc_id=self.vpc_id,
                tags=self._tagged("eigw"),
                opts=child,
            )
            self._route(
                "private-internet-ipv6", private, "::/0", ipv6=True, egress_only_gateway_id=eigw.id
            )

    def _security_groups(self) -> None:
        name, dr, args, child = self._name, self._dr, self._args, self._child
        port = args.db_port
        app_sg = aws.ec2.SecurityGroup(
            f"{name}-app-sg",
            region=dr,
            vpc_id=self.vpc_id,
            description="DR app tier: reaches the database and AWS APIs only",
            tags=self._tags,
            opts=child,
        )
        db_sg = aws.ec2.SecurityGroup(
            f"{name}-db-sg",
            region=dr,
            vpc_id=self.vpc_id,
            description="DR database standby: database port from the app tier only",
            tags=self._tags,
            opts=child,
        )
        self._rule(
            "ingress",
            "db-from-app",
            db_sg.id,
            port,
            app=app_sg.id,
            what="database port from the DR app tier only",
        )
        self._rule(
            "egress", "app-to-db", app_sg.id, port, app=db_sg.id, what="app tier to the database"
        )
        for sg_name, sg in (("app", app_sg), ("db", db_sg)):
            self._rule(
                "egress",
                f"{sg_name}-to-https",
                sg.id,
                443,
                cidr="0.0.0.0/0",
                what="AWS APIs (CloudWatch, KMS, Secrets Manager, S3) over TLS",
            )
        backend = args.objectives.db_backend
        if backend == "self-managed":
            self._rule(
                "egress",
                "db-to-primary",
                db_sg.id,
                port,
                cidr=args.primary.cidr,
                what="streaming replication from the primary, over the VPC peering",
            )
        elif backend == "supabase":
            self._rule(
                "egress",
                "db-to-publisher",
                db_sg.id,
                port,
                cidr="0.0.0.0/0",
                what="logical replication from the hosted Supabase project (IPv4 add-on)",
            )
            self._rule(
                "egress",
                "db-to-publisher-ipv6",
                db_sg.id,
                port,
                cidr6="::/0",
                what="logical replication from the hosted Supabase project (IPv6)",
            )
        self.app_security_group_id = app_sg.id
        self.db_security_group_id = db_sg.id

    def _route(self, role, table, destination, *, ipv6=False, region=None, opts=None, **target):
        """A route to ``destination`` (a CIDR, IPv6 if ``ipv6``) through ``target``."""
        family = "destination_ipv6_cidr_block" if ipv6 else "destination_cidr_block"
        return aws.ec2.Route(
            f"{self._name}-{role}",
            region=region or self._dr,
            route_table_id=table,
            **{family: destination},
            **target,
            opts=opts or self._child,
        )

    def _rule(
        self, direction, role, sg_id, port, *, app=None, cidr=None, cidr6=None, what="", region=None
    ):
        cls = (
            aws.vpc.SecurityGroupIngressRule
            if direction == "ingress"
            else aws.vpc.SecurityGroupEgressRule
        )
        return cls(
            f"{self._name}-{role}",
            region=region or self._dr,
            security_group_id=sg_id,
            referenced_security_group_id=app,
            cidr_ipv4=cidr,
            cidr_ipv6=cidr6,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=what,
            tags=self._tags,
            opts=self._child,
        )

    def _peering(self, primary: PrimaryNetwork) -> None:
        name, dr, args, child = self._name, self._dr, self._args, self._child
        peering = aws.ec2.VpcPeeringConnection(
            f"{name}-peering",
            region=dr,
            vpc_id=self.vpc_id,
            peer_vpc_id=primary.vpc_id,
            peer_region=primary.region,
            tags=self._tagged("peering"),
            opts=child,
        )
        accepter = aws.ec2.VpcPeeringConnectionAccepter(
            f"{name}-peering-accept",
            region=primary.region,
            vpc_peering_connection_id=peering.id,
            auto_accept=True,
            tags=self._tagged("peering"),
            opts=child,
        )
        accepted = pulumi.ResourceOptions(parent=self, depends_on=[accepter])
        # The primary's host name is private DNS of its VPC: resolve it from here, and back.
        aws.ec2.PeeringConnectionOptions(
            f"{name}-peering-dns-requester",
            region=dr,
            vpc_peering_connection_id=peering.id,
            requester=aws.ec2.PeeringConnectionOptionsRequesterArgs(
                allow_remote_vpc_dns_resolution=True
            ),
            opts=accepted,
        )
        aws.ec2.PeeringConnectionOptions(
            f"{name}-peering-dns-accepter",
            region=primary.region,
            vpc_peering_connection_id=peering.id,
            accepter=aws.ec2.PeeringConnectionOptionsAccepterArgs(
                allow_remote_vpc_dns_resolution=True
            ),
            opts=accepted,
        )
        via = {"vpc_peering_connection_id": peering.id, "opts": accepted}
        self._route("to-primary", self.private_route_table_id, primary.cidr, **via)
        for i, table in enumerate(primary.route_table_ids):
            self._route(f"from-primary-{i}", table, args.vpc_cidr, region=primary.region, **via)
        self._rule(
            "ingress",
            "primary-from-dr",
            primary.db_security_group_id,
            args.db_port,
            cidr=args.vpc_cidr,
            region=primary.region,
            what="replication connections from the DR standby (VPC peering)",
        )
        self.peering_id = peering.id


def _nth_zone(names: list[str], i: int, region: str) -> str:
    if len(names) <= i:
        raise ConfigError("drRegion", region, f"a region with at least {i + 1} Availability Zones")
    return sorted(names)[i]
