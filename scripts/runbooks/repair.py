"""`drctl repair replication`: put back what the audit finds missing or different in a copy.

Steps (journaled like every runbook; the first also runs in a dry run and changes nothing):

1. **audit**: ``drctl audit replication`` on the chosen engine, and from its findings the repair
   plan of each dataset: every version the source holds that a replica lacks or holds differently,
   or whose replication FAILED or is overdue, goes into an S3 Batch Replication manifest. Left out,
   each with its reason: versions the source no longer holds (only a replica has them), versions in
   S3 Glacier Flexible Retrieval or Deep Archive (Batch Replication refuses them; restore first);
2. **manifests**: one CSV manifest per dataset under ``batch/manifests/repair/`` of the source
   region's inventory bucket (SSE-S3, as Batch Operations requires);
3. **jobs**: one ``S3ReplicateObject`` job per manifest in the source region, with the stack's
   least-privilege Batch Replication role and an all-tasks completion report under
   ``batch/reports/repair/``; the request token makes a retried step return the same job;
4. **progress**: DescribeJob until each job ends (``--wait-s``), then the numbers to check.

Batch Replication does not re-replicate a version that was deleted from a destination by version
ID (S3 User Guide); whatever the report says of such a task, the next audit still lists it. Its fix
is a copy in place on the source (a new version that replicates), which drctl does not do on its
own because it changes which version is current. The audit after the job is the proof.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from components.objectives import Objectives
from scripts.checks.audit import DISCREPANCIES, DatasetAudit
from scripts.checks.audit.command import CACHE_HELP, check_engine, live_context, run_audits
from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops import batch_jobs
from scripts.dataops.inventory_store import S3Store, Store
from scripts.runbooks.engine import Runbook, RunContext, RunReport, Step, journal_path, run_command

# Every discrepancy but a version only a replica holds: there is nothing to replicate it from.
REPAIRABLE = tuple(kind for kind in DISCREPANCIES if kind != "only-in-replica")


@dataclass
class RepairPlan:
    """One dataset: the versions to replicate again, and those left out with the reason."""

    dataset: str
    source_region: str
    source_bucket: str
    replicate: list[tuple[str, str]] = field(default_factory=list)
    left: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "source": f"s3://{self.source_bucket} ({self.source_region})",
            "replicate": len(self.replicate),
            "left": {reason: len(rows) for reason, rows in self.left.items()},
        }


def repair_plan(audit: DatasetAudit) -> RepairPlan:
    """Which findings Batch Replication can put right, and why the others are left out."""
    source = audit.copies[audit.source_region]["bucket"]
    plan = RepairPlan(audit.dataset, audit.source_region, source)
    by_version: dict[tuple[str, str], list[dict]] = {}
    for row in audit.rows(None):
        by_version.setdefault((row["key"], row["version_id"]), []).append(row)
    for version, rows in sorted(by_version.items()):
        kinds = {r["kind"] for r in rows}
        storage = next((r["storage_class"] for r in rows if r["storage_class"]), None)
        if "only-in-replica" in kinds:
            reason = "the source no longer holds this version (only a replica does)"
        elif storage in batch_jobs.ARCHIVED_CLASSES:
            reason = f"in {storage}: restore it first (S3InitiateRestoreObject), then rerun"
        elif kinds & set(REPAIRABLE):
            plan.replicate.append(version)
            continue
        else:
            reason = f"no repair for {', '.join(sorted(kinds))}"
        plan.left.setdefault(reason, []).append(version)
    return plan


def repair_steps(
    stack: str,
    objectives: Objectives,
    outputs: Mapping[str, Any],
    client_for: Callable[[str, str], Any],
    *,
    engine: str,
    datasets: Sequence[str] | None,
    query_region: str | None,
    cache: Path | None,
    store: Store | None = None,
    wait_s: float | None = 3600.0,
    poll_s: float = 30.0,
    stamp: Callable[[], str] = batch_jobs.stamp,
) -> list[Step]:
    inventory = outputs.get("inventory") or {}
    store = store or S3Store(lambda region: client_for("s3", region))

    @functools.cache
    def plans() -> dict[str, RepairPlan]:
        audits = run_audits(
            stack,
            objectives,
            outputs,
            engine,
            client_for,
            datasets=datasets,
            query_region=query_region,
            cache=cache,
            store=store,
        )
        return {a.dataset: repair_plan(a) for a in audits}

    def audit(ctx: RunContext) -> dict[str, Any]:
        found = plans()
        for plan in found.values():
            left = sum(len(v) for v in plan.left.values())
            ctx.note(f"{plan.dataset}: {len(plan.replicate)} to replicate, {left} left out")
            for reason, rows in plan.left.items():
                ctx.note(f"  left out ({len(rows)}): {reason}")
        return {"plans": [p.summary() for p in found.values()]}

    def manifests(ctx: RunContext) -> dict[str, Any]:
        written = {}
        when = stamp()
        for plan in plans().values():
            if not plan.replicate:
                continue
            region = plan.source_region
            key = f"{inventory['batchPrefix']}/manifests/repair/{plan.dataset}/{when}/replicate.csv"
            manifest = batch_jobs.write_manifest(
                store, region, inventory["buckets"][region], key, plan.source_bucket, plan.replicate
            )
            ctx.note(f"{plan.dataset}: {manifest.rows} versions in s3://{manifest.bucket}/{key}")
            written[plan.dataset] = manifest.__dict__
        return {"manifests": written}

    def jobs(ctx: RunContext) -> dict[str, Any]:
        created = {}
        role = inventory.get("batchReplicationRoleArn")
        if not role:
            raise DrctlError(
                f"stack {stack} exports no inventory.batchReplicationRoleArn",
                ExitCode.PRECONDITION_FAILED,
            )
        for dataset, entry in ctx.results["manifests"]["manifests"].items():
            manifest = batch_jobs.Manifest(**entry)
            request = batch_jobs.replication_job(
                role_arn=role,
                manifest=manifest,
                report_bucket=manifest.bucket,
                report_prefix=f"{inventory['batchPrefix']}/reports/repair/{dataset}",
                description=f"drctl repair replication {stack} {dataset}: {manifest.rows} versions",
            )
            s3control = client_for("s3control", manifest.region)
            job_id = batch_jobs.create_job(s3control, request)
            ctx.note(f"{dataset}: Batch Replication job {job_id} in {manifest.region}")
            created[dataset] = {
                "job_id": job_id,
                "region": manifest.region,
                "account": request["AccountId"],
            }
        return {"jobs": created}

    def watch(ctx: RunContext) -> dict[str, Any]:
        results = {}
        for dataset, job in ctx.results["jobs"]["jobs"].items():
            final = batch_jobs.wait_for_job(
                client_for("s3control", job["region"]),
                job["account"],
                job["job_id"],
                poll_s=poll_s,
                timeout_s=wait_s,
            )
            results[dataset] = final
            if final["status"] == "Failed":
                raise DrctlError(
                    f"{dataset}: Batch Replication job {job['job_id']} failed: "
                    f"{'; '.join(filter(None, final['failure_reasons'])) or 'see the report'}",
                    ExitCode.STEP_FAILED,
                )
            ctx.note(
                f"{dataset}: {final['status']}, {final['succeeded'] or 0} replicated, "
                f"{final['failed'] or 0} failed; completion report {final['report']}"
            )
        ctx.note(f"prove it: drctl audit replication --stack {stack} after the next reports")
        return {"jobs": results}

    return [
        Step("audit", "Audit the copies and plan the repair", audit, dry_run=True),
        Step(
            "manifests",
            "Write the Batch Operations manifests",
            manifests,
            plan="write one CSV manifest per dataset to the source region's inventory bucket",
        ),
        Step(
            "jobs",
            "Create the S3 Batch Replication jobs",
            jobs,
            plan="create one S3ReplicateObject job per manifest, with a completion report",
        ),
        Step("progress", "Follow the jobs to completion", watch, plan="poll DescribeJob"),
    ]


def fill_jobs(
    stack: str,
    outputs: Mapping[str, Any],
    client_for: Callable[[str, str], Any],
    stamp: Callable[[], str] = batch_jobs.stamp,
) -> dict[str, Any]:
    """One Batch Replication job per dataset over a manifest S3 generates from the replication
    configuration: every eligible version of the new primary copy, replicas included (a rebuilt
    primary holds the old primary's replicas), to the destinations it now replicates to. What
    ``drctl rebuild`` uses to fill the new third region; archived versions are filtered out (S3
    refuses them) and show up in the next audit."""
    inventory = outputs.get("inventory") or {}
    role = inventory.get("batchReplicationRoleArn")
    if not role or not inventory.get("datasets"):
        raise DrctlError(
            f"stack {stack} exports no inventory with a Batch Replication role: nothing can fill "
            "its new copies",
            ExitCode.PRECONDITION_FAILED,
        )
    when = stamp()
    created = {}
    for dataset, entry in sorted(inventory["datasets"].items()):
        region = entry["primaryRegion"]
        prefix = inventory["batchPrefix"]
        request = batch_jobs.replication_job(
            role_arn=role,
            source_bucket=entry["copies"][region],
            generated_manifest_prefix=f"{prefix}/manifests/rebuild/{dataset}/{when}",
            report_bucket=inventory["buckets"][region],
            report_prefix=f"{prefix}/reports/rebuild/{dataset}",
            description=f"drctl rebuild {stack}: copy every existing {dataset} object to the "
            "new replicas",
        )
        job_id = batch_jobs.create_job(client_for("s3control", region), request)
        progress.print(f"    {dataset}: Batch Replication job {job_id} in {region}")
        created[dataset] = {"job_id": job_id, "region": region, "account": request["AccountId"]}
    return created


def run_repair(
    stack: str,
    objectives: Objectives,
    outputs: Mapping[str, Any],
    client_for: Callable[[str, str], Any],
    *,
    execute: bool,
    yes: bool,
    journal: str | Path | None = None,
    fresh: bool = False,
    **options: Any,
) -> RunReport:
    """The repair runbook; ``options`` are ``repair_steps``'s (engine, datasets, cache...)."""
    options.setdefault("engine", "local")
    options.setdefault("datasets", None)
    options.setdefault("query_region", None)
    options.setdefault("cache", None)  # the state directory (scripts/locations.py)
    steps = repair_steps(stack, objectives, outputs, client_for, **options)
    book = Runbook(
        "repair-replication", stack, steps, journal=journal_path("repair", stack, journal)
    )
    return book.run(execute=execute, yes=yes, fresh=fresh, what=f"repair the copies of {stack}")


def register(app: typer.Typer) -> None:
    repair_app = typer.Typer(help="Put back what drctl audit finds missing in a copy.")
    app.add_typer(repair_app, name="repair")

    @repair_app.command("replication")
    def replication(
        stack: str = typer.Option("prod", "--stack", "-s", help="Stack whose copies to repair."),
        engine: str = typer.Option("local", "--engine", help="Audit engine: local or athena."),
        dataset: list[str] | None = typer.Option(None, "--dataset", help="Only this dataset."),
        query_region: str | None = typer.Option(None, "--query-region", help="Athena region."),
        outputs_file: Path | None = typer.Option(None, "--outputs", help="Stack outputs JSON."),
        cache: Path | None = typer.Option(None, "--cache", help=CACHE_HELP),
        wait_s: float = typer.Option(3600, "--wait-s", help="Seconds to follow the jobs."),
        execute: bool = typer.Option(False, "--execute", help="Create the jobs; else dry run."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask; required without a TTY."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        journal: Path | None = typer.Option(None, "--journal", help="Journal file."),
        fresh: bool = typer.Option(False, "--fresh", help="New run after a completed one."),
    ) -> None:
        """Audit, then replicate again what a copy lacks (S3 Batch Replication). Dry run default."""

        def build() -> RunReport:
            check_engine(engine)
            objectives, outputs, clients = live_context(stack, outputs_file)
            progress.print(f"repair replication {stack}: audit on the {engine} engine")
            return run_repair(
                stack,
                objectives,
                outputs,
                clients,
                execute=execute,
                yes=yes,
                engine=engine,
                datasets=dataset,
                query_region=query_region,
                cache=cache,
                journal=journal,
                fresh=fresh,
                wait_s=wait_s,
            )

        run_command(build, as_json)
