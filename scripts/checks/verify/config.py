"""App secrets and config: Secrets Manager replicas InSync in the DR region, and the SSM config
equal in the primary and DR regions (``drctl config diff``)."""

from __future__ import annotations

from typing import Any

from components.objectives import TAG_CLASS
from scripts.checks.verify.model import (
    Check,
    CheckGroup,
    ClientFactory,
    Context,
    need,
    passed,
)
from scripts.dataops import config_sync


def secret_checks(ctx: Context) -> list[Check]:
    primary, dr = ctx.objectives.regions.primary, ctx.objectives.regions.dr
    checks = []
    sm = ctx.clients("secretsmanager", primary)
    for name, arns in sorted(need(ctx.outputs, "secretArns").items()):
        described = sm.describe_secret(SecretId=arns.get(primary, name))
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        replica = next(
            (r for r in described.get("ReplicationStatus", []) if r.get("Region") == dr), None
        )
        status = replica.get("Status") if replica else None
        checks.append(
            Check(
                "secret-replica",
                tags.get(TAG_CLASS, "operational"),
                name,
                status,
                "InSync",
                passed(status == "InSync"),
                f"replica in {dr}: {status}"
                + (f" ({replica.get('StatusMessage')})" if replica and status != "InSync" else "")
                if replica
                else f"no replica in {dr}",
            )
        )
    return checks


def config_checks(ctx: Context) -> list[Check]:
    target = config_sync.target_of(ctx.stack, ctx.root)
    diff = config_sync.diff_regions(lambda region: _SessionShim(ctx.clients, region), target)
    drift = [r for r in diff["parameters"] if r["status"] not in ("same", "version-skew")]
    return [
        Check(
            "config-in-sync",
            "operational",
            f"{target.prefix} ({target.primary} vs {target.dr})",
            len(drift),
            0,
            passed(not drift and bool(diff["parameters"])),
            f"{len(diff['parameters'])} parameter(s); "
            + (
                "drift: " + ", ".join(f"{r['name']} {r['status']}" for r in drift)
                if drift
                else ("all equal" if diff["parameters"] else "no parameters found")
            ),
        )
    ]


class _SessionShim:
    """config_sync takes a region -> session factory; hand it the same injected clients."""

    def __init__(self, clients: ClientFactory, region: str):
        self._clients, self._region = clients, region

    def client(self, service: str) -> Any:
        return self._clients(service, self._region)


SECRET_REPLICAS = CheckGroup("secret-replica", secret_checks, needs=("secretArns",))
CONFIG_IN_SYNC = CheckGroup("config-in-sync", config_checks, data_class="operational")
