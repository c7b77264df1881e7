"""The two engines that run audit.sql: DuckDB on this machine, Athena in AWS.

Both take an ``AuditPlan`` (one dataset: its copies, the report each copy is audited from, the
parameters) and return the same ``EngineResult``: the findings as an Arrow table in
``FINDINGS_SCHEMA`` and one row of statistics per copy.

- ``LocalEngine`` downloads each report's Parquet files (checked against the manifest) into a cache
  and runs the statements with DuckDB over a view of them. DuckDB streams the files; its memory is
  capped by ``memory_limit`` and it spills to ``cache`` beyond it.
- ``AthenaEngine`` submits the same statements to an Athena workgroup over the Glue tables of the
  copies, naming each report's ``dt`` partition, polls until the query ends (progress on stderr)
  and pages through the results.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from scripts.checks.audit import sql
from scripts.checks.audit.snapshots import Snapshot, fetch
from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops.inventory_store import Store
from scripts.local.inventory import arrow_table

FINDINGS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("version_id", pa.string()),
        ("region", pa.string()),
        ("kind", pa.string()),
        ("size", pa.int64()),
        ("storage_class", pa.string()),
        ("is_delete_marker", pa.bool_()),
        ("source_status", pa.string()),
        ("last_modified", pa.timestamp("ms", tz="UTC")),
    ]
)
STATS_COLUMNS = ("region", "versions", "delete_markers", "unsettled", "bytes")


@dataclass(frozen=True)
class CopyPlan:
    region: str
    is_source: bool
    snapshot: Snapshot
    table: str = ""  # the Glue table of this copy (Athena)


@dataclass(frozen=True)
class AuditPlan:
    dataset: str
    data_class: str
    copies: tuple[CopyPlan, ...]
    params: sql.Params
    database: str = ""  # the Glue database (Athena)

    @property
    def regions(self) -> list[tuple[str, bool]]:
        return [(c.region, c.is_source) for c in self.copies]


@dataclass
class EngineResult:
    findings: pa.Table
    stats: list[dict[str, Any]]
    scanned_bytes: int | None = None  # what Athena billed; None for the local engine
    queries: list[str] = field(default_factory=list)  # execution ids (Athena)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase (local engine)


# A copy whose report lists no file (an empty bucket) reads as no rows of the same types.
_NO_ROWS = (
    "(SELECT CAST(NULL AS VARCHAR) AS key, CAST(NULL AS VARCHAR) AS version_id, "
    "CAST(NULL AS BOOLEAN) AS is_delete_marker, CAST(NULL AS BIGINT) AS size, "
    "CAST(NULL AS TIMESTAMPTZ) AS last_modified_date, CAST(NULL AS VARCHAR) AS e_tag, "
    "CAST(NULL AS VARCHAR) AS storage_class, CAST(NULL AS VARCHAR) AS replication_status, "
    "CAST(NULL AS VARCHAR) AS checksum_algorithm WHERE false)"
)


def _view_sql(plan: AuditPlan, files: dict[str, list[Path]]) -> str:
    parts = []
    for copy in plan.copies:
        listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files[copy.region])
        relation = f"read_parquet([{listed}])" if listed else _NO_ROWS
        parts.append(sql.copy_select(copy.region, copy.is_source, relation))
    return "CREATE OR REPLACE TEMP VIEW reports AS\n" + "\nUNION ALL\n".join(parts)


def digest_buckets(rows_per_copy: int) -> int:
    """About 150 versions per bucket (at least 1024 buckets): a discrepancy costs audit.sql a few
    hundred rows, and the digest table stays small enough for the CPU's caches."""
    buckets = 1024
    while buckets * 150 < rows_per_copy:
        buckets *= 2
    return buckets


class LocalEngine:
    """DuckDB over the downloaded reports: local.sql narrows, audit.sql compares."""

    name = "local"

    def __init__(
        self,
        store: Store,
        cache: Path,
        *,
        threads: int | None = None,
        memory_limit: str | None = "3GB",
        prefilter: bool = True,
    ):
        self.store, self.cache = store, Path(cache)
        self.threads, self.memory_limit = threads, memory_limit
        self.prefilter = prefilter
        self.narrowed_rows: int | None = None  # rows handed to audit.sql (after the pre-filter)

    def run(self, plan: AuditPlan) -> EngineResult:
        import duckdb

        files, checks = {}, []
        for copy in plan.copies:
            snap = copy.snapshot
            progress.print(
                f"  {plan.dataset} {copy.region}: {len(snap.files)} file(s), "
                f"{snap.size / 1e6:.1f} MB from s3://{snap.store_bucket}/{snap.manifest_key}"
            )
            files[copy.region] = fetch(self.store, snap, self.cache, deferred=checks)
        # Files read in place are checked against their manifest while DuckDB reads them; the
        # result is only returned once every check has passed.
        with ThreadPoolExecutor(1) as pool:
            verifying = pool.submit(lambda: [check() for check in checks])
            try:
                return self._query(duckdb, plan, files)
            except Exception:
                damaged = verifying.exception()
                if damaged is not None:
                    raise damaged from None  # the cause, not what DuckDB made of a bad file
                raise
            finally:
                damaged = verifying.exception()  # waits: nothing is returned unchecked
                if damaged is not None:
                    raise damaged

    def _query(self, duckdb: Any, plan: AuditPlan, files: dict[str, list[Path]]) -> EngineResult:
        con = duckdb.connect()
        try:
            # Inventory timestamps are UTC instants; compare them as UTC whatever the local zone.
            con.execute("SET TimeZone = 'UTC'")
            spill = self.cache / "duckdb-spill"
            spill.mkdir(parents=True, exist_ok=True)
            con.execute(f"SET temp_directory = '{spill}'")
            if self.threads:
                con.execute(f"SET threads = {int(self.threads)}")
            if self.memory_limit:
                con.execute(f"SET memory_limit = '{self.memory_limit}'")
            con.execute(_view_sql(plan, files))
            con.execute("CREATE OR REPLACE TEMP VIEW inventory AS SELECT * FROM reports")
            clock = _Phases()
            if self.prefilter:
                rows = self._narrow(con, plan, clock)
            else:
                stats = con.sql(sql.local_query("copy_stats", plan.regions, plan.params))
                rows = [dict(zip(STATS_COLUMNS, r, strict=True)) for r in stats.fetchall()]
                clock.done("copy_stats")
            findings = con.sql(sql.local_query("findings", plan.regions, plan.params))
            table = arrow_table(findings).cast(FINDINGS_SCHEMA)
            clock.done("findings")
        finally:
            con.close()
        return EngineResult(table, rows, seconds=clock.seconds)

    def _narrow(self, con: Any, plan: AuditPlan, clock: _Phases) -> list[dict[str, Any]]:
        """Digest every bucket of keys in one pass (local.sql); keep only the rows of buckets
        where the copies can differ for audit.sql. Returns the copy statistics of that pass."""
        total = con.sql("SELECT count(*) FROM reports").fetchall()[0][0]
        buckets = digest_buckets(total // max(1, len(plan.copies)))
        digests = sql.local_prefilter(
            "digests", buckets=buckets, settled_before=plan.params.settled_before
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE digests AS {digests}")
        stats = con.sql(sql.local_prefilter("digest_stats")).fetchall()
        rows = [dict(zip(STATS_COLUMNS, r, strict=True)) for r in stats]
        suspect = sql.local_prefilter("suspect_buckets", copies=len(plan.copies))
        found = sorted(int(b) for (b,) in con.sql(suspect).fetchall())
        clock.done("digests")
        if len(found) > buckets // 4:
            return rows  # most of the key space differs (a new, empty copy): compare every row
        if not found:
            found = [-1]  # no bucket can be -1: audit.sql gets no rows and finds nothing
        narrowed = sql.local_prefilter("narrowed", buckets=buckets, suspects=found)
        con.execute(f"CREATE OR REPLACE TEMP TABLE narrowed AS {narrowed}")
        con.execute("CREATE OR REPLACE TEMP VIEW inventory AS SELECT * FROM narrowed")
        self.narrowed_rows = con.sql("SELECT count(*) FROM narrowed").fetchall()[0][0]
        clock.done("narrow")
        return rows


class _Phases:
    """Wall seconds per phase of a local audit (the benchmark prints them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 2)
        self._last = now


# ---------------------------------------------------------------------------------------------
# Athena

_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def _convert(value: str | None, kind: str) -> Any:
    if value is None:
        return None
    if kind in ("bigint", "integer", "smallint", "tinyint"):
        return int(value)
    if kind == "boolean":
        return value.lower() == "true"
    if kind.startswith("timestamp"):
        moment = dt.datetime.fromisoformat(value.replace(" UTC", ""))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return value


class AthenaEngine:
    """The same statements in an Athena workgroup (whose settings encrypt the results)."""

    name = "athena"

    def __init__(
        self,
        athena: Any,
        workgroup: str,
        *,
        poll_s: float = 2.0,
        timeout_s: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.athena, self.workgroup = athena, workgroup
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.sleep, self.clock = sleep, clock

    def query(self, text: str, database: str) -> tuple[list[dict[str, Any]], int, str]:
        """Run ``text``; returns (rows as dicts, bytes scanned, execution id)."""
        started = self.athena.start_query_execution(
            QueryString=text,
            WorkGroup=self.workgroup,
            QueryExecutionContext={"Database": database, "Catalog": "AwsDataCatalog"},
            ClientRequestToken=str(uuid.uuid4()),
        )
        execution_id = started["QueryExecutionId"]
        deadline = self.clock() + self.timeout_s
        last = None
        while True:
            execution = self.athena.get_query_execution(QueryExecutionId=execution_id)
            execution = execution["QueryExecution"]
            state = execution["Status"]["State"]
            scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
            if state != last or state == "RUNNING":
                progress.print(f"    athena {execution_id}: {state}, {scanned / 1e9:.2f} GB read")
                last = state
            if state in _TERMINAL:
                break
            if self.clock() > deadline:
                self.athena.stop_query_execution(QueryExecutionId=execution_id)
                raise DrctlError(
                    f"athena query {execution_id} ran longer than {self.timeout_s:.0f} s; stopped",
                    ExitCode.STEP_FAILED,
                )
            self.sleep(self.poll_s)
        if state != "SUCCEEDED":
            reason = execution["Status"].get("StateChangeReason", "no reason given")
            raise DrctlError(f"athena query {execution_id} {state}: {reason}", ExitCode.STEP_FAILED)
        return self._rows(execution_id), scanned, execution_id

    def _rows(self, execution_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        columns: list[tuple[str, str]] | None = None
        kwargs = {"QueryExecutionId": execution_id, "MaxResults": 1000}
        first = True
        while True:
            page = self.athena.get_query_results(**kwargs)
            result = page["ResultSet"]
            if columns is None:
                info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [(c["Name"], c.get("Type", "varchar").lower()) for c in info]
            data = result.get("Rows", [])
            if first and data:
                data = data[1:]  # the first row of a SELECT's results repeats the column names
            first = False
            for row in data:
                values = [cell.get("VarCharValue") for cell in row["Data"]]
                rows.append({n: _convert(v, k) for (n, k), v in zip(columns, values, strict=True)})
            token = page.get("NextToken")
            if not token:
                return rows
            kwargs["NextToken"] = token

    def run(self, plan: AuditPlan) -> EngineResult:
        tables = [
            (c.region, c.is_source, plan.database, c.table, c.snapshot.partition)
            for c in plan.copies
        ]
        findings, scanned, first = self.query(
            sql.athena_query("findings", tables, plan.params), plan.database
        )
        stats, more, second = self.query(
            sql.athena_query("copy_stats", tables, plan.params), plan.database
        )
        table = pa.Table.from_pylist(findings, schema=FINDINGS_SCHEMA)
        rows = [{c: r.get(c) for c in STATS_COLUMNS} for r in stats]
        return EngineResult(table, rows, scanned + more, [first, second])


def engine_names() -> Sequence[str]:
    return ("local", "athena")
