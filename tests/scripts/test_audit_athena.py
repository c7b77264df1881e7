"""The Athena engine: the same audit SQL, checked three ways, and the client flow.

Athena cannot run here, so:
- the exact query text the engine submits is parsed by sqlglot as Trino and as Athena SQL, and
  executed by DuckDB over views shaped like the Glue tables (one ``dt`` partition per report): it
  must find exactly the injected discrepancies, like the local engine;
- the engine itself runs against moto's Athena (workgroup, query states QUEUED -> RUNNING ->
  SUCCEEDED; moto executes no SQL, so the result rows DuckDB computed are queued in moto in the
  shape GetQueryResults returns);
- what moto lacks (a FAILED query, paged results, a query that overruns) is tested with botocore's
  Stubber, which validates every request against the Athena service model.
"""

from __future__ import annotations

import datetime as dt

import boto3
import duckdb
import pytest
import sqlglot
from botocore.stub import Stubber
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID

from components.objectives import parse_objectives
from scripts.checks import audit as audit_module
from scripts.checks.audit import sql
from scripts.checks.audit.engines import AthenaEngine
from scripts.common import DrctlError, ExitCode
from scripts.dataops.inventory_store import S3Store
from scripts.local.evaluate import read_stack_config
from scripts.local.inventory import arrow_table
from tests.scripts.inventory_fixtures import DATASET, create_buckets, moto_s3, write_reports


@pytest.fixture
def aws(monkeypatch):
    yield from moto_s3(monkeypatch)


@pytest.fixture
def setup(aws, prod):
    inventory = prod.outputs["inventory"]
    create_buckets(aws, inventory)
    synthetic = write_reports(aws, inventory)
    objectives = parse_objectives(read_stack_config("prod"), "prod")
    store = S3Store(lambda region: aws[region])
    plan = audit_module.plan_dataset(
        inventory, DATASET, objectives, store, query_region="us-east-1"
    )
    return inventory, synthetic, objectives, store, plan


def athena_text(plan, name="findings"):
    tables = [
        (c.region, c.is_source, plan.database, c.table, c.snapshot.partition) for c in plan.copies
    ]
    return sql.athena_query(name, tables, plan.params)


def glue_like_duckdb(plan, store, tmp_path):
    """DuckDB views named and shaped like the Glue tables: the report's files plus ``dt``."""
    from scripts.checks.audit.snapshots import fetch

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f'CREATE SCHEMA "{plan.database}"')
    for copy in plan.copies:
        files = [str(p) for p in fetch(store, copy.snapshot, tmp_path)]
        con.execute(
            f'CREATE VIEW "{plan.database}"."{copy.table}" AS SELECT *, '
            f"'{copy.snapshot.partition}' AS dt FROM read_parquet({files})"
        )
    return con


@pytest.mark.parametrize("dialect", ["trino", "athena"])
@pytest.mark.parametrize("name", ["findings", "copy_stats"])
def test_the_submitted_query_parses_as_athena_sql(setup, dialect, name):
    *_, plan = setup
    text = athena_text(plan, name)
    tree = sqlglot.parse_one(text, read=dialect)
    tables = {t.name for t in tree.find_all(sqlglot.exp.Table)}
    assert {c.table for c in plan.copies} <= tables
    assert f"dt = '{plan.copies[0].snapshot.partition}'" in text


def test_the_parser_check_can_fail():
    with pytest.raises(sqlglot.errors.ParseError):
        sqlglot.parse_one("SELECT key FROM inventory WHERE (size >", read="trino")


def test_duckdb_runs_the_athena_text_and_finds_exactly_the_injected(setup, tmp_path):
    _, synthetic, _, store, plan = setup
    con = glue_like_duckdb(plan, store, tmp_path)
    rows = arrow_table(con.sql(athena_text(plan))).to_pylist()
    found = {
        (r["key"], r["version_id"], r["region"], r["kind"])
        for r in rows
        if r["kind"] in audit_module.DISCREPANCIES
    }
    assert found == synthetic.expected


def _athena_page(table):
    """A DuckDB result in the shape of Athena's GetQueryResults (header row first)."""
    kinds = {"string": "varchar", "int64": "bigint", "bool": "boolean"}
    columns = [
        {
            "Name": f.name,
            "Type": "timestamp"
            if "timestamp" in str(f.type)
            else kinds.get(str(f.type), "varchar"),
        }
        for f in table.schema
    ]

    def cell(value):
        if value is None:
            return {}
        if isinstance(value, bool):
            return {"VarCharValue": "true" if value else "false"}
        if isinstance(value, dt.datetime):
            utc = value.astimezone(dt.UTC)
            return {
                "VarCharValue": utc.strftime("%Y-%m-%d %H:%M:%S.")
                + f"{utc.microsecond // 1000:03d}"
            }
        return {"VarCharValue": str(value)}

    header = {"Data": [{"VarCharValue": c["Name"]} for c in columns]}
    rows = [{"Data": [cell(r[c["Name"]]) for c in columns]} for r in table.to_pylist()]
    return [header, *rows], columns


def test_the_engine_on_moto_athena_returns_the_same_findings(setup, prod, tmp_path):
    inventory, synthetic, objectives, store, plan = setup
    con = glue_like_duckdb(plan, store, tmp_path)
    athena = boto3.client("athena", region_name="us-east-1")
    workgroup = inventory["athena"]["us-east-1"]["workgroup"]
    athena.create_work_group(Name=workgroup, Configuration={})
    backend = athena_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for name in ("findings", "copy_stats"):
        rows, columns = _athena_page(arrow_table(con.sql(athena_text(plan, name))))
        backend.query_results_queue.append(QueryResults(rows=rows, column_info=columns))

    engine = AthenaEngine(athena, workgroup, poll_s=0)
    result = audit_module.audit_dataset(
        inventory, DATASET, objectives, store, engine, query_region="us-east-1"
    )
    found = {(r["key"], r["version_id"], r["region"], r["kind"]) for r in result.rows(None)}
    assert found == synthetic.expected
    assert result.copies["us-west-2"]["versions"] == synthetic.rows["us-west-2"]
    executions = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    assert len(executions) == 2
    submitted = athena.get_query_execution(QueryExecutionId=executions[0])["QueryExecution"]
    assert submitted["Query"] in (athena_text(plan), athena_text(plan, "copy_stats"))
    assert submitted["QueryExecutionContext"]["Database"] == plan.database


def _execution(state, reason=None, scanned=0):
    status = {"State": state}
    if reason:
        status["StateChangeReason"] = reason
    return {
        "QueryExecution": {
            "QueryExecutionId": "q-1",
            "Status": status,
            "Statistics": {"DataScannedInBytes": scanned},
        }
    }


def test_a_failed_query_is_a_step_failure_with_athenas_reason():
    """Stubber: moto's queries always succeed."""
    client = boto3.client("athena", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        stub.add_response("get_query_execution", _execution("RUNNING"))
        stub.add_response(
            "get_query_execution",
            _execution("FAILED", "Query exhausted resources at this scale factor"),
        )
        engine = AthenaEngine(client, "wg", poll_s=0)
        with pytest.raises(DrctlError) as err:
            engine.query("SELECT 1", "db")
    assert err.value.code == ExitCode.STEP_FAILED
    assert "exhausted resources" in str(err.value)


def test_results_are_read_across_pages_and_typed():
    """Stubber: moto returns every row on one page."""
    client = boto3.client("athena", region_name="us-east-1")
    info = [{"Name": "region", "Type": "varchar"}, {"Name": "versions", "Type": "bigint"}]
    header = {"Data": [{"VarCharValue": "region"}, {"VarCharValue": "versions"}]}

    def row(region, n):
        return {"Data": [{"VarCharValue": region}, {"VarCharValue": str(n)}]}

    with Stubber(client) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        stub.add_response("get_query_execution", _execution("SUCCEEDED", scanned=123))
        stub.add_response(
            "get_query_results",
            {
                "ResultSet": {
                    "Rows": [header, row("us-east-1", 5)],
                    "ResultSetMetadata": {"ColumnInfo": info},
                },
                "NextToken": "page-2",
            },
            {"QueryExecutionId": "q-1", "MaxResults": 1000},
        )
        stub.add_response(
            "get_query_results",
            {
                "ResultSet": {
                    "Rows": [row("us-west-2", 4)],
                    "ResultSetMetadata": {"ColumnInfo": info},
                }
            },
            {"QueryExecutionId": "q-1", "MaxResults": 1000, "NextToken": "page-2"},
        )
        rows, scanned, _ = AthenaEngine(client, "wg", poll_s=0).query("SELECT 1", "db")
    assert rows == [{"region": "us-east-1", "versions": 5}, {"region": "us-west-2", "versions": 4}]
    assert scanned == 123


def test_a_query_that_overruns_is_stopped():
    client = boto3.client("athena", region_name="us-east-1")
    ticks = iter([0.0, 10.0, 20.0])
    with Stubber(client) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        stub.add_response("get_query_execution", _execution("RUNNING"))
        stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-1"})
        engine = AthenaEngine(client, "wg", poll_s=0, timeout_s=5, clock=lambda: next(ticks))
        with pytest.raises(DrctlError, match="longer than 5 s; stopped"):
            engine.query("SELECT 1", "db")
