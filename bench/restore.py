"""Benchmark: pgBackRest backup and point-in-time restore against same-run baselines, and the
restore evidence `drctl posture` sizes each recovery path with.

    .venv/bin/python bench/restore.py [--scale 30] [--wal-mb 256] [--process-max 2] [--json]
                                      [--evidence bench/results/restore.json | --no-evidence]

On one throwaway PostgreSQL 15 cluster holding a pgbench database (scale 30 is about 450 MB), with
the production pgBackRest settings from components/pgbackrest_config.py (two posix repos standing
for the regions, aes-256-cbc, zst, async archiving), it measures in the same run:

- pgBackRest full backup to repo1;
- PITR: ``pgbackrest restore --type=time`` into a new dir, then recovery to the target (replay of
  ``--wal-mb`` of WAL written after the backup, archive-get included, then promote), verified the
  way ``drctl restore`` verifies it;
- promotion of a streaming standby (``pg_ctl promote -w``, until it accepts writes);
- baselines: ``cp -a`` of the (stopped) data dir, and ``pg_dump -Fc`` + ``pg_restore`` of the
  pgbench database into a new database.

It prints the times and the ratios to the baselines. Figures depend on the machine; ratios are what
to compare between runs. It also writes the evidence file (schema in policy/recovery.py): the
command, the time (UTC), the host and the throughput figures, which ``drctl posture`` turns into a
time per recovery path. Commit it; posture calls it stale once it is older than the restore-test
interval plus a week. The monthly restore test writes the same format.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.objectives import parse_objectives  # noqa: E402
from components.pgbackrest_config import posix_settings, postgres_settings  # noqa: E402
from policy.recovery import EVIDENCE_SCHEMA, FIGURES  # noqa: E402
from scripts.dataops.pgbackrest import PgBackRest, require_binaries, write_config  # noqa: E402
from scripts.local.evaluate import read_stack_config  # noqa: E402
from scripts.local.postgres import PG_BIN, LocalCluster, make_postgres_dir, run_as_postgres  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def run(argv: list[str], **kw) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, **kw)


def wait_archived(cluster: LocalCluster) -> None:
    cluster.execute("select pg_logical_emit_message(false, 'bench', 'switch')")
    segment = cluster.scalar("select pg_walfile_name(pg_switch_wal())")
    cluster.wait_for(
        f"select left(last_archived_wal, 24) >= '{segment}' from pg_stat_archiver", timeout=300
    )


EVIDENCE = Path(__file__).resolve().parent / "results" / "restore.json"


def write_wal(pg: LocalCluster, megabytes: int) -> None:
    """Write about ``megabytes`` of WAL with bulk inserts (fast, and replayed like any heap
    change), so the replay throughput is measured on a real volume rather than startup time."""
    start = pg.scalar("select pg_current_wal_lsn()")
    pg.execute("create table bench_wal (id bigint, payload text)", dbname="bench")
    while True:
        written = pg.scalar(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [start], dbname="bench"
        )
        if int(written) >= megabytes * 2**20:
            return
        pg.execute(
            "insert into bench_wal select g, repeat(md5(g::text), 6) "
            "from generate_series(1, 100000) g",
            dbname="bench",
        )


def bench(scale: int, process_max: int, wal_mb: int = 256) -> dict:
    require_binaries()
    objectives = parse_objectives(read_stack_config("prod"), "prod")
    root = make_postgres_dir(tempfile.mkdtemp(prefix="drctl-bench-"), 0o755)
    for sub in ("repo1", "repo2", "spool", "lock", "log", "etc", "copies"):
        make_postgres_dir(root / sub)
    try:
        with LocalCluster("bench", base_dir=root) as pg:
            settings = posix_settings(
                objectives,
                repo1_path=str(root / "repo1"),
                repo2_path=str(root / "repo2"),
                pg_path=str(pg.data_dir),
                pg_port=pg.port,
                pg_socket_path=str(pg.socket_dir),
                spool_path=str(root / "spool"),
                lock_path=str(root / "lock"),
                log_path=str(root / "log"),
                process_max=process_max,
            )
            settings = write_config(
                settings,
                root / "etc",
                cipher_passes={1: secrets.token_urlsafe(24), 2: secrets.token_urlsafe(24)},
            )
            pg.configure(**postgres_settings(objectives, settings), max_wal_size="2GB")
            pg.stop()
            pg.start()
            backrest = PgBackRest.from_settings(settings)
            backrest.stanza_create()

            log(f"pgbench -i -s {scale} ...")
            pg.execute("create database bench")
            run([PG_BIN / "pgbench", "-i", "-q", "-s", scale, "-d", pg.dsn("bench")])
            db_bytes = pg.scalar("select pg_database_size('bench')", dbname="bench")
            wait_archived(pg)

            log("pgBackRest full backup to repo1 ...")
            backup_s, entry = timed(backrest.backup, "full", 1)
            repo_bytes = entry["info"]["repository"]["delta"]
            restored_bytes = entry["info"]["size"]

            # History around the target: transactions and --wal-mb of WAL before T, more after;
            # all archived.
            pgbench_tx = [PG_BIN / "pgbench", "-n", "-c", "2", "-t", "500", "-d", pg.dsn("bench")]
            run(pgbench_tx)
            log(f"writing {wal_mb} MB of WAL to replay ...")
            write_wal(pg, wal_mb)
            target = pg.scalar("select clock_timestamp()")
            target_lsn = pg.scalar("select pg_current_wal_lsn()")
            wal_bytes = int(
                pg.scalar(
                    "select pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)",
                    [target_lsn, entry["lsn"]["start"]],
                )
            )
            history_at_t = pg.scalar("select count(*) from pgbench_history", dbname="bench")
            run(pgbench_tx)
            wait_archived(pg)

            log("streaming standby promotion ...")
            standby = pg.create_standby("bench-standby", slot="bench_standby")
            lsn = pg.scalar("select pg_current_wal_lsn()")
            standby.wait_for(f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn", timeout=300)
            promotion_s, _ = timed(standby.promote)
            standby.stop()
            pg.execute("select pg_drop_replication_slot('bench_standby')")

            log("PITR restore + recovery ...")
            restored = root / "copies" / "pitr"
            restore_s, _ = timed(backrest.restore, restored, target, 1)
            result = backrest.recover(restored, target)
            copy = pg.adopt(restored, "pitr").start()
            got = copy.scalar("select count(*) from pgbench_history", dbname="bench")
            copy.stop()
            if got != history_at_t:
                raise SystemExit(f"restored copy has {got} history rows, expected {history_at_t}")

            log("baseline: pg_dump -Fc + pg_restore ...")
            dumped_bytes = pg.scalar("select pg_database_size('bench')", dbname="bench")
            dump = root / "copies" / "bench.dump"
            dump_s, _ = timed(run, [PG_BIN / "pg_dump", "-Fc", "-f", dump, "-d", pg.dsn("bench")])
            pg.execute("create database bench_restored")
            pg_restore_s, _ = timed(
                run, [PG_BIN / "pg_restore", "-d", pg.dsn("bench_restored"), dump]
            )

            log("baseline: cp -a of the stopped data dir ...")
            pg.stop()
            cp_s, _ = timed(
                run_as_postgres, ["cp", "-a", pg.data_dir, root / "copies" / "cp"], timeout=3600
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    pitr_s = restore_s + result.recovery_s
    return {
        "scale": scale,
        "database_bytes": db_bytes,
        "restored_bytes": restored_bytes,
        "wal_replayed_bytes": int(wal_bytes),
        "repo_backup_bytes": repo_bytes,
        "process_max": process_max,
        "cpus": os.cpu_count(),
        "seconds": {
            "pgbackrest_full_backup": round(backup_s, 2),
            "pgbackrest_restore": round(restore_s, 2),
            "recovery_to_target": round(result.recovery_s, 2),
            "pitr_total": round(pitr_s, 2),
            "standby_promotion": round(promotion_s, 3),
            "cp_a_data_dir": round(cp_s, 2),
            "pg_dump_fc": round(dump_s, 2),
            "pg_restore": round(pg_restore_s, 2),
        },
        # Throughput for policy/recovery.py: bytes restored or replayed per second.
        "figures": {
            "restore_bytes_per_s": round(restored_bytes / restore_s),
            "replay_bytes_per_s": round(wal_bytes / result.recovery_s),
            "promotion_s": round(promotion_s, 3),
            "pg_restore_bytes_per_s": round(dumped_bytes / pg_restore_s),
        },
        "ratios": {
            "pitr_total_vs_cp_a": round(pitr_s / cp_s, 2),
            "pitr_total_vs_pg_restore": round(pitr_s / pg_restore_s, 2),
            "pitr_total_vs_pg_dump_plus_pg_restore": round(pitr_s / (dump_s + pg_restore_s), 2),
            "backup_vs_cp_a": round(backup_s / cp_s, 2),
            "backup_vs_pg_dump": round(backup_s / dump_s, 2),
        },
        "verified": {"target_time": result.target_time, "history_rows_at_target": got},
    }


def _version(argv: list) -> str:
    try:
        result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    except OSError:
        return "unknown"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def evidence_of(report: dict, command: str, measured_at: dt.datetime) -> dict:
    """The evidence document posture reads (policy/recovery.py read_evidence)."""
    return {
        "schema": EVIDENCE_SCHEMA,
        "source": "bench/restore.py",
        "command": command,
        "measured_at": measured_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": report["cpus"],
            "memory_bytes": _memory_bytes(),
            "platform": platform.platform(),
            "postgres": _version([PG_BIN / "postgres", "--version"]),
            "pgbackrest": _version(["pgbackrest", "version"]),
        },
        "setup": {
            "repositories": "two posix repositories on the local disk (not S3)",
            "cipher": "aes-256-cbc",
            "compression": "zst",
            "pgbench_scale": report["scale"],
            "process_max": report["process_max"],
            "database_bytes": report["restored_bytes"],
            "wal_replayed_bytes": report["wal_replayed_bytes"],
        },
        "seconds": report["seconds"],
        "figures": report["figures"],
        "meaning": {k: FIGURES[k] for k in report["figures"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale (default 30)")
    parser.add_argument(
        "--process-max",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="pgBackRest process-max (default: CPUs, at most the rendered 4)",
    )
    parser.add_argument(
        "--wal-mb", type=int, default=256, help="WAL to replay in the PITR (default 256 MB)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--evidence",
        type=Path,
        default=EVIDENCE,
        help="where to write the restore evidence (default bench/results/restore.json)",
    )
    parser.add_argument("--no-evidence", action="store_true", help="write no evidence file")
    args = parser.parse_args()
    if args.scale < 1:
        parser.error(f"--scale {args.scale} is not valid: a positive integer")
    if args.wal_mb < 16:
        parser.error(f"--wal-mb {args.wal_mb} is not valid: at least 16 (one WAL segment)")
    started = dt.datetime.now(dt.UTC)
    report = bench(args.scale, args.process_max, args.wal_mb)
    if not args.no_evidence:
        command = " ".join(["bench/restore.py", *sys.argv[1:]])
        args.evidence.parent.mkdir(parents=True, exist_ok=True)
        document = evidence_of(report, command, started)
        args.evidence.write_text(json.dumps(document, indent=2) + "\n")
        log(f"evidence written to {args.evidence}")
    if args.json:
        print(json.dumps(report, indent=2))
        return
    mb = report["database_bytes"] / 2**20
    print(f"pgbench scale {report['scale']}: database {mb:.0f} MB, {report['cpus']} CPUs")
    for name, seconds in report["seconds"].items():
        print(f"  {name:28} {seconds:8.2f} s")
    for name, ratio in report["ratios"].items():
        print(f"  {name:38} {ratio:6.2f}x")


if __name__ == "__main__":
    main()
