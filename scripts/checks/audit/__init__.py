"""`drctl audit replication`: do the copies of each dataset hold the same versions?

For every inventoried dataset of a stack (the ``inventory`` stack output, from
components/inventory.py), the newest complete S3 Inventory report of each copy is compared with the
others by ``audit.sql``, on the local engine (DuckDB over the downloaded Parquet reports) or on
Athena (the Glue tables the stack declares). It reports, per copy region and kind, versions that
are missing, only in a replica, or different (delete marker, size, ETag, checksum algorithm), and
source objects whose replication FAILED or has been PENDING for longer than the class RPO.

What is not a discrepancy, by construction: versions written after the oldest report's start minus
the RPO (``unsettled``: replication may still be within its objective); noncurrent versions that
lifecycle expires on each copy's own clock (``expiring``); storage classes (each copy transitions on
its own). Exit 0: no discrepancy; 1: discrepancies; 4: a report or output is missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from components.objectives import Objectives
from scripts.checks.audit.engines import AuditPlan, CopyPlan, EngineResult
from scripts.checks.audit.snapshots import latest_snapshot
from scripts.checks.audit.sql import Params
from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops.inventory_store import Store

DISCREPANCIES = (
    "missing",
    "only-in-replica",
    "delete-marker-differs",
    "size-differs",
    "etag-differs",
    "checksum-differs",
    "replication-failed",
    "replication-pending",
)
NOT_DISCREPANCIES = ("expiring",)
EXPIRY_SLACK_DAYS = 2  # lifecycle expires asynchronously, up to a day or two late, per copy


@dataclass
class DatasetAudit:
    dataset: str
    data_class: str
    rpo_s: int
    source_region: str
    engine: str
    copies: dict[str, dict[str, Any]]
    params: Params
    findings: pa.Table
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    scanned_bytes: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per phase, local engine

    @property
    def discrepancies(self) -> int:
        return sum(n for per in self.counts.values() for k, n in per.items() if k in DISCREPANCIES)

    @property
    def expiring(self) -> int:
        return sum(per.get("expiring", 0) for per in self.counts.values())

    def rows(self, limit: int | None = None, kinds: Sequence[str] = DISCREPANCIES) -> list[dict]:
        mask = pc.is_in(self.findings["kind"], pa.array(list(kinds)))
        selected = self.findings.filter(mask)
        if limit is not None:
            selected = selected.slice(0, limit)
        return selected.to_pylist()

    def to_record(self, limit: int) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "class": self.data_class,
            "rpo_s": self.rpo_s,
            "source_region": self.source_region,
            "engine": self.engine,
            "copies": self.copies,
            "settled_before": self.params.settled_before.isoformat(),
            "pending_before": self.params.pending_before.isoformat(),
            "expiring_before": self.params.expiring_before.isoformat(),
            "counts": self.counts,
            "discrepancies": self.discrepancies,
            "expiring": self.expiring,
            "scanned_bytes": self.scanned_bytes,
            "findings": [
                {
                    **r,
                    "last_modified": r["last_modified"].isoformat() if r["last_modified"] else None,
                }
                for r in self.rows(limit)
            ],
            "findings_shown": min(limit, self.discrepancies),
        }


def count_findings(findings: pa.Table) -> dict[str, dict[str, int]]:
    """region -> kind -> number of findings."""
    counts: dict[str, dict[str, int]] = {}
    if findings.num_rows == 0:
        return counts
    grouped = findings.group_by(["region", "kind"]).aggregate([("key", "count")])
    for row in grouped.to_pylist():
        counts.setdefault(row["region"], {})[row["kind"]] = row["key_count"]
    return counts


def plan_dataset(
    inventory: Mapping[str, Any],
    dataset: str,
    objectives: Objectives,
    store: Store,
    *,
    query_region: str | None = None,
) -> AuditPlan:
    """Which report of each copy to compare, and the cut-offs that make the comparison fair."""
    entry = inventory["datasets"][dataset]
    source = entry["primaryRegion"]
    rpo = dt.timedelta(seconds=objectives.of(entry["dataClass"]).rpo_s)
    snapshots = {
        region: latest_snapshot(
            store, region, inventory["buckets"][region], bucket, inventory["configId"]
        )
        for region, bucket in entry["copies"].items()
    }
    oldest = min(s.started for s in snapshots.values())
    keep = dt.timedelta(days=max(0, int(entry["noncurrentExpiryDays"]) - EXPIRY_SLACK_DAYS))
    params = Params(
        copies=len(snapshots),
        settled_before=oldest - rpo,
        pending_before=snapshots[source].started - rpo,
        expiring_before=oldest - keep,
    )
    athena = (inventory.get("athena") or {}).get(query_region or "", {})
    tables = (athena.get("tables") or {}).get(dataset, {})
    copies = tuple(
        CopyPlan(region, region == source, snapshot, tables.get(region, ""))
        for region, snapshot in snapshots.items()
    )
    return AuditPlan(dataset, entry["dataClass"], copies, params, athena.get("database", ""))


def audit_dataset(
    inventory: Mapping[str, Any],
    dataset: str,
    objectives: Objectives,
    store: Store,
    engine: Any,
    *,
    query_region: str | None = None,
) -> DatasetAudit:
    plan = plan_dataset(inventory, dataset, objectives, store, query_region=query_region)
    progress.print(
        f"auditing {dataset} ({plan.data_class}) on the {engine.name} engine: "
        f"{len(plan.copies)} copies, settled before {plan.params.settled_before:%Y-%m-%d %H:%M}Z"
    )
    result: EngineResult = engine.run(plan)
    stats = {row["region"]: row for row in result.stats}
    copies = {}
    for copy in plan.copies:
        row = stats.get(copy.region, {})
        copies[copy.region] = {
            "bucket": copy.snapshot.source_bucket,
            "source": copy.is_source,
            "report_started": copy.snapshot.started.isoformat(),
            "report": f"s3://{copy.snapshot.store_bucket}/{copy.snapshot.manifest_key}",
            "versions": int(row.get("versions") or 0),
            "delete_markers": int(row.get("delete_markers") or 0),
            "unsettled": int(row.get("unsettled") or 0),
            "bytes": int(row.get("bytes") or 0),
        }
    return DatasetAudit(
        dataset=dataset,
        data_class=plan.data_class,
        rpo_s=objectives.of(plan.data_class).rpo_s,
        source_region=next(c.region for c in plan.copies if c.is_source),
        engine=engine.name,
        copies=copies,
        params=plan.params,
        findings=result.findings,
        counts=count_findings(result.findings),
        scanned_bytes=result.scanned_bytes,
        seconds=result.seconds,
    )


def inventory_of(outputs: Mapping[str, Any], stack: str) -> Mapping[str, Any]:
    inventory = outputs.get("inventory")
    if not inventory or not inventory.get("datasets"):
        raise DrctlError(
            f"stack {stack} exports no 'inventory': deploy the ObjectInventory component "
            "(__main__.py) first",
            ExitCode.PRECONDITION_FAILED,
        )
    return inventory


def select_datasets(inventory: Mapping[str, Any], wanted: Sequence[str] | None) -> list[str]:
    known = list(inventory["datasets"])
    for name in wanted or ():
        if name not in known:
            raise DrctlError(
                f"--dataset {name!r} is not inventoried by this stack; datasets: "
                f"{', '.join(known)}",
                ExitCode.INVALID_CONFIG,
            )
    return list(wanted) if wanted else known


from scripts.checks.audit.command import register  # noqa: E402  (the CLI over the above)

__all__ = ["DatasetAudit", "audit_dataset", "plan_dataset", "register"]
