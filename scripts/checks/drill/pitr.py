"""Scenario ``human-error``: ``drop table ledger`` under write load, PITR, copy the table back.

Recovery point: the PITR target, the primary's clock just before the DROP (what the operator
reads from the statement log). The promise: every transaction that committed at or before the
target is back with its exact row, none that committed after it is, and every write the
application makes once the table is back is kept. The commit time of each write comes from the
primary's WAL (pg_waldump), not from the restored copy.
"""

from __future__ import annotations

import subprocess
import time

from scripts.checks.drill.datacheck import (
    AFTER_POINT,
    PROMISED,
    UNCERTAIN,
    check_data,
    measure_rpo,
)
from scripts.checks.drill.model import ScenarioResult, Write
from scripts.checks.drill.platform import (
    DrillContext,
    PgSite,
    commit_of,
    ledger_rows,
    poll,
    wal_commits,
)
from scripts.common import DrctlError

LOSSY_EVERY = 20  # the copy-back-lossy fault drops every 20th row in transit
SERVICE_TIMEOUT_S = 60


def scenario_human_error(ctx: DrillContext, result: ScenarioResult) -> None:
    from scripts.local.postgres import PG_BIN

    site = PgSite(ctx, "human-error")
    with ctx.step(
        "healthy platform: primary archiving to repo1 + repo2, full backup in repo1", "setup"
    ):
        site.start(backups=(1,))
    start_lsn = site.wal_position()
    writer = site.writer(reconnect=True)
    ctx.cleanups.append(writer.stop)
    with ctx.step(f"write load on ledger ({ctx.db_load_s:.1f} s)", "load"):
        writer.start()
        time.sleep(ctx.db_load_s)

    with site.primary.connect("app") as conn:
        target = conn.execute("select clock_timestamp()").fetchone()[0]
        failure = ctx.mark_failure("incident: an operator drops table ledger")
        with conn.transaction():
            drop_xid = int(conn.execute("select pg_current_xact_id()::text").fetchone()[0])
            conn.execute("drop table ledger")
        dropped = time.time()  # a write sent after this succeeds only once the table is back
    result.detection = {"by": "none declared: an operator notices; recovery starts at once"}
    result.recovery_point = {
        "kind": "time",
        "value": target.isoformat(),
        "how": "clock_timestamp() on the primary just before the DROP, as the operator reads it "
        "from the statement log",
    }
    with ctx.step("ship the WAL holding the drop to the repositories", "restore"):
        segment = site.primary.scalar("select pg_walfile_name(pg_switch_wal())")
        site.primary.wait_for(
            f"select last_archived_wal >= '{segment}' from pg_stat_archiver", timeout=60
        )
    restored_dir = site.dir / "pitr"
    with ctx.step("PITR: pgbackrest restore --type=time to just before the drop", "restore"):
        site.pgbackrest.restore(restored_dir, target_time=target, repo=1)
    with ctx.step("replay to the target and prove recovery stopped there", "replay"):
        recovery = site.pgbackrest.recover(restored_dir, target)
    with ctx.step("start the restored copy", "replay"):
        copy = site.adopt_restore(restored_dir, "pitr")
    with ctx.step("copy ledger back into the primary (pg_dump -t ledger | psql -1)", "copy-back"):
        dump = subprocess.run(
            [PG_BIN / "pg_dump", "-d", copy.conninfo("app"), "-t", "ledger", "--no-owner"],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        if ctx.faults.active("copy-back-lossy"):
            dump = drop_copy_rows(dump, LOSSY_EVERY)
        subprocess.run(
            [PG_BIN / "psql", "-d", site.primary.conninfo("app"), "-v", "ON_ERROR_STOP=1", "-q"]
            + ["--single-transaction"],
            input=dump,
            capture_output=True,
            check=True,
            timeout=120,
        )
    copied = time.time()
    copy.stop()
    back = poll(lambda: writer.first_ack_after(dropped), SERVICE_TIMEOUT_S)
    if back is None:
        raise DrctlError("no write was accepted after the table was copied back")
    # The application may get in while psql is still exiting: the step is then empty.
    ctx.add_step("the application's writes are accepted again", "service", min(copied, back), back)
    ctx.service_back(back)
    time.sleep(0.2)  # a few writes after recovery, which must all be kept
    writer.stop()

    with ctx.step(
        "verify: every write against the PITR target (pg_waldump of the primary)", "verify"
    ):
        commits = wal_commits(site.primary.data_dir, start_lsn)
        if drop_xid not in commits:
            raise DrctlError(f"observer: the DROP's commit (xid {drop_xid}) is not in the WAL")
        drop_end = commits[drop_xid][0]
        placed: list[tuple[Write, str]] = [(w, PROMISED) for w in site.seed]
        for write in writer.writes:
            if write.acked_at is None:
                placed.append(
                    (write, AFTER_POINT if write.sent_at > target.timestamp() else UNCERTAIN)
                )
                continue
            end, when = commit_of(write, commits)
            if end > drop_end:  # written into the recovered table: the application's, keep it
                placed.append((write, PROMISED))
            else:
                placed.append((write, PROMISED if when <= target else AFTER_POINT))
        recovered = ledger_rows(site.primary)
        result.data = check_data(placed, recovered, f"PITR target {target.isoformat()}")
        result.rpo_s = measure_rpo(site.seed + writer.writes, recovered, failure)
    result.evidence = {
        "pitr_target": target.isoformat(),
        "drop_wal_segment": segment,
        "recovery": recovery.to_json(),
        "restored_from": "repo1",
        "acknowledged_writes": len(writer.acked()),
        "committed_after_target_before_drop": sum(1 for _, e in placed if e == AFTER_POINT),
        "writes_after_recovery": sum(1 for w in writer.acked() if w.acked_at > failure),
        "writes_refused_while_the_table_was_gone": writer.refused,
        "copy_back_rows_dropped_every": LOSSY_EVERY
        if ctx.faults.active("copy-back-lossy")
        else None,
    }


def drop_copy_rows(dump: bytes, every: int) -> bytes:
    """The copy-back-lossy fault: drop every ``every``-th data row of the dump's COPY blocks."""
    lines = dump.split(b"\n")
    kept: list[bytes] = []
    in_copy, n = False, 0
    for line in lines:
        if in_copy and line == b"\\.":
            in_copy = False
        elif in_copy:
            n += 1
            if n % every == 0:
                continue
        elif line.startswith(b"COPY ") and line.endswith(b"FROM stdin;"):
            in_copy = True
        kept.append(line)
    return b"\n".join(kept)
