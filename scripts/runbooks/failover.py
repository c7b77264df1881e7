"""`drctl failover`: the spec's database recovery procedure as a journaled runbook.

In the spec's order (Assess, Isolate, Restore/promote, Validate, Resume):

1. **assess** (also in a dry run): the standby's lag as data at risk (scripts/dataops/lag.py)
   against the critical RPO, DR-region backups present, who holds the lease. Lag above the RPO,
   or unknown, is refused unless --accept-data-loss. A standby this very run already promoted is
   recognised (its epoch record names the run), not refused.
2. **isolate**: a reachable primary is soft-fenced and the standby must *replay* its final LSN,
   or the switchover is refused (and the primary un-fenced) unless --accept-data-loss, which
   says how much would be lost. Then the lease moves to the DR region under a new epoch, the old
   primary's database ingress is revoked where its API answers, and promotion waits until the
   old primary's fence guard acknowledges the epoch or its lease has run out
   (scripts/runbooks/fencing.py). Replication to the standby stops.
3. **promote**: re-checks the lease (a resumed run too), then pg_promote() (self-managed),
   PromoteReadReplica (rds), or disables the subscription and moves sequences (supabase); the
   sample tables are compared with the fenced primary; fence state that reached the standby
   through WAL is cleared; the database is stamped with the epoch and this run's id.
4. **switch-config** and 5. **switch-dns**: secrets, SSM runtime config and the PRIMARY record.
6. **validate**: the application's own role (not a superuser) connects and commits a write, DNS
   answers DR, the lease is still ours and the old primary does not serve as a primary.
7. **rearm** (self-managed): pgBackRest on the promoted primary points at the surviving
   repositories, checks, takes a full backup and turns its timers on (scripts/runbooks/rearm.py).
   The RTO ends at validate; re-arm has its own duration in the report.

With the stack's status page and topics in its outputs, each step is published (an
``open-incident`` step first; scripts/runbooks/failover_comms.py). The journal is shared: an S3
object in the DR-region control bucket (scripts/runbooks/journal.py) that any operator on any
machine resumes; ``--journal FILE`` keeps it local instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from psycopg import sql

from components.objectives import format_duration
from scripts.common import DrctlError, ExitCode
from scripts.dataops.cloud import (
    ROUTE53_REGION,
    Aws,
    check_dr_backups,
    default_sessions,
    describe_instance,
    failover_record_sets,
    point_config_at,
    promote_rds,
    promote_secret_replicas,
    rds_replica_lag,
    secondary_target,
    upsert_primary_record,
)
from scripts.dataops.database import (
    TIMELINE_SQL,
    clear_fence_state,
    opened,
    probe_app_write,
    promote_postgres,
    promoted_by,
    record_epoch,
    redact,
    stop_streaming,
    sync_sequences,
    table_fingerprint,
)
from scripts.dataops.failover_plan import (
    ACTIVE_REGION_KEY,
    DATABASE_HOST_KEY,
    FailoverPlan,
    load_plan,
    read_outputs,
)
from scripts.dataops.hosts import DbNode
from scripts.dataops.incident import dsn_secrets
from scripts.dataops.lag import (
    ArchiveProbe,
    LagReading,
    check_lag,
    logical_lag,
    physical_lag,
)
from scripts.runbooks import fencing
from scripts.runbooks.engine import Runbook, RunContext, RunReport, Step, run_command
from scripts.runbooks.failover_comms import announced, incident_publisher
from scripts.runbooks.journal import JournalStore, S3Journal
from scripts.runbooks.rearm import rearm


@dataclass
class Connections:
    """DSNs the runbook uses. Never printed: only ``redact`` forms reach the journal.

    primary / standby: superuser DSNs of the old primary and the DR database. app: the
    application's own role on the DR database, for validation (never a superuser).
    """

    primary: str | None = None
    standby: str | None = None
    app: str | None = None


def _require(dsn: str | None, option: str, plan: FailoverPlan) -> str:
    if not dsn:
        raise DrctlError(
            f"{option} is required for the {plan.backend} backend (or its DRCTL_ env var)",
            ExitCode.INVALID_CONFIG,
        )
    return dsn


def default_journal(plan: FailoverPlan, aws: Aws, command: str) -> JournalStore | None:
    """The shared journal in the control bucket, or None (local file) when there is none."""
    if not plan.control_bucket:
        return None
    return S3Journal(
        aws.client("s3", plan.dr_region), plan.control_bucket, plan.journal_key(command)
    )


def failover_steps(
    plan: FailoverPlan,
    aws: Aws,
    dsns: Connections,
    *,
    accept_data_loss: bool = False,
    accept_unfenced: bool = False,
    samples: Sequence[str] = (),
    catch_up_timeout_s: float = 30,
    waiter_delay: int = 15,
    dr_node: DbNode | None = None,
    archive: ArchiveProbe | None = None,
    fence_poll_s: float = 0.5,
) -> list[Step]:
    backend = plan.backend
    uses_dsn = backend in ("self-managed", "supabase")
    store = fencing.lease_store(plan, aws)
    # Only self-managed hosts run the fence guard; elsewhere the lease is the record, not a fence.
    needs_guard = backend == "self-managed"

    def assess(ctx: RunContext) -> dict[str, Any]:
        recognised = None
        if uses_dsn:
            with opened(_require(dsns.standby, "--standby-dsn", plan), "standby") as standby:
                if backend == "self-managed":
                    if not standby.execute("select pg_is_in_recovery()").fetchone()[0]:
                        recognised = promoted_by(standby)
                        if not recognised or recognised["run_id"] != ctx.run_id:
                            raise DrctlError(
                                f"the standby at {redact(dsns.standby)} is not in recovery: it "
                                "is already a primary, and not one this run promoted "
                                f"({recognised or 'no epoch record'}); nothing to promote",
                                ExitCode.PRECONDITION_FAILED,
                            )
                        ctx.note(f"promoted earlier by this run (epoch {recognised['epoch']})")
                        reading = LagReading(0.0, 0, False, "already promoted by this run", "lsn")
                    else:
                        reading = physical_lag(
                            standby,
                            dsns.primary,
                            archive=archive,
                            unarchived_bound_s=plan.unarchived_bound_s,
                        )
                else:
                    reading = logical_lag(standby, dsns.primary)
        else:
            reading = rds_replica_lag(plan, aws)
        ctx.note(f"lag {reading.shown} ({reading.method}); RPO {format_duration(plan.rpo_s)}")
        within = check_lag(reading, plan.rpo_s, accept_data_loss)
        backups = check_dr_backups(plan, aws)
        ctx.note(
            f"DR backups: {'present' if backups['present'] else 'MISSING'} at {backups['where']}"
        )
        if not backups["present"] and not accept_data_loss:
            raise DrctlError(
                f"no DR-region backup found ({backups['where']}): after failover the promoted "
                "database would have no recovery point; fix the backups, or rerun with "
                "--accept-data-loss",
                ExitCode.PRECONDITION_FAILED,
            )
        lease = fencing.describe_lease(store)
        ctx.note(f"lease: epoch {lease.get('epoch')} held by {lease.get('holder')}")
        return {
            **reading.to_record(),
            "rpo_s": plan.rpo_s,
            "within_rpo": within,
            "accepted_data_loss": not within or not backups["present"],
            "dr_backup": backups,
            "lease": lease,
            "promoted_by_this_run": recognised,
        }

    def isolate(ctx: RunContext) -> dict[str, Any]:
        result: dict[str, Any] = {"primary_reachable": False, "fenced": False}
        if uses_dsn:
            result = fencing.soft_fence_and_catch_up(
                dsns.primary,
                _require(dsns.standby, "--standby-dsn", plan),
                backend,
                timeout_s=catch_up_timeout_s,
                accept_data_loss=accept_data_loss,
                samples=samples,
                note=ctx.note,
            )
        taken = fencing.take_lease(
            plan,
            store,
            plan.dr_region,
            ctx.run_id or "dry-run",
            accept_unfenced=accept_unfenced,
            require_guard=needs_guard,
        )
        result["lease"] = taken
        if taken.get("epoch"):
            ctx.note(f"lease: epoch {taken['epoch']} now held by {plan.dr_region}")
        if backend in ("self-managed", "rds"):
            result["network"] = fencing.network_fence(plan, aws)
        result["fence_wait"] = fencing.wait_for_fence(
            plan, store, taken, poll_s=fence_poll_s, note=ctx.note
        )
        ctx.note(f"old primary fenced by: {result['fence_wait']['fenced_by']}")
        if backend == "self-managed":
            with opened(_require(dsns.standby, "--standby-dsn", plan), "standby") as standby:
                stop_streaming(standby)
        result["replication_stopped"] = backend == "self-managed"
        return result

    def promote(ctx: RunContext) -> dict[str, Any]:
        isolated = ctx.results.get("isolate", {})
        epoch = (isolated.get("lease") or {}).get("epoch")
        lease = fencing.recheck_lease(store, plan.dr_region, epoch)
        if backend == "rds":
            return {**promote_rds(plan, aws, waiter_delay), "lease": lease}
        with opened(_require(dsns.standby, "--standby-dsn", plan), "standby") as standby:
            if backend == "self-managed":
                result = promote_postgres(standby)
            else:
                subs = [
                    r[0]
                    for r in standby.execute("select subname from pg_subscription where subenabled")
                ]
                for sub in subs:
                    standby.execute(
                        sql.SQL("alter subscription {} disable").format(sql.Identifier(sub))
                    )
                result = {"disabled_subscriptions": subs, "sequences": sync_sequences(standby)}
            expected = isolated.get("samples_at_fence") or {}
            ours = {t: table_fingerprint(standby, t) for t in expected}
            diffs = [t for t in expected if ours[t] != expected[t]]
            if diffs:
                raise DrctlError(
                    f"sample tables differ from the fenced primary: {', '.join(diffs)} "
                    f"(promoted {[ours[t] for t in diffs]}, primary {[expected[t] for t in diffs]})"
                )
            result["samples"] = {"compared_with_fenced_primary": bool(expected), "tables": ours}
            if backend == "self-managed":
                limits = isolated.get("connection_limits_before") or {}
                result["fence_state"] = clear_fence_state(standby, limits)
            record_epoch(standby, int(epoch or 0), ctx.run_id or "", plan.dr_region)
        return {**result, "lease": lease}

    def switch_config(ctx: RunContext) -> dict[str, Any]:
        secrets = promote_secret_replicas(plan, aws)
        ctx.note(f"secret replicas promoted: {len(secrets['promoted'])}")
        config = point_config_at(
            plan, aws, plan.dr_region, plan.standby_endpoint, required=(plan.dr_region,)
        )
        return {"secrets": secrets, "config": config}

    def switch_dns(ctx: RunContext) -> dict[str, Any]:
        target = secondary_target(plan, aws)
        result = upsert_primary_record(plan, aws, target, None)
        ctx.note(f"{plan.record_name} PRIMARY -> {target} ({result.get('status', 'unchanged')})")
        return result

    def validate(ctx: RunContext) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if backend == "rds":
            instance = describe_instance(aws.client("rds", plan.dr_region), plan.replica_identifier)
            if instance["DBInstanceStatus"] != "available":
                raise DrctlError(f"DR instance is {instance['DBInstanceStatus']}")
            result["instance_status"] = instance["DBInstanceStatus"]
        if uses_dsn:
            with opened(_require(dsns.standby, "--standby-dsn", plan), "promoted database") as new:
                if new.execute("select pg_is_in_recovery()").fetchone()[0]:
                    raise DrctlError("the promoted database is still in recovery")
                result["timeline"] = new.execute(TIMELINE_SQL).fetchone()[0]
        if uses_dsn or dsns.app:
            result["app_write"] = probe_app_write(_require(dsns.app, "--app-dsn", plan))
            ctx.note(f"the application role {result['app_write']['role']} committed a write")
        sets = failover_record_sets(plan, aws)
        values = [r["Value"] for r in sets["PRIMARY"]["ResourceRecords"]]
        expected = ctx.results.get("switch-dns", {}).get("now")
        if values != [expected]:
            raise DrctlError(f"PRIMARY record answers {values}, expected {[expected]}")
        result["dns_primary"] = values[0]
        epoch = (ctx.results.get("isolate", {}).get("lease") or {}).get("epoch")
        result["fence"] = fencing.fence_holds(store, plan.dr_region, epoch, dsns.primary)
        return result

    def rearm_step(ctx: RunContext) -> dict[str, Any]:
        if backend == "rds":
            instance = describe_instance(aws.client("rds", plan.dr_region), plan.replica_identifier)
            days = instance.get("BackupRetentionPeriod", 0)
            if not days:
                raise DrctlError("the promoted RDS instance has automated backups off")
            return {"automated_backups_retention_days": days}
        if backend == "supabase":
            return {"note": "the logical dumps run from the DR subscriber host already"}
        if dr_node is None:
            ctx.note("WARNING: no DR host given: backups are NOT re-armed (--dr-host)")
            return {"skipped": "no DR host given (drctl failover --dr-host)"}
        return rearm(dr_node, plan.artefacts)

    return [
        Step(
            "assess",
            "Assess: data at risk against the RPO, DR backups, lease",
            assess,
            dry_run=True,
        ),
        Step(
            "isolate",
            "Isolate: fence the primary (lease, network, soft), stop replication",
            isolate,
            plan="soft-fence a reachable primary and wait for its final LSN, take the lease, "
            "revoke its ingress, wait for its guard",
        ),
        Step("promote", "Promote the DR database", promote, plan="re-check the lease, promote"),
        Step(
            "switch-config",
            "Switch secrets and config to the DR region",
            switch_config,
            plan="promote secret replicas and point SSM runtime config at the DR region",
        ),
        Step(
            "switch-dns",
            "Switch DNS to the DR endpoint",
            switch_dns,
            plan="point the PRIMARY failover record at the DR endpoint",
        ),
        Step(
            "validate",
            "Validate: the application writes, DNS answers DR, the fence holds",
            validate,
            plan="write as the application role, check DNS, the lease and the old primary",
        ),
        Step(
            "rearm",
            "Re-arm backups on the promoted primary",
            rearm_step,
            plan="point pgBackRest at the surviving repositories, check, full backup, timers on",
            restores_service=False,
        ),
    ]


def run_failover(
    plan: FailoverPlan,
    aws: Aws,
    dsns: Connections,
    *,
    execute: bool,
    yes: bool,
    accept_data_loss: bool = False,
    accept_unfenced: bool = False,
    samples: Sequence[str] = (),
    journal: str | Path | JournalStore | None = None,
    fresh: bool = False,
    waiter_delay: int = 15,
    dr_node: DbNode | None = None,
    archive: ArchiveProbe | None = None,
    catch_up_timeout_s: float = 30,
    fence_poll_s: float = 0.5,
    publish: bool = True,
) -> RunReport:
    """The failover runbook. ``journal``: a local file path or a store; default the shared
    journal in the control bucket (a local file when the stack has none). ``publish``: update
    the status page and notify through the stack's topics at each step (failover_comms.py),
    when the outputs declare them."""
    steps = failover_steps(
        plan,
        aws,
        dsns,
        accept_data_loss=accept_data_loss,
        accept_unfenced=accept_unfenced,
        samples=samples,
        catch_up_timeout_s=catch_up_timeout_s,
        waiter_delay=waiter_delay,
        dr_node=dr_node,
        archive=archive,
        fence_poll_s=fence_poll_s,
    )
    if publish:
        secrets = dsn_secrets(dsns.primary, dsns.standby, dsns.app)
        steps = announced(steps, plan, incident_publisher(plan, aws, secrets))
    store = journal if journal is not None else default_journal(plan, aws, "failover")
    book = Runbook("failover", plan.stack, steps, journal=store)
    return book.run(
        execute=execute,
        yes=yes,
        fresh=fresh,
        what=f"fail {plan.stack} over from {plan.primary_region} to {plan.dr_region}",
    )


# ---------------------------------------------------------------------------------------------
# CLI


def make_aws() -> Aws:
    """The clients the CLI uses; tests replace this to inject moto or a Stubber."""
    return Aws(default_sessions)


def register(app: typer.Typer) -> None:
    from scripts.runbooks import cli_options as opt
    from scripts.runbooks.failback import register as register_failback

    @app.command()
    def failover(
        stack: str = opt.stack,
        outputs: Path | None = opt.outputs,
        execute: bool = opt.execute,
        yes: bool = opt.yes,
        accept_data_loss: bool = opt.accept_data_loss,
        accept_unfenced: bool = opt.accept_unfenced,
        as_json: bool = opt.as_json,
        journal: Path | None = opt.journal,
        fresh: bool = opt.fresh,
        sample_table: list[str] | None = opt.sample_table,
        primary_dsn: str | None = opt.primary_dsn,
        standby_dsn: str | None = opt.standby_dsn,
        app_dsn: str | None = opt.app_dsn,
        dr_host: str = opt.dr_host,
        dr_data_dir: str = opt.dr_data_dir,
        no_systemd: bool = opt.no_systemd,
    ) -> None:
        """Fail the database over to the DR region (dry run unless --execute)."""

        def build() -> RunReport:
            plan = load_plan(stack, read_outputs(stack, outputs))
            node = opt.node(dr_host, dr_data_dir, standby_dsn, no_systemd)
            return run_failover(
                plan,
                make_aws(),
                Connections(primary_dsn, standby_dsn, app_dsn),
                execute=execute,
                yes=yes,
                accept_data_loss=accept_data_loss,
                accept_unfenced=accept_unfenced,
                samples=sample_table or (),
                journal=journal,
                fresh=fresh,
                dr_node=node if plan.backend == "self-managed" else None,
                archive=ArchiveProbe(node.host, node.pgbackrest)
                if plan.backend == "self-managed"
                else None,
            )

        run_command(build, as_json)

    register_failback(app, make_aws)


__all__ = [
    "ACTIVE_REGION_KEY",
    "DATABASE_HOST_KEY",
    "ROUTE53_REGION",
    "TIMELINE_SQL",
    "Aws",
    "Connections",
    "FailoverPlan",
    "LagReading",
    "check_lag",
    "default_sessions",
    "failover_steps",
    "load_plan",
    "physical_lag",
    "read_outputs",
    "run_failover",
]
