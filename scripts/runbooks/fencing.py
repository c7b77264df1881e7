"""Fencing the old primary so that it holds without the old primary's cooperation.

Three layers, strongest first:

1. **The lease** (scripts/dataops/lease.py, in the DR-region control bucket). The failover takes
   it for the DR region under a new epoch with one conditional write. Every database host runs the
   rendered fence guard (components/agents/fence_guard.py): a primary whose lease names another
   region stops PostgreSQL and runs ``pgbackrest stop``; one that cannot renew its lease for the
   TTL stops anyway; and no primary starts without the lease. ``wait`` then holds the promotion
   until the old primary's guard acknowledges the new epoch, or until the TTL, a guard tick and the
   stop grace have passed since the takeover (measured on S3's clock: the lease object's
   Last-Modified against S3's Date header, so no operator clock is trusted). Either way the old
   primary can no longer acknowledge a write when the standby is promoted.
2. **The network** (scripts/dataops/cloud.py): the old primary's database ingress rules are
   revoked where its region's API answers. Existing connections survive a revoked rule
   (security groups are stateful), so this narrows, and never replaces, the lease.
3. **The soft fence** (scripts/dataops/database.py): a reachable primary is made read-only and
   locked against application roles while the standby catches up, for a lossless switchover.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable, Sequence
from typing import Any

from components.failover_control import ack_prefix
from components.pg_host_agents import fence_wait_s
from scripts.common import DrctlError, ExitCode
from scripts.dataops.cloud import Aws, primary_security_groups, revoke_db_ingress
from scripts.dataops.database import (
    fence,
    first_line,
    lsn_to_int,
    opened,
    sample_tables,
    table_fingerprint,
    try_connect,
    unfence,
    wait_for_lsn,
)
from scripts.dataops.failover_plan import FailoverPlan
from scripts.dataops.lag import newest_heartbeat
from scripts.dataops.lease import LeaseStore
from scripts.runbooks.journal import operator_identity

UNFENCED_HELP = (
    "rerun with --accept-unfenced only if you have made sure the old primary cannot serve "
    "(its host is powered off, or its network is cut)"
)


def lease_store(plan: FailoverPlan, aws: Aws) -> LeaseStore | None:
    if not plan.control_bucket:
        return None
    return LeaseStore(
        aws.client("s3", plan.dr_region),
        plan.control_bucket,
        plan.lease_key,
        ack_prefix(plan.stack),
    )


def describe_lease(store: LeaseStore | None) -> dict[str, Any]:
    """Who holds the lease now, for assess (read-only)."""
    if store is None:
        return {"where": None, "note": "the stack outputs name no failover control bucket"}
    lease = store.read()
    if lease is None:
        return {"where": store.where, "note": "no lease yet: no fence guard has ever run"}
    return {"where": store.where, **lease.summary(), "guarded": lease.guarded}


def take_lease(
    plan: FailoverPlan,
    store: LeaseStore | None,
    holder: str,
    run_id: str,
    *,
    accept_unfenced: bool,
    require_guard: bool = True,
) -> dict[str, Any]:
    """Move the lease to ``holder`` under a new epoch (idempotent for the same run).

    ``require_guard``: the old primary's hosts run a fence guard (self-managed); without one
    that ever renewed the lease it refuses unless ``accept_unfenced``. Elsewhere (rds, supabase)
    the lease is the record of who may be primary, and nothing waits for a guard."""
    if store is None:
        if require_guard and not accept_unfenced:
            raise DrctlError(
                "this stack has no failover control bucket (stack output 'failoverControl'), so "
                f"nothing can fence a primary that does not answer; {UNFENCED_HELP}",
                ExitCode.REFUSED,
            )
        return {"lease": None, "accepted_unfenced": require_guard}
    current = store.read()
    ours = current is not None and current.holder == holder and current.doc.get("run_id") == run_id
    unguarded = current is None or not current.guarded
    if require_guard and not ours and unguarded and not accept_unfenced:
        raise DrctlError(
            f"no fence guard has ever renewed the lease {store.where}: nothing on the old "
            f"primary's hosts would stop it when the epoch moves; {UNFENCED_HELP}",
            ExitCode.REFUSED,
        )
    lease, previous = store.take(holder, run_id, f"drctl {operator_identity()}", plan.lease_ttl_s)
    ttl = float(lease.doc.get("ttl_s") or plan.lease_ttl_s)
    return {
        "lease": store.where,
        "epoch": lease.epoch,
        "holder": lease.holder,
        "previous": previous,
        "guarded": bool(previous.get("renewed_at")),
        "accepted_unfenced": require_guard and not previous.get("renewed_at"),
        "ttl_s": ttl,
        "fence_wait_s": fence_wait_s(
            ttl, plan.guard_interval_s, plan.guard_call_timeout_s, plan.stop_grace_s
        ),
    }


def _s3_age(store: LeaseStore) -> float | None:
    """Seconds since the lease object was last written, on S3's own clock."""
    head = store.s3.head_object(Bucket=store.bucket, Key=store.key)
    server_now = head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not server_now or not head.get("LastModified"):
        return None
    now = email.utils.parsedate_to_datetime(server_now)
    return (now - head["LastModified"]).total_seconds()


def wait_for_fence(
    plan: FailoverPlan,
    store: LeaseStore | None,
    taken: dict[str, Any],
    *,
    poll_s: float = 0.5,
    note=lambda message: None,
    old_region: str | None = None,
) -> dict[str, Any]:
    """Until the old primary's guard acknowledges the epoch, or the lease wait has passed.

    ``old_region``: the region whose primary is being fenced; default the plan's primary region
    (failback fences the DR region's).
    """
    old_region = old_region or plan.primary_region
    if store is None or not taken.get("epoch") or not taken.get("guarded"):
        # No guard ever renewed the lease: waiting out its TTL would stop nothing.
        return {"fenced_by": "no fence guard on the old primary (accepted)", "waited_s": 0.0}
    epoch, wait_s = int(taken["epoch"]), float(taken["fence_wait_s"])
    started = time.monotonic()
    announced = False
    while True:
        acks = [a for a in store.acknowledgements(epoch) if a.get("region") == old_region]
        if acks:
            return {
                "fenced_by": "guard acknowledgement",
                "acknowledgements": acks,
                "waited_s": round(time.monotonic() - started, 3),
            }
        age = _s3_age(store)
        if age is None:
            age = time.monotonic() - started
        if age >= wait_s:
            return {
                "fenced_by": (
                    f"lease wait elapsed ({wait_s:.0f}s since the takeover): the old primary's "
                    "guard has stopped it, or its host is down"
                ),
                "waited_s": round(time.monotonic() - started, 3),
            }
        if not announced:
            note(
                f"waiting up to {wait_s - age:.0f}s for the old primary's guard to acknowledge "
                f"epoch {epoch} (or for its lease to run out)"
            )
            announced = True
        time.sleep(poll_s)


def network_fence(plan: FailoverPlan, aws: Aws) -> dict[str, Any]:
    """Revoke the old primary's database ingress where its region's API answers (best effort)."""
    try:
        groups, how = primary_security_groups(plan, aws)
        revoked = revoke_db_ingress(aws, plan.primary_region, groups, plan.port)
    except Exception as exc:  # the primary region's API may be down with the region
        return {"revoked": [], "error": f"{type(exc).__name__}: {first_line(exc)[:200]}"}
    return {"security_groups": groups, "found_by": how, "revoked": revoked}


def recheck_lease(store: LeaseStore | None, holder: str, epoch: int | None) -> dict[str, Any]:
    """Before promoting (also on resume): the lease must still be the one this run took."""
    if store is None or epoch is None:
        return {"lease": None}
    lease = store.read()
    if lease is None or lease.holder != holder or lease.epoch != epoch:
        now = f"epoch {lease.epoch} held by {lease.holder}" if lease else "no lease"
        raise DrctlError(
            f"the lease {store.where} is no longer the one this run took (epoch {epoch} for "
            f"{holder}; now {now}): another operator or run acted. Not promoting; inspect the "
            "lease and the journal",
            ExitCode.REFUSED,
        )
    return {"lease": store.where, "epoch": lease.epoch, "holder": lease.holder}


def fence_holds(
    store: LeaseStore | None, holder: str, epoch: int | None, old_primary_dsn: str | None
) -> dict[str, Any]:
    """Validation: the lease is still ours, and the old primary does not serve as a primary."""
    result = recheck_lease(store, holder, epoch)
    old = try_connect(old_primary_dsn, timeout=3)
    if old is None:
        result["old_primary"] = "not answering"
        return result
    with old:
        in_recovery, read_only = old.execute(
            "select pg_is_in_recovery(), current_setting('default_transaction_read_only')"
        ).fetchone()
        limits = old.execute(
            "select count(*) from pg_database where datallowconn and not datistemplate "
            "and datconnlimit <> 0"
        ).fetchone()[0]
    if in_recovery:
        result["old_primary"] = "answers as a standby"
        return result
    if read_only == "on" and limits == 0:
        # Only the soft fence holds it: a superuser could undo it.
        result["old_primary"] = "answers, read-only and closed to application roles (soft fence)"
        result["soft_fence_only"] = True
        return result
    raise DrctlError(
        f"the old primary still answers as a writable primary ({dt.datetime.now(dt.UTC):%H:%M:%S} "
        "UTC): the fence does not hold. Stop it on its host (its guard should have), then rerun "
        "to validate again",
        ExitCode.STEP_FAILED,
    )


def would_lose(primary_dsn: str, standby, final_lsn: str, at: str | None) -> dict[str, Any]:
    """What a promotion without the standby catching up would lose: bytes and heartbeat time."""
    lost = {"bytes": max(0, (lsn_to_int(final_lsn) or 0) - (lsn_to_int(at) or 0)), "seconds": None}
    primary = try_connect(primary_dsn)
    if primary is not None:
        with primary:
            theirs = newest_heartbeat(primary)
        ours = newest_heartbeat(standby)
        if theirs is not None and ours is not None:
            lost["seconds"] = round(max(0.0, (theirs - ours).total_seconds()), 3)
    return lost


def soft_fence_and_catch_up(
    old_dsn: str | None,
    new_dsn: str,
    backend: str,
    *,
    timeout_s: float,
    accept_data_loss: bool,
    samples: Sequence[str] = (),
    note: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """A reachable old primary: fence it softly and wait until the new one *replayed* its final
    LSN. Not caught up: un-fence it and refuse (saying how much would be lost), unless the loss
    is accepted. Caught up: fingerprint the sample tables while nothing can change them."""
    result: dict[str, Any] = {"primary_reachable": False, "fenced": False}
    primary = try_connect(old_dsn)
    if primary is None:
        note("old primary unreachable: the lease and its guard fence it")
        return result
    with primary:
        soft = fence(primary, backend)
    result.update(primary_reachable=True, fenced=True, **soft)
    note(f"old primary soft-fenced; {soft['terminated_sessions']} session(s) terminated")
    with opened(new_dsn, "database to promote") as new:
        caught, at = wait_for_lsn(new, soft["final_lsn"], timeout_s, logical=backend == "supabase")
        result.update(caught_up=caught, standby_lsn=at)
        if not caught:
            lost = would_lose(old_dsn, new, soft["final_lsn"], at)
            result["would_lose"] = lost
            shown = f"{lost['bytes']} bytes of WAL" + (
                f", about {lost['seconds']}s of commits by heartbeat"
                if lost["seconds"] is not None
                else ""
            )
            if not accept_data_loss:
                with opened(old_dsn, "old primary") as back:
                    unfence(back, backend, soft["connection_limits_before"])
                raise DrctlError(
                    f"switchover refused: the database to promote replayed up to {at}, the "
                    f"fenced primary's final LSN is {soft['final_lsn']}; promoting now would "
                    f"lose {shown}. The old primary has been un-fenced and serves again. Rerun "
                    "when it has caught up, or with --accept-data-loss",
                    ExitCode.REFUSED,
                )
            note(f"[accepted data loss] {shown}")
            return result
    with opened(old_dsn, "fenced primary") as old:
        tables = sample_tables(old, samples)
        result["samples_at_fence"] = {t: table_fingerprint(old, t) for t in tables}
    return result
