"""The recovery plan: the target (region, zone, catalogue) and the ordered tiers with their
deadlines, read from the stack file alone, so ``drctl recover`` prints it offline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.dr_standby import parse_dr_settings
from components.objectives import (
    PROJECT,
    ConfigError,
    Objectives,
    format_duration,
    parse_objectives,
)
from components.secrets_backup import parse_settings
from components.services import Catalogue, Tier, parse_catalogue
from scripts.common import DrctlError, ExitCode, out
from scripts.dataops.incident import fmt_elapsed
from scripts.local.evaluate import read_stack_config

DEFAULT_RETRY_S = 15.0
DEFAULT_HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RecoverTarget:
    stack: str
    objectives: Objectives
    catalogue: Catalogue
    region: str  # where the services come back
    zone: str  # the DNS zone of the services' records


def load_target(stack: str, root: Path | None = None) -> RecoverTarget:
    """Objectives, catalogue and DNS zone of ``stack`` from Pulumi.<stack>.yaml (offline)."""
    try:
        raw = read_stack_config(stack, root)
    except FileNotFoundError as exc:
        raise DrctlError(str(exc), ExitCode.INVALID_CONFIG) from None
    try:
        objectives = parse_objectives(raw, stack)
        project = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
        settings = parse_settings(project)
        catalogue = parse_catalogue(
            raw, objectives, secret_names=[*settings.api_keys, *settings.integrations]
        )
        zone = parse_dr_settings(project).zone_name
    except ConfigError as err:
        raise DrctlError(str(err), ExitCode.INVALID_CONFIG) from None
    regions = objectives.regions
    region = regions.primary if objectives.is_rebuild else regions.dr
    return RecoverTarget(stack, objectives, catalogue, region, zone)


@dataclass
class RecoverOptions:
    """time_scale divides every objective and interval (drills); 1 in production."""

    time_scale: float = 1.0
    retry_interval_s: float = DEFAULT_RETRY_S
    http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    incident_start: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise DrctlError(f"time scale {self.time_scale}: must be > 0", ExitCode.INVALID_CONFIG)

    def scaled(self, seconds: float) -> float:
        return seconds / self.time_scale


def tier_steps(tier: Tier) -> list[str]:
    names = [f"start-{tier.name}"]
    names += [f"deps-{s.name}" for s in tier.services]
    names += [f"switch-{s.name}" for s in tier.services]
    return [*names, f"validate-{tier.name}"]


def recovery_plan(target: RecoverTarget, options: RecoverOptions) -> dict[str, Any]:
    """The ordered plan: tiers, their deadlines after the incident start, each service's data,
    health check and DNS switch. Needs nothing but the stack file."""
    tiers = []
    for tier in target.catalogue.tiers:
        tiers.append(
            {
                "tier": tier.name,
                "data_class": tier.data_class,
                "rto_s": tier.rto_s,
                "deadline_after_s": round(options.scaled(tier.rto_s), 3),
                "services": [
                    {
                        "name": s.name,
                        "title": s.title,
                        "owner": s.owner,
                        "depends_on": [d.ref for d in s.depends_on],
                        "health": s.health_url(target.zone),
                        "switch": {
                            "record": f"{s.record}.{target.zone}",
                            "to": s.endpoint(target.region, target.zone),
                        },
                    }
                    for s in tier.services
                ],
            }
        )
    return {
        "stack": target.stack,
        "region": target.region,
        "zone": target.zone,
        "rebuild": target.objectives.is_rebuild,
        "time_scale": options.time_scale,
        "tiers": tiers,
    }


def print_plan(plan: Mapping[str, Any]) -> None:
    scale = "" if plan["time_scale"] == 1 else f" (time scale 1/{plan['time_scale']:g})"
    out.print(
        f"recover {plan['stack']} into {plan['region']}; deadlines count from the incident "
        f"start{scale}"
    )
    for tier in plan["tiers"]:
        out.print(
            f"tier {tier['tier']:<9} RTO {format_duration(tier['rto_s']):>4} ({tier['data_class']} "
            f"class)  deadline T0+{fmt_elapsed(tier['deadline_after_s'])}"
        )
        for s in tier["services"]:
            out.print(f"  {s['name']:<20} owner {s['owner']}")
            out.print(f"    needs   {', '.join(s['depends_on']) or 'nothing'}")
            out.print(f"    switch  {s['switch']['record']} -> {s['switch']['to']}")
            out.print(f"    health  {s['health']}")
