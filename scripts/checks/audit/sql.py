"""The audit SQL (audit.sql) and the relations each engine puts in front of it.

``audit.sql`` holds named statements (``-- name: findings``). Both engines run them unchanged after
a prelude of WITH clauses that define ``copies`` and ``params`` (the same text for both), and for
Athena also ``inventory`` (one SELECT per copy's Glue table and report partition, UNION ALL).
DuckDB defines ``inventory`` as a view over the Parquet files instead, so that it is re-read per
reference rather than materialised in memory.

Every value spliced into the SQL is a region, an identifier, a partition or a timestamp, checked
against a strict pattern here; nothing else reaches the text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SQL_FILE = Path(__file__).with_name("audit.sql")
LOCAL_SQL_FILE = Path(__file__).with_name("local.sql")  # the local engine's pre-filter (DuckDB)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_PARTITION = re.compile(r"^\d{4}-\d\d-\d\d-\d\d-\d\d$")
# The columns the statements read, in the order the inventory relation gives them.
COLUMNS = (
    "key",
    "version_id",
    "is_delete_marker",
    "size",
    "last_modified_date",
    "e_tag",
    "storage_class",
    "replication_status",
    "checksum_algorithm",
)


@cache
def statements(path: Path = SQL_FILE) -> dict[str, str]:
    """name -> SQL text of every ``-- name:`` statement in ``path`` (without the final ';')."""
    found: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = re.match(r"^-- name: ([a-z_]+)\s*$", line)
        if match:
            current = match.group(1)
            found[current] = []
        elif current is not None:
            found[current].append(line)
    texts = {}
    for name, lines in found.items():
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
            lines = lines[1:]  # the statement's own comment stays in the file, not the query
        texts[name] = "\n".join(lines).strip().rstrip(";")
    return texts


@dataclass(frozen=True)
class Params:
    copies: int
    settled_before: dt.datetime
    pending_before: dt.datetime
    expiring_before: dt.datetime


def region_literal(region: str) -> str:
    if not _REGION.match(region):
        raise ValueError(f"region {region!r} is not an AWS region name")
    return f"'{region}'"


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a lower-case SQL identifier")
    return f'"{name}"'


def partition_literal(value: str) -> str:
    if not _PARTITION.match(value):
        raise ValueError(f"partition {value!r} is not YYYY-MM-DD-HH-MM")
    return f"'{value}'"


def timestamp_literal(moment: dt.datetime) -> str:
    """A UTC TIMESTAMP literal, millisecond precision (what inventories carry)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = moment.astimezone(dt.UTC)
    return f"TIMESTAMP '{utc.strftime('%Y-%m-%d %H:%M:%S')}.{utc.microsecond // 1000:03d}'"


def copies_and_params(copies: Sequence[tuple[str, bool]], params: Params) -> list[str]:
    """The ``copies`` and ``params`` WITH clauses, identical for both engines."""
    rows = ", ".join(
        f"({region_literal(r)}, {'true' if source else 'false'})" for r, source in copies
    )
    return [
        f"copies AS (SELECT * FROM (VALUES {rows}) AS t (region, is_source))",
        "params AS (SELECT "
        f"{int(params.copies)} AS copies, "
        f"{timestamp_literal(params.settled_before)} AS settled_before, "
        f"{timestamp_literal(params.pending_before)} AS pending_before, "
        f"{timestamp_literal(params.expiring_before)} AS expiring_before)",
    ]


def copy_select(region: str, is_source: bool, relation: str, where: str = "") -> str:
    """One copy's rows in the shape of the ``inventory`` relation."""
    columns = ", ".join(COLUMNS)
    clause = f" WHERE {where}" if where else ""
    source = "true" if is_source else "false"
    return (
        f"SELECT {region_literal(region)} AS region, {source} AS is_source, {columns} "
        f"FROM {relation}{clause}"
    )


def with_relations(statement: str, clauses: Sequence[str]) -> str:
    """Put WITH clauses in front of a statement (joining its own WITH list if it has one)."""
    body = statement.lstrip()
    prefix = "WITH\n" + ",\n".join(clauses)
    if re.match(r"(?i)^with\b", body):
        return prefix + ",\n" + body[4:].lstrip()
    return prefix + "\n" + body


def athena_query(
    name: str, tables: Sequence[tuple[str, bool, str, str, str]], params: Params
) -> str:
    """The named statement for Athena: ``tables`` = (region, is_source, database, table, dt)."""
    union = "\nUNION ALL\n".join(
        copy_select(
            region,
            source,
            f"{identifier(database)}.{identifier(table)}",
            f"dt = {partition_literal(partition)}",
        )
        for region, source, database, table, partition in tables
    )
    inventory = f"inventory AS (\n{union}\n)"
    copies = [(region, source) for region, source, *_ in tables]
    return with_relations(statements()[name], [inventory, *copies_and_params(copies, params)])


def local_query(name: str, copies: Sequence[tuple[str, bool]], params: Params) -> str:
    """The named statement for DuckDB, which defines ``inventory`` as a view beforehand."""
    return with_relations(statements()[name], copies_and_params(copies, params))


def local_prefilter(name: str, **values: int | Sequence[int] | dt.datetime) -> str:
    """A statement of local.sql with its placeholders written in: integers, or a timestamp as a
    TIMESTAMP literal (never a parameter: DuckDB cannot fold a prepared-statement parameter into
    the per-row bucket hash)."""
    rendered = {}
    for key, value in values.items():
        if isinstance(value, dt.datetime):
            rendered[key] = timestamp_literal(value)
            continue
        items = value if isinstance(value, Sequence) else [value]
        rendered[key] = ", ".join(str(int(v)) for v in items)
    return statements(LOCAL_SQL_FILE)[name].format(**rendered)
