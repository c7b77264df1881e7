"""Benchmark: pgBackRest backup and point-in-time restore against same-run baselines.

    .venv/bin/python bench/restore.py [--scale 30] [--process-max 2] [--json]

On one throwaway PostgreSQL 15 cluster holding a pgbench database (scale 30 is about 450 MB), with
the production pgBackRest settings from components/pgbackrest_config.py (two posix repos standing
for the regions, aes-256-cbc, zst, async archiving), it measures in the same run:

- pgBackRest full backup to repo1;
- PITR: ``pgbackrest restore --type=time`` into a new dir, then recovery to the target (replay,
  promote), verified the way ``drctl restore`` verifies it;
- baselines: ``cp -a`` of the (stopped) data dir, and ``pg_dump -Fc`` + ``pg_restore`` of the
  pgbench database into a new database.

It prints the times and the ratios to the baselines. Figures depend on the machine; ratios are what
to compare between runs.
"""

from __future__ import annotations

import argparse
import json
import os
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


def bench(scale: int, process_max: int) -> dict:
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

            # History around the target: transactions before and after T, all archived.
            pgbench_tx = [PG_BIN / "pgbench", "-n", "-c", "2", "-t", "500", "-d", pg.dsn("bench")]
            run(pgbench_tx)
            target = pg.scalar("select clock_timestamp()")
            history_at_t = pg.scalar("select count(*) from pgbench_history", dbname="bench")
            run(pgbench_tx)
            wait_archived(pg)

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
        "repo_backup_bytes": repo_bytes,
        "process_max": process_max,
        "cpus": os.cpu_count(),
        "seconds": {
            "pgbackrest_full_backup": round(backup_s, 2),
            "pgbackrest_restore": round(restore_s, 2),
            "recovery_to_target": round(result.recovery_s, 2),
            "pitr_total": round(pitr_s, 2),
            "cp_a_data_dir": round(cp_s, 2),
            "pg_dump_fc": round(dump_s, 2),
            "pg_restore": round(pg_restore_s, 2),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale (default 30)")
    parser.add_argument(
        "--process-max",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="pgBackRest process-max (default: CPUs, at most the rendered 4)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if args.scale < 1:
        parser.error(f"--scale {args.scale} is not valid: a positive integer")
    report = bench(args.scale, args.process_max)
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
