"""The DR region's settings and sizing decision: stack config, and warm standby vs pilot light.

Pure functions of config and the objectives, so the DrStandby component, the policy rule and
``drctl posture`` all compute the same choice (components/dr_standby.py declares it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.objectives import (
    ConfigError,
    Objectives,
    format_duration,
    parse_duration,
)
from policy.rules import PILOT_LIGHT, WARM_STANDBY, standby_mode

DEFAULT_PILOT_LIGHT_RECOVERY = "1h"
DEFAULT_VPC_CIDR = "10.42.0.0/16"
DEFAULT_RECORD_NAME = "db"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$")


@dataclass(frozen=True)
class StandbyMode:
    """The posture of the DR region and why; ``drctl posture`` shows both."""

    mode: str  # WARM_STANDBY or PILOT_LIGHT
    reason: str
    driving_class: str  # the class with the tightest RTO
    app_min_capacity: int  # app instances kept running in the DR region
    # Minutes the primary must be down (or its probe silent) before the record fails over.
    detection_periods: int


def choose_standby_mode(objectives: Objectives, pilot_light_recovery_s: int) -> StandbyMode:
    """Warm standby when some class's RTO cannot absorb a pilot-light scale-up, else pilot light.

    Pure: the component, the policy rule and posture all call this one function.
    """
    tightest = min(objectives.classes.values(), key=lambda c: (c.rto_s, c.name))
    rto, budget = format_duration(tightest.rto_s), format_duration(pilot_light_recovery_s)
    if standby_mode(tightest.rto_s, pilot_light_recovery_s) == WARM_STANDBY:
        return StandbyMode(
            WARM_STANDBY,
            f"{tightest.name} RTO {rto} leaves no room for the {budget} a pilot-light region "
            "needs to scale the database up and start compute (pilotLightRecovery); the standby "
            "runs at full size and one app instance stays up",
            tightest.name,
            app_min_capacity=1,
            detection_periods=2,
        )
    return StandbyMode(
        PILOT_LIGHT,
        f"the tightest RTO ({tightest.name}, {rto}) allows the {budget} pilot-light scale-up "
        "(pilotLightRecovery); data keeps replicating on the smallest standby, app compute is "
        "at zero until failover",
        tightest.name,
        app_min_capacity=0,
        detection_periods=3,
    )


@dataclass(frozen=True)
class DrSettings:
    """Stack config that only the DR standby reads (keys in CONFIG_KEYS and Pulumi.yaml)."""

    pilot_light_recovery_s: int = parse_duration("pilotLightRecovery", DEFAULT_PILOT_LIGHT_RECOVERY)
    vpc_cidr: str = DEFAULT_VPC_CIDR
    zone_id: str = ""
    zone_name: str = ""  # required (dnsZoneName): no placeholder domain
    record_name: str = DEFAULT_RECORD_NAME


def parse_dr_settings(raw: Mapping[str, Any]) -> DrSettings:
    """Validate the DR keys of raw stack config; ConfigError naming the key if one is bad."""
    defaults = DrSettings()
    recovery = parse_duration(
        "pilotLightRecovery", raw.get("pilotLightRecovery") or DEFAULT_PILOT_LIGHT_RECOVERY
    )
    cidr = str(raw.get("drVpcCidr") or DEFAULT_VPC_CIDR)
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        raise ConfigError("drVpcCidr", cidr, "an IPv4 network such as 10.42.0.0/16") from None
    if not 16 <= network.prefixlen <= 24 or not network.is_private:
        raise ConfigError("drVpcCidr", cidr, "a private IPv4 network from /16 to /24")
    zone_name = str(raw.get("dnsZoneName") or "").lower().rstrip(".")
    # Whether it must be set is objectives.check_infrastructure_keys' call; its form is ours.
    if zone_name and not _DOMAIN.match(zone_name):
        raise ConfigError("dnsZoneName", zone_name, "a DNS domain name such as example.com")
    record = str(raw.get("dbRecordName") or DEFAULT_RECORD_NAME).lower()
    if not _LABEL.match(record):
        raise ConfigError("dbRecordName", record, "one DNS label: a-z, 0-9 and '-', 1-63 chars")
    zone_id = str(raw.get("dnsZoneId") or "")
    if zone_id and not re.fullmatch(r"Z[A-Z0-9]{4,31}", zone_id):
        raise ConfigError("dnsZoneId", zone_id, "a Route 53 hosted zone id such as Z0123456789AB")
    return DrSettings(recovery, str(network), zone_id or defaults.zone_id, zone_name, record)


def load_dr_settings() -> DrSettings:
    from components.objectives import raw_config_from_pulumi

    return parse_dr_settings(raw_config_from_pulumi())


def split_endpoint(endpoint: str, default_port: int) -> tuple[str, int]:
    """'db.example.com:6543' -> ('db.example.com', 6543); a bare host keeps ``default_port``."""
    host, _, port = endpoint.strip().rpartition(":")
    if host and port.isdigit():
        return host, int(port)
    return endpoint.strip(), default_port
