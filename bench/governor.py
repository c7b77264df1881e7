"""Benchmark: what the RPO governor costs in commit latency, against a same-run baseline.

    .venv/bin/python bench/governor.py [--commits 2000] [--json]

On a throwaway PostgreSQL 15 primary with a streaming standby through the DR slot, both on
loopback, one client commits single-row transactions and times each commit. Three modes, measured
in the same run:

- ``async``: no governor: the baseline (what the standby costs a commit today);
- ``governor idle``: the rendered governor agent running (components/agents/rpo_governor.py,
  polling every second) with a caught-up standby: it must cost nothing;
- ``governor engaged``: the settings the governor applies when the standby falls behind
  (synchronous_standby_names = the standby, synchronous_commit = remote_apply), applied by the
  agent's own ``engage``: every commit waits for the standby to replay it.

It prints p50 and p95 commit latency per mode and the ratios to the baseline. Loopback has no
network delay: across regions the engaged mode adds a round trip per commit on top of this, which
is the price of an enforced RPO, paid only while the standby is behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.agents.rpo_governor import Governor  # noqa: E402
from components.objectives import parse_objectives  # noqa: E402
from components.pg_host_agents import HostPg, agent_source, governor_config  # noqa: E402
from scripts.local.evaluate import read_stack_config  # noqa: E402
from scripts.local.postgres import PG_BIN, LocalCluster, make_postgres_dir  # noqa: E402

SLOT = "dr_standby_us_west_2"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def commit_latencies(primary: LocalCluster, commits: int) -> list[float]:
    with primary.connect() as conn:
        conn.execute("create table if not exists bench_commits (id bigserial, at timestamptz)")
        for _ in range(50):  # warm-up
            conn.execute("insert into bench_commits (at) values (now())")
        out = []
        for _ in range(commits):
            started = time.perf_counter()
            conn.execute("insert into bench_commits (at) values (now())")
            out.append(time.perf_counter() - started)
        return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    objectives = parse_objectives(read_stack_config("prod"), "prod")
    results: dict[str, dict[str, float]] = {}
    with LocalCluster("bench-gov-primary") as primary:
        standby = primary.create_standby("bench-gov-standby", slot=SLOT)
        standby.execute(
            "alter system set primary_conninfo = "
            f"'host=127.0.0.1 port={primary.port} user=postgres application_name=dr_standby'"
        )
        standby.execute("select pg_reload_conf()")
        primary.wait_for(
            "select count(*) from pg_stat_replication where application_name = 'dr_standby'"
        )
        pg = HostPg(str(primary.data_dir), int(primary.port), str(primary.socket_dir), str(PG_BIN))
        config = governor_config(objectives, slot=SLOT, pg=pg)
        work = make_postgres_dir(tempfile.mkdtemp(prefix="bench-governor-"), 0o755)
        config.update(state_file=str(work / "state.json"), disable_file=str(work / "off"))
        (work / "rpo_governor.py").write_text(agent_source("rpo_governor"))
        (work / "rpo_governor.json").write_text(json.dumps(config))

        log(f"async baseline: {args.commits} commits")
        results["async"] = summary(commit_latencies(primary, args.commits))

        argv = ["runuser", "-u", "postgres", "--", "/usr/bin/python3"]
        argv += [str(work / "rpo_governor.py"), "--config", str(work / "rpo_governor.json"), "run"]
        proc = subprocess.Popen(argv, cwd="/", start_new_session=True, stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)
            log("governor idle (running, standby caught up)")
            results["governor idle"] = summary(commit_latencies(primary, args.commits))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)

        governor = Governor(config)
        governor.psql = _as_superuser(primary)  # the same statements, over our connection
        governor.engage()
        assert primary.scalar("show synchronous_commit") == "remote_apply"
        log("governor engaged (synchronous_commit = remote_apply to the DR standby)")
        results["governor engaged"] = summary(commit_latencies(primary, args.commits))
        governor.release()
    base = results["async"]
    report = {
        "commits_per_mode": args.commits,
        "latency": results,
        "ratios": {
            f"{mode} {q}": round(r[q] / base[q], 2)
            for mode, r in results.items()
            if mode != "async"
            for q in ("p50_ms", "p95_ms")
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for mode, r in results.items():
        print(f"  {mode:18} p50 {r['p50_ms']:8.3f} ms   p95 {r['p95_ms']:8.3f} ms")
    for name, ratio in report["ratios"].items():
        print(f"  {name:30} {ratio:6.2f}x the async baseline")


def _as_superuser(cluster: LocalCluster):
    def run(*commands: str) -> str:
        with cluster.connect() as conn:
            for command in commands:
                conn.execute(command)
        return ""

    return run


if __name__ == "__main__":
    main()
