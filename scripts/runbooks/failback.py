"""`drctl failback` (self-managed): back to the primary region, on the hosts where the files are.

1. **assess**: the DR database serves as primary; both data directories exist on their hosts.
2. **reseed-old-primary**: on the old primary's host, pg_rewind (pg_basebackup when it cannot)
   from the DR database, as a standby through a failback slot (scripts/dataops/reseed.py).
3. **catch-up**: it streams; its lag against the RPO.
4. **isolate**: the DR database is soft-fenced, the old primary must replay its final LSN (or
   the failback is refused and the DR database un-fenced), the lease moves back to the primary
   region, and the DR host's guard stops the DR server (its acknowledgement, or the lease wait).
5. **promote**: the old primary, after re-checking the lease; WAL-borne fence state is cleared.
6. **switch-config**, 7. **switch-dns**: secrets back to replicas of the primary region, SSM and
   the PRIMARY record (with its health check) back.
8. **reseed-dr**: on the DR host, the DR database becomes a standby of the primary again,
   through its declared slot.
9. **validate**: the application's role writes on the primary, the DR standby streams and
   matches the sample tables, DNS answers the primary, the lease is the primary region's.

Each host is a ``DbNode`` (scripts/dataops/hosts.py): its own machine and service user, reached
locally or over ssh; nothing assumes the two data directories share a machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from scripts.common import DrctlError, ExitCode
from scripts.dataops.cloud import (
    Aws,
    failover_record_sets,
    point_config_at,
    rejoin_secret_replicas,
    upsert_primary_record,
)
from scripts.dataops.database import (
    clear_fence_state,
    opened,
    probe_app_write,
    promote_postgres,
    record_epoch,
    redact,
    sample_tables,
    stop_streaming,
    table_fingerprint,
    try_connect,
    wait_for_lsn,
)
from scripts.dataops.failover_plan import FailoverPlan, load_plan, read_outputs
from scripts.dataops.hosts import DbNode, exists
from scripts.dataops.lag import LagReading, check_lag, physical_lag
from scripts.dataops.reseed import reseed_as_standby
from scripts.runbooks import fencing
from scripts.runbooks.engine import Runbook, RunContext, RunReport, Step, run_command
from scripts.runbooks.journal import JournalStore
from scripts.runbooks.rearm import disarm

FAILBACK_SLOT = "failback_standby"


@dataclass
class FailbackNodes:
    """The two database servers, each on its own host: the old primary (to become primary
    again) and the DR database (primary since the failover, standby again afterwards)."""

    old_primary: DbNode
    dr: DbNode


def wait_streaming(standby_dsn: str, upstream_dsn: str, timeout: float) -> LagReading:
    """Wait for a re-seeded standby to accept connections and catch up; return its lag."""
    deadline = time.monotonic() + timeout
    while True:
        conn = try_connect(standby_dsn, timeout=2)
        if conn is not None:
            with conn:
                with opened(upstream_dsn, "upstream") as upstream:
                    target = upstream.execute("select pg_current_wal_lsn()::text").fetchone()[0]
                wait_for_lsn(conn, target, max(0.0, deadline - time.monotonic()))
                return physical_lag(conn, upstream_dsn)
        if time.monotonic() > deadline:
            raise DrctlError(
                f"the re-seeded standby at {redact(standby_dsn)} did not accept connections "
                f"within {timeout:.0f}s"
            )
        time.sleep(0.1)


def failback_steps(
    plan: FailoverPlan,
    aws: Aws,
    nodes: FailbackNodes,
    *,
    app_dsn: str | None,
    accept_data_loss: bool = False,
    accept_unfenced: bool = False,
    samples: Sequence[str] = (),
    catch_up_timeout_s: float = 60,
    fence_poll_s: float = 0.5,
) -> list[Step]:
    if plan.backend != "self-managed":
        raise DrctlError(
            f"failback is automated for the self-managed backend only (this stack: "
            f"{plan.backend}); see docs/runbooks/failback.md for the manual steps",
            ExitCode.PRECONDITION_FAILED,
        )
    old, dr = nodes.old_primary, nodes.dr
    for node, option in ((old, "--primary-dsn"), (dr, "--standby-dsn")):
        if not node.dsn:
            raise DrctlError(f"{option} is required for failback", ExitCode.INVALID_CONFIG)
    old_dsn, dr_dsn = str(old.dsn), str(dr.dsn)
    slot = plan.replication_slot or "dr_standby"
    store = fencing.lease_store(plan, aws)

    def assess(ctx: RunContext) -> dict[str, Any]:
        with opened(dr_dsn, "DR database") as conn:
            if conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                raise DrctlError(
                    "the DR database is still a standby: there was no failover to come back from",
                    ExitCode.PRECONDITION_FAILED,
                )
        for node in (old, dr):
            if not exists(node.host, node.file("PG_VERSION")):
                raise DrctlError(
                    f"{node.host.name}:{node.data_dir} holds no PostgreSQL cluster",
                    ExitCode.PRECONDITION_FAILED,
                )
        return {
            "old_primary": f"{old.host.name}:{old.data_dir}",
            "dr": f"{dr.host.name}:{dr.data_dir}",
            "lease": fencing.describe_lease(store),
        }

    def reseed_old(ctx: RunContext) -> dict[str, Any]:
        result = reseed_as_standby(old, dr_dsn, FAILBACK_SLOT, "failback")
        ctx.note(f"old primary re-seeded on {old.host.name} by {result['method']}")
        return result

    def catch_up(ctx: RunContext) -> dict[str, Any]:
        reading = wait_streaming(old_dsn, dr_dsn, catch_up_timeout_s)
        within = check_lag(reading, plan.rpo_s, accept_data_loss)
        return {**reading.to_record(), "within_rpo": within}

    def isolate(ctx: RunContext) -> dict[str, Any]:
        result = fencing.soft_fence_and_catch_up(
            dr_dsn,
            old_dsn,
            "self-managed",
            timeout_s=catch_up_timeout_s,
            accept_data_loss=accept_data_loss,
            samples=samples,
            note=ctx.note,
        )
        taken = fencing.take_lease(
            plan, store, plan.primary_region, ctx.run_id or "", accept_unfenced=accept_unfenced
        )
        result["lease"] = taken
        result["fence_wait"] = fencing.wait_for_fence(
            plan, store, taken, poll_s=fence_poll_s, note=ctx.note, old_region=plan.dr_region
        )
        with opened(old_dsn, "old primary") as conn:
            stop_streaming(conn)
        return result

    def promote(ctx: RunContext) -> dict[str, Any]:
        isolated = ctx.results.get("isolate", {})
        epoch = (isolated.get("lease") or {}).get("epoch")
        lease = fencing.recheck_lease(store, plan.primary_region, epoch)
        with opened(old_dsn, "old primary") as conn:
            result = promote_postgres(conn)
            expected = isolated.get("samples_at_fence") or {}
            ours = {t: table_fingerprint(conn, t) for t in expected}
            diffs = [t for t in expected if ours[t] != expected[t]]
            if diffs:
                raise DrctlError(f"sample tables differ from the fenced DR database: {diffs}")
            result["fence_state"] = clear_fence_state(
                conn, isolated.get("connection_limits_before") or {}
            )
            record_epoch(conn, int(epoch or 0), ctx.run_id or "", plan.primary_region)
        return {**result, "lease": lease, "samples_compared": bool(expected)}

    def switch_config(ctx: RunContext) -> dict[str, Any]:
        secrets = rejoin_secret_replicas(plan, aws)
        config = point_config_at(
            plan, aws, plan.primary_region, plan.primary_endpoint, required=(plan.primary_region,)
        )
        return {"secrets": secrets, "config": config}

    def switch_dns(ctx: RunContext) -> dict[str, Any]:
        return upsert_primary_record(plan, aws, plan.primary_endpoint, plan.health_check_id)

    def reseed_dr(ctx: RunContext) -> dict[str, Any]:
        disarmed = disarm(dr, plan.artefacts)
        result = reseed_as_standby(dr, old_dsn, slot)
        reading = wait_streaming(dr_dsn, old_dsn, catch_up_timeout_s)
        # The slot the old primary streamed from during failback came along in the DR copy.
        with opened(dr_dsn, "DR standby") as conn:
            conn.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                "where slot_name = %s and not active",
                [FAILBACK_SLOT],
            )
        return {**result, "lag": reading.to_record(), "disarmed": disarmed}

    def validate(ctx: RunContext) -> dict[str, Any]:
        with opened(old_dsn, "primary") as primary:
            if primary.execute("select pg_is_in_recovery()").fetchone()[0]:
                raise DrctlError("the primary is still in recovery")
            streaming = primary.execute(
                "select count(*) from pg_stat_replication where state = 'streaming'"
            ).fetchone()[0]
            lsn = primary.execute("select pg_current_wal_lsn()::text").fetchone()[0]
            tables = sample_tables(primary, samples)
            ours = {t: table_fingerprint(primary, t) for t in tables}
        app = probe_app_write(app_dsn or "", "primary") if app_dsn else None
        if app is None:
            raise DrctlError(
                "--app-dsn is required: validation writes as the application's own role",
                ExitCode.INVALID_CONFIG,
            )
        with opened(dr_dsn, "DR standby") as standby:
            if not standby.execute("select pg_is_in_recovery()").fetchone()[0]:
                raise DrctlError("the DR database is not a standby again")
            wait_for_lsn(standby, lsn, catch_up_timeout_s)
            theirs = {t: table_fingerprint(standby, t) for t in tables}
        diffs = [t for t in tables if ours[t] != theirs[t]]
        if diffs:
            raise DrctlError(f"DR standby differs from the primary on {', '.join(diffs)}")
        sets = failover_record_sets(plan, aws)
        values = [r["Value"] for r in sets["PRIMARY"]["ResourceRecords"]]
        if values != [plan.primary_endpoint]:
            raise DrctlError(f"PRIMARY record answers {values}, not {plan.primary_endpoint}")
        epoch = (ctx.results.get("isolate", {}).get("lease") or {}).get("epoch")
        return {
            "streaming_standbys": streaming,
            "samples": ours,
            "dns_primary": values[0],
            "app_write": app,
            "fence": fencing.recheck_lease(store, plan.primary_region, epoch),
        }

    return [
        Step(
            "assess",
            "Assess: DR database is primary, data dirs on their hosts",
            assess,
            dry_run=True,
        ),
        Step(
            "reseed-old-primary",
            "Re-seed the old primary from the DR database (on its host)",
            reseed_old,
            plan="pg_rewind (or pg_basebackup) the old primary as a standby of the DR database",
        ),
        Step(
            "catch-up",
            "Wait for the old primary to catch up; lag against the RPO",
            catch_up,
            plan="wait for streaming and check the lag",
        ),
        Step(
            "isolate",
            "Isolate: fence the DR database (soft, lease, its guard)",
            isolate,
            plan="soft-fence the DR database, wait for its final LSN, move the lease back",
        ),
        Step("promote", "Promote the old primary", promote, plan="pg_promote the old primary"),
        Step(
            "switch-config",
            "Switch secrets and config back to the primary region",
            switch_config,
            plan="re-replicate secrets from the primary region and point SSM config back",
        ),
        Step(
            "switch-dns",
            "Switch DNS back to the primary",
            switch_dns,
            plan="restore the PRIMARY failover record and its health check",
        ),
        Step(
            "reseed-dr",
            "Re-seed the DR database as a standby again (on its host)",
            reseed_dr,
            plan="pg_rewind the DR database as a standby of the primary, through its slot",
        ),
        Step(
            "validate",
            "Validate: the application writes, DR streams, samples match, DNS, lease",
            validate,
            plan="check writes, replication, samples, DNS and the lease",
        ),
    ]


def run_failback(
    plan: FailoverPlan,
    aws: Aws,
    nodes: FailbackNodes,
    *,
    app_dsn: str | None,
    execute: bool,
    yes: bool,
    accept_data_loss: bool = False,
    accept_unfenced: bool = False,
    samples: Sequence[str] = (),
    journal: str | Path | JournalStore | None = None,
    fresh: bool = False,
    catch_up_timeout_s: float = 60,
    fence_poll_s: float = 0.5,
) -> RunReport:
    from scripts.runbooks.failover import default_journal

    steps = failback_steps(
        plan,
        aws,
        nodes,
        app_dsn=app_dsn,
        accept_data_loss=accept_data_loss,
        accept_unfenced=accept_unfenced,
        samples=samples,
        catch_up_timeout_s=catch_up_timeout_s,
        fence_poll_s=fence_poll_s,
    )
    store = journal if journal is not None else default_journal(plan, aws, "failback")
    book = Runbook("failback", plan.stack, steps, journal=store)
    return book.run(
        execute=execute,
        yes=yes,
        fresh=fresh,
        what=f"fail {plan.stack} back from {plan.dr_region} to {plan.primary_region}",
    )


def register(app: typer.Typer, make_aws: Callable[[], Aws]) -> None:
    from scripts.runbooks import cli_options as opt

    @app.command()
    def failback(
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
        old_primary_host: str = opt.old_primary_host,
        old_primary_data_dir: str = opt.old_primary_data_dir,
        dr_host: str = opt.dr_host,
        dr_data_dir: str = opt.dr_data_dir,
        no_systemd: bool = opt.no_systemd,
    ) -> None:
        """Re-seed the old primary from the DR database and switch back (dry run by default)."""

        def build() -> RunReport:
            plan = load_plan(stack, read_outputs(stack, outputs))
            nodes = FailbackNodes(
                opt.node(old_primary_host, old_primary_data_dir, primary_dsn, no_systemd),
                opt.node(dr_host, dr_data_dir, standby_dsn, no_systemd),
            )
            return run_failback(
                plan,
                make_aws(),
                nodes,
                app_dsn=app_dsn,
                execute=execute,
                yes=yes,
                accept_data_loss=accept_data_loss,
                accept_unfenced=accept_unfenced,
                samples=sample_table or (),
                journal=journal,
                fresh=fresh,
            )

        run_command(build, as_json)
