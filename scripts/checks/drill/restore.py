"""Scenario ``database-corruption``: the primary's host dies under load and its data directory is
overwritten; the latest backup and archived WAL are restored from repo2 (the DR region).

Recovery point: the end of the newest WAL segment repo2 holds when the host is lost, read from
the repository itself. The promise: every transaction whose commit record lies before that point
is back with its exact row; the WAL still on the dead host (not yet archived, bounded by
``archive_timeout`` + the push timeout) is the loss the RPO measures. Detection is the declared
health check and alarm, polling the primary at the scaled cadence.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from scripts.checks.drill.datacheck import AFTER_POINT, PROMISED, UNCERTAIN, check_data, measure_rpo
from scripts.checks.drill.model import ScenarioResult, Write
from scripts.checks.drill.monitor import HealthMonitor
from scripts.checks.drill.platform import (
    DrillContext,
    PgSite,
    archived_until,
    commit_of,
    ledger_rows,
    lsn_text,
    set_and_reload,
    wal_commits,
)
from scripts.common import DrctlError


def wait_for_detection(ctx: DrillContext, monitor: HealthMonitor, failure: float) -> float:
    """Wait for the alarm after the failure; records the detection steps."""
    timeout = 10 * ctx.mechanisms.detection.worst_case_s + 10
    alarm = monitor.wait_for_alarm(failure, timeout)
    if alarm is None:
        raise DrctlError(f"the declared monitoring did not detect the failure in {timeout:.1f} s")
    unhealthy = monitor.unhealthy_since(failure)
    if unhealthy is not None:
        ctx.add_step("detection: the health check turns unhealthy", "detection", failure, unhealthy)
    ctx.add_step(f"detection: alarm {monitor.detection.alarm} fires", "detection", failure, alarm)
    return alarm


def scenario_database_corruption(ctx: DrillContext, result: ScenarioResult) -> None:
    from scripts.local.postgres import LocalPgError

    site = PgSite(ctx, "corruption")
    with ctx.step(
        "healthy platform: primary archiving to repo1 + repo2, full backup in repo2", "setup"
    ):
        site.start(backups=(2,))
    backup_stop = site.pgbackrest.backups(2)[-1]["archive"]["stop"]
    start_lsn = site.wal_position()
    writer = site.writer(reconnect=False)
    monitor = HealthMonitor(ctx.mechanisms.detection, "127.0.0.1", site.primary.port)
    ctx.cleanups += [writer.stop, monitor.stop]
    with ctx.step(f"write load on ledger ({ctx.db_load_s:.1f} s)", "load"):
        if ctx.faults.active("archive-stalled"):
            set_and_reload(site.primary, "archive_command", "/bin/false")
        writer.start()
        monitor.start()
        time.sleep(ctx.db_load_s)

    failure = ctx.mark_failure(
        "incident: the host dies (SIGKILL) and its disk scribbles over the data directory"
    )
    site.primary.kill()
    damaged = _damage(site.primary.data_dir)
    writer.join(timeout=10)
    wait_for_detection(ctx, monitor, failure)
    result.detection = monitor.to_record(failure)
    monitor.stop()
    with ctx.step("assess: the damaged primary refuses to start", "assess"):
        try:
            site.primary.start(timeout=20)
            refused = None
        except LocalPgError as exc:
            refused = str(exc)[:300]
    if refused is None:
        site.primary.kill()
        raise DrctlError("the damaged primary started; the corruption was not detected")
    point = archived_until(site.repo_dir(2))
    result.recovery_point = {
        "kind": "lsn",
        "value": lsn_text(point),
        "how": f"end of the newest WAL segment in repo2 ({ctx.dr_region}) when the host was lost, "
        "listed from the repository",
    }
    restored_dir = site.dir / "restored-from-repo2"
    with _unreadable_after(
        site.repo_dir(2), backup_stop, ctx.faults.active("restore-short")
    ) as hidden:
        with ctx.step(f"restore the latest backup and WAL from repo2 ({ctx.dr_region})", "restore"):
            site.pgbackrest.restore(restored_dir, repo=2)
        with ctx.step("replay to the end of the archive and prove it got there", "replay"):
            recovery = site.pgbackrest.recover(restored_dir, None)
    started = time.time()
    primary = site.adopt_restore(restored_dir, "new-primary")
    check_id = -secrets.randbelow(10**9) - 1
    primary.execute(
        "insert into ledger (id, payload) values (%s, 'service check')", [check_id], dbname="app"
    )
    back = time.time()
    ctx.add_step(
        "start the restored copy as the new primary; it accepts a write", "service", started, back
    )
    ctx.service_back(back)
    primary.execute("delete from ledger where id = %s", [check_id], dbname="app")

    with ctx.step(
        "verify: every write against repo2's recovery point (pg_waldump of the dead host)", "verify"
    ):
        commits = wal_commits(site.primary.data_dir, start_lsn)
        placed: list[tuple[Write, str]] = [(w, PROMISED) for w in site.seed]
        for write in writer.writes:
            if write.acked_at is None:
                placed.append((write, UNCERTAIN))
            else:
                end, _ = commit_of(write, commits)
                placed.append((write, PROMISED if end <= point else AFTER_POINT))
        recovered = ledger_rows(primary)
        result.data = check_data(placed, recovered, f"repo2 archived WAL up to {lsn_text(point)}")
        result.rpo_s = measure_rpo(site.seed + writer.writes, recovered, failure)
    mech = ctx.mechanisms
    result.evidence = {
        "damaged_files": len(damaged),
        "damaged_primary_refused_to_start": refused,
        "recovery": recovery.to_json(),
        "restored_from": f"repo2 ({ctx.dr_region})",
        "backup_stop_wal": backup_stop,
        "acknowledged_writes": len(writer.acked()),
        "acknowledged_after_the_point": sum(1 for _, e in placed if e == AFTER_POINT),
        "archive_timeout_s": mech.effective_archive_timeout_s,
        "push_timeout_s": mech.effective_push_timeout_s,
        # The bound on WAL a lost host takes with it, on the drill's time scale.
        "worst_case_rpo_s": mech.effective_archive_timeout_s + mech.effective_push_timeout_s,
        "backup_age_at_failure_s": round(failure - (site.backup_done_at or failure), 3),
        "segments_unreadable_during_restore": hidden,
    }


def _damage(data_dir: Path) -> list[str]:
    """Overwrite the control file and the heap files with random bytes, as a failing disk would.
    pg_wal is left as it was (the observer reads it)."""
    damaged = []
    for path in [data_dir / "global" / "pg_control", *sorted((data_dir / "base").glob("*/*"))]:
        if path.name == "pg_control" or (path.is_file() and path.stat().st_size >= 8192):
            size = path.stat().st_size
            with path.open("r+b") as fh:
                fh.write(secrets.token_bytes(min(size, 8192)))
            damaged.append(str(path.relative_to(data_dir)))
    return damaged


@contextlib.contextmanager
def _unreadable_after(repo: Path, backup_stop: str, active: bool) -> Iterator[list[str]]:
    """The restore-short fault: segments archived after the backup's last one cannot be read
    while the body runs (moved aside, then put back)."""
    hidden: list[tuple[Path, Path]] = []
    if active:
        aside = repo.parent / f"{repo.name}-unreadable"
        aside.mkdir(exist_ok=True)
        for path in sorted((repo / "archive").glob("*/*/*/*")):
            name = path.name[:24]
            if len(name) == 24 and path.name[24:25] == "-" and name[8:] > backup_stop[8:]:
                target = aside / path.name
                shutil.move(path, target)
                hidden.append((path, target))
    try:
        yield [p.name[:24] for p, _ in hidden]
    finally:
        for original, moved in hidden:
            shutil.move(moved, original)
