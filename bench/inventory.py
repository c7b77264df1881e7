"""Benchmark: the local replication audit over synthetic S3 Inventory reports, against a scan.

    .venv/bin/python bench/inventory.py [--objects 10000000] [--dir DIR] [--keep] [--json]

It writes one daily, all-versions Parquet report per copy (three regions) in S3 Inventory's layout
and schema (scripts/local/inventory.py: manifest.json, manifest.checksum, Snappy Parquet files),
``--objects`` objects per region (about 1.12 rows each: some have two versions or a delete
marker), with a known set of injected discrepancies; then, each in a process of its own:

- baseline: DuckDB reads every column the audit compares from every report file, nothing else;
- audit: ``drctl audit replication``'s local engine (scripts/checks/audit): the manifests and MD5
  checks, the digest pre-filter (local.sql), the comparison (audit.sql).

It prints the audit's wall time and CPU time, versions per second, the audit process's peak RSS,
the ratio to the baseline, whether the audit found exactly the injected discrepancies (and none
of the planted look-alikes), the targets (3 x 10M in under 30 s and 4 GiB) and the load average,
because the machine may be shared. From the measured throughput it derives the object count above
which ``--engine athena`` should be used (docs/audit.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
DATASET = "creator-audio"
CONFIG = "audit-bench"
STARTED = dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.UTC)
RPO_S = 900
NONCURRENT_DAYS = 365
TARGET_S, TARGET_BYTES = 30.0, 4 * 1024**3
# For the crossover: how long a local audit may take before Athena is the better engine, and how
# fast an operator's machine in the region downloads the reports (an assumption, stated).
LOCAL_BUDGET_S = 15 * 60
DOWNLOAD_BYTES_S = 100e6
ATHENA_USD_PER_TB = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def layout():
    from scripts.local.inventory import Copy

    return [
        Copy(
            r,
            f"{DATASET}-{r}-bench",
            f"inventory-{r}-bench",
            STARTED + dt.timedelta(minutes=20 * i),
        )
        for i, r in enumerate(REGIONS)
    ]


def generate(root: Path, objects: int) -> dict:
    from scripts.dataops.inventory_store import DirStore
    from scripts.local.inventory import synthesize

    stamp = root / "generated.json"
    if stamp.exists():
        recorded = json.loads(stamp.read_text())
        if recorded["objects"] == objects:
            log(f"reusing the reports in {root}")
            return recorded
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    log(f"generating 3 x {objects:,} objects of S3 Inventory reports in {root} ...")
    started = time.perf_counter()
    synthetic = synthesize(
        DirStore(root / "s3").writer(),
        layout(),
        objects,
        config=CONFIG,
        rpo_s=RPO_S,
        noncurrent_days=NONCURRENT_DAYS,
    )
    recorded = {
        "objects": objects,
        "rows": synthetic.rows,
        "expected": sorted(map(list, synthetic.expected)),
        "expiring": sorted(map(list, synthetic.quiet.get("expiring", ()))),
        "quiet_keys": sorted(
            {k for kind in ("recent", "class-differs") for k, _ in synthetic.quiet.get(kind, ())}
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps(recorded))
    return recorded


def inventory_output() -> dict:
    copies = layout()
    return {
        "configId": CONFIG,
        "buckets": {c.region: c.store for c in copies},
        "datasets": {
            DATASET: {
                "dataClass": "critical",
                "primaryRegion": copies[0].region,
                "noncurrentExpiryDays": NONCURRENT_DAYS,
                "copies": {c.region: c.bucket for c in copies},
            }
        },
    }


def child_baseline(root: Path) -> dict:
    import duckdb

    from scripts.checks.audit.sql import COLUMNS

    files = sorted(str(p) for p in (root / "s3").rglob("*.parquet"))
    started = time.perf_counter()
    con = duckdb.connect()
    reads = ", ".join(
        f"max(length({c}))"
        if c
        in (
            "key",
            "version_id",
            "e_tag",
            "storage_class",
            "replication_status",
            "checksum_algorithm",
        )
        else f"max({c})"
        for c in COLUMNS
    )
    rows = con.sql(f"SELECT count(*), {reads} FROM read_parquet({files})").fetchall()[0][0]
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "files": len(files),
        "bytes": sum(os.path.getsize(f) for f in files),
    }


def child_audit(root: Path) -> dict:
    from components.objectives import parse_objectives
    from scripts.checks import audit
    from scripts.checks.audit.engines import LocalEngine
    from scripts.dataops.inventory_store import DirStore
    from scripts.local.evaluate import read_stack_config

    objectives = parse_objectives(read_stack_config("prod"), "prod")
    store = DirStore(root / "s3")
    started = time.perf_counter()
    engine = LocalEngine(store, root / "cache")
    result = audit.audit_dataset(inventory_output(), DATASET, objectives, store, engine)
    seconds = time.perf_counter() - started
    rows = result.rows(None, [*audit.DISCREPANCIES, "expiring"])
    return {
        "seconds": seconds,
        "found": sorted(
            [r["key"], r["version_id"], r["region"], r["kind"]]
            for r in rows
            if r["kind"] != "expiring"
        ),
        "expiring": sorted([r["key"], r["version_id"]] for r in rows if r["kind"] == "expiring"),
        "keys": sorted({r["key"] for r in rows}),
        "narrowed_rows": engine.narrowed_rows,
        "phases": result.seconds,
        "versions": sum(c["versions"] for c in result.copies.values()),
    }


def in_child(kind: str, root: Path) -> dict:
    """Run one measurement in a fresh process; its own peak RSS is part of the answer."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--dir", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def bench(objects: int, root: Path) -> dict:
    load_before = os.getloadavg()
    generated = generate(root, objects)
    log("baseline: scan every compared column of every report ...")
    baseline = in_child("baseline", root)
    log("audit: drctl audit replication's local engine ...")
    measured = in_child("audit", root)
    load_after = os.getloadavg()

    expected = {tuple(x) for x in generated["expected"]}
    found = {tuple(x) for x in measured["found"]}
    quiet = set(generated["quiet_keys"]) & set(measured["keys"])
    exact = found == expected and measured["expiring"] == generated["expiring"] and not quiet
    versions = measured["versions"]
    per_second = versions / measured["seconds"]
    bytes_per_row = baseline["bytes"] / baseline["rows"]
    # Local time at N objects per copy: the measured rate, plus downloading the reports.
    seconds_per_object = 3 * 1.12 * (1 / per_second + bytes_per_row / DOWNLOAD_BYTES_S)
    crossover = int(LOCAL_BUDGET_S / seconds_per_object)
    scanned_tb = 3 * 1.12 * crossover * bytes_per_row / 1e12
    return {
        "objects_per_region": objects,
        "regions": len(REGIONS),
        "versions": versions,
        "cpus": os.cpu_count(),
        "load_average": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "generation_s": generated["seconds"],
        "report_bytes": baseline["bytes"],
        "seconds": {
            "baseline_scan": round(baseline["seconds"], 2),
            "audit": round(measured["seconds"], 2),
        },
        "cpu_s": {
            "baseline_scan": round(baseline["cpu_s"], 1),
            "audit": round(measured["cpu_s"], 1),
        },
        "audit_versions_per_s": round(per_second),
        "peak_rss_bytes": {"baseline": baseline["peak_rss"], "audit": measured["peak_rss"]},
        "ratio_audit_vs_scan": round(measured["seconds"] / baseline["seconds"], 2),
        "rows_compared_after_prefilter": measured["narrowed_rows"],
        "audit_phases_s": measured["phases"],
        "found_exactly_the_injected": exact,
        "injected": len(expected),
        "found": len(found),
        "targets": {
            "audit_under_30_s": measured["seconds"] < TARGET_S,
            "peak_under_4_gib": measured["peak_rss"] < TARGET_BYTES,
        },
        "crossover": {
            "objects_per_copy": crossover,
            "criterion": f"local audit (measured rate + download at {DOWNLOAD_BYTES_S / 1e6:.0f} "
            f"MB/s) longer than {LOCAL_BUDGET_S // 60} min",
            "athena_usd_per_audit_there": round(scanned_tb * ATHENA_USD_PER_TB, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000_000, help="objects per region")
    parser.add_argument("--dir", type=Path, default=None, help="where the reports go (reused)")
    parser.add_argument("--keep", action="store_true", help="keep the reports for another run")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--child", choices=["baseline", "audit"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure = child_baseline if args.child == "baseline" else child_audit
        result = measure(args.dir)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["peak_rss"] = usage.ru_maxrss * 1024
        result["cpu_s"] = usage.ru_utime + usage.ru_stime
        print(json.dumps(result))
        return
    if args.objects < 1000:
        parser.error(f"--objects {args.objects} is not valid: at least 1000")
    root = args.dir or Path(tempfile.gettempdir()) / f"drctl-bench-inventory-{args.objects}"
    try:
        report = bench(args.objects, root)
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        gib = 1024**3
        s = report["seconds"]
        print(
            f"{report['regions']} x {report['objects_per_region']:,} objects "
            f"({report['versions']:,} versions, {report['report_bytes'] / 1e9:.2f} GB of Parquet), "
            f"{report['cpus']} CPUs, load average {report['load_average']['before']} -> "
            f"{report['load_average']['after']}"
        )
        print(f"  baseline scan of the compared columns {s['baseline_scan']:8.2f} s")
        print(
            f"  local audit                           {s['audit']:8.2f} s "
            f"({report['ratio_audit_vs_scan']:.2f}x the scan), "
            f"{report['audit_versions_per_s']:,} versions/s"
        )
        cpu = report["cpu_s"]
        floor = cpu["audit"] / report["cpus"]
        print(
            f"    CPU time: audit {cpu['audit']:.1f} s, scan {cpu['baseline_scan']:.1f} s "
            f"(on {report['cpus']} idle CPUs the audit needs at least {floor:.1f} s)"
        )
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in report["audit_phases_s"].items())
        print(f"    of which: {phases} (the rest: reading manifests, checking MD5s, planning)")
        print(
            f"  peak RSS: audit {report['peak_rss_bytes']['audit'] / gib:.2f} GiB, "
            f"scan {report['peak_rss_bytes']['baseline'] / gib:.2f} GiB"
        )
        print(
            f"  found exactly the {report['injected']} injected discrepancies: "
            f"{'yes' if report['found_exactly_the_injected'] else 'NO'} (found {report['found']})"
        )
        t = report["targets"]
        print(
            f"  targets: under 30 s {'met' if t['audit_under_30_s'] else 'NOT MET'}, "
            f"under 4 GiB {'met' if t['peak_under_4_gib'] else 'NOT MET'}"
        )
        c = report["crossover"]
        print(
            f"  use --engine athena above ~{c['objects_per_copy']:,} objects per copy "
            f"({c['criterion']}; Athena there: ~${c['athena_usd_per_audit_there']} per audit)"
        )
    if not (report["found_exactly_the_injected"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
