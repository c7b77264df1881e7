"""Synthetic S3 Inventory reports with a known set of discrepancies, for the tests and bench/.

The reports are what S3 Inventory delivers for a daily, all-versions, Parquet configuration (S3
User Guide, "Locating your inventory list"): Snappy-compressed Parquet data files in S3's column
order and types (``PARQUET_SCHEMA``, from components.inventory.INVENTORY_COLUMNS), a
``manifest.json`` with S3's fields and Parquet ``fileSchema``, ``manifest.checksum`` (the MD5 of the
manifest) and the Hive ``symlink.txt``, at S3's keys. They are written through a ``put(bucket, key,
data)`` callable, so the same reports go to moto's S3 in the tests and to a directory in the bench.

One dataset, one row per version or delete marker and copy. Objects are numbered; every tenth has
two versions and every fiftieth a delete marker on top. Versions, sizes, ETags and checksums are
the same in every copy (replication keeps version IDs); then ``Injections`` change exactly the
rows they name, so the discrepancies the audit must find are known (``Synthetic.expected``), and
so are the differences it must *not* report: writes too recent to be everywhere yet, noncurrent
versions that lifecycle is expiring on each copy's own clock, storage classes that differ because
each copy transitions on its own. DuckDB computes the rows (fast, in parallel); pyarrow writes them
with S3's exact Parquet types.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from components.inventory import (
    HIVE_PARTITION_FORMAT,
    INVENTORY_COLUMNS,
    SNAPSHOT_FOLDER_FORMAT,
    report_prefix,
)

Put = Callable[[str, str, bytes], None]  # (bucket, key, data)

_ARROW = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
}
# Athena reads the lock date as bigint; in the file it is an int64 TIMESTAMP_MILLIS, like
# last_modified_date (the Parquet fileSchema of an S3 Inventory manifest).
_FILE_TYPES = {"object_lock_retain_until_date": "timestamp"}
PARQUET_SCHEMA = pa.schema(
    [
        pa.field(name, _ARROW[_FILE_TYPES.get(name, kind)], nullable=name not in ("bucket", "key"))
        for name, kind, _ in INVENTORY_COLUMNS
    ]
)
_PARQUET_TYPE = {
    "string": "binary {} (UTF8)",
    "bigint": "int64 {}",
    "boolean": "boolean {}",
    "timestamp": "int64 {} (TIMESTAMP_MILLIS)",
}


def file_schema() -> str:
    """The ``fileSchema`` S3 writes into a Parquet inventory's manifest.json."""
    fields = []
    for name, kind, _ in INVENTORY_COLUMNS:
        mode = "required" if name in ("bucket", "key") else "optional"
        fields.append(f"{mode} {_PARQUET_TYPE[_FILE_TYPES.get(name, kind)].format(name)};")
    return "message s3.inventory { " + " ".join(fields) + " }"


def write_report(
    put: Put,
    store: str,
    source_bucket: str,
    config: str,
    started: dt.datetime,
    batches: Iterable[pa.RecordBatch],
    rows_per_file: int = 2_000_000,
) -> str:
    """Write one inventory report as S3 does; returns the key of its manifest.json."""
    base = report_prefix(source_bucket, config)
    files = []
    writer = sink = None
    written = 0

    def close() -> None:
        nonlocal writer, sink
        if writer is None:
            return
        writer.close()
        data = sink.getvalue()
        key = f"{base}data/{uuid.uuid4()}.parquet"
        put(store, key, data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
        writer = sink = None

    for batch in batches:
        if writer is None:
            sink = io.BytesIO()
            writer = pq.ParquetWriter(sink, PARQUET_SCHEMA, compression="snappy")
            written = 0
        writer.write_batch(batch.cast(PARQUET_SCHEMA))
        written += batch.num_rows
        if written >= rows_per_file:
            close()
    close()
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{store}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(started.timestamp() * 1000)),
        "fileFormat": "Parquet",
        "fileSchema": file_schema(),
        "files": files,
    }
    body = json.dumps(manifest, indent=2).encode()
    folder = f"{base}{started.astimezone(dt.UTC).strftime(SNAPSHOT_FOLDER_FORMAT)}/"
    put(store, f"{folder}manifest.json", body)
    put(store, f"{folder}manifest.checksum", hashlib.md5(body).hexdigest().encode())
    hive = f"{base}hive/dt={started.astimezone(dt.UTC).strftime(HIVE_PARTITION_FORMAT)}/"
    put(store, f"{hive}symlink.txt", "".join(f"s3://{store}/{f['key']}\n" for f in files).encode())
    return f"{folder}manifest.json"


# ---------------------------------------------------------------------------------------------
# The synthetic dataset


@dataclass(frozen=True)
class Copy:
    """One copy of the dataset: its region, bucket, inventory bucket and report start time."""

    region: str
    bucket: str
    store: str
    started: dt.datetime


@dataclass(frozen=True)
class Injections:
    """How many rows of each kind to change, per replica (``missing``...) or at the source."""

    missing: int = 5
    size_differs: int = 3
    etag_differs: int = 3
    checksum_differs: int = 2
    only_in_replica: int = 2
    failed: int = 3  # source status FAILED, the version missing in the first replica
    pending: int = 2  # source status PENDING for longer than the RPO, in no replica
    archived: int = 1  # missing in the first replica, in Deep Archive at the source
    # Not discrepancies (the audit must stay quiet about them):
    recent: int = 4  # written after the settled cutoff, only in the source so far
    expiring: int = 2  # noncurrent for longer than lifecycle keeps it, gone from one replica
    class_differs: int = 3  # a replica transitioned to another storage class first
    # (``archived`` is a discrepancy, but not one Batch Replication can repair: Synthetic.quiet)


@dataclass
class Synthetic:
    """What was written, and what the audit must find: (key, version_id, region, kind)."""

    copies: list[Copy]
    rows: dict[str, int]
    expected: set[tuple[str, str, str, str]] = field(default_factory=set)
    quiet: dict[str, set[tuple[str, str]]] = field(default_factory=dict)


def key_of(obj: int) -> str:
    return f"audio/creator-{obj % 50000:05d}/track-{obj:09d}.wav"


def version_of(seed: int, obj: int, rank: int) -> str:
    return hashlib.md5(f"v{seed}:{obj}:{rank}".encode()).hexdigest()


_ROWS_SQL = """
WITH objects AS (
    SELECT o, CASE WHEN o % 10 = 0 THEN 2 ELSE 1 END AS versions, o % 50 = 3 AS deleted
    FROM range($objects) t(o)
),
rows AS (
    SELECT o, versions, deleted,
           unnest(range(versions + CASE WHEN deleted THEN 1 ELSE 0 END)) AS rank
    FROM objects
),
shaped AS (
    SELECT r.o, r.rank,
           r.rank = r.versions AS marker,
           r.rank = r.versions - 1 + CASE WHEN r.deleted THEN 1 ELSE 0 END AS latest,
           hash($seed, r.o, r.rank) AS h,
           c.drop_row, c.size_delta, c.e_tag AS e_tag_set, c.checksum AS checksum_set,
           c.status AS status_set, c.modified_ms, c.storage_class AS class_set
    FROM rows r LEFT JOIN changes c ON c.o = r.o AND c.rank = r.rank
)
SELECT
    $bucket AS bucket,
    'audio/creator-' || lpad(CAST(o % 50000 AS VARCHAR), 5, '0')
        || '/track-' || lpad(CAST(o AS VARCHAR), 9, '0') || '.wav' AS key,
    md5('v' || $seed || ':' || o || ':' || rank) AS version_id,
    latest AS is_latest,
    marker AS is_delete_marker,
    CASE WHEN marker THEN NULL ELSE 100000 + CAST(h % 50000000 AS BIGINT)
        + coalesce(size_delta, 0) END AS size,
    coalesce(modified_ms, $t0_ms + (o % 4320000) * 1000 + rank * 3600000) AS last_modified_date,
    CASE WHEN marker THEN NULL
         ELSE coalesce(e_tag_set, md5('e' || $seed || ':' || o || ':' || rank)) END AS e_tag,
    CASE WHEN marker THEN NULL WHEN class_set IS NOT NULL THEN class_set
         WHEN o % 97 = 5 THEN 'DEEP_ARCHIVE' WHEN o % 19 = 1 THEN 'GLACIER_IR'
         ELSE 'STANDARD' END AS storage_class,
    CASE WHEN marker THEN NULL ELSE 100000 + h % 50000000 > 16777216 END AS is_multipart_uploaded,
    coalesce(status_set, $status) AS replication_status,
    CASE WHEN marker THEN NULL ELSE 'SSE-KMS' END AS encryption_status,
    CAST(NULL AS BIGINT) AS object_lock_retain_until_date,
    CAST(NULL AS VARCHAR) AS object_lock_mode,
    CAST(NULL AS VARCHAR) AS object_lock_legal_hold_status,
    CASE WHEN marker THEN NULL ELSE 'ENABLED' END AS bucket_key_status,
    CASE WHEN marker THEN NULL
         ELSE coalesce(checksum_set, CASE WHEN o % 7 = 0 THEN 'SHA256' ELSE 'CRC64NVME' END)
         END AS checksum_algorithm
FROM shaped
WHERE drop_row IS NOT TRUE
"""

_CHANGE_FIELDS = (
    ("o", pa.int64()),
    ("rank", pa.int64()),
    ("drop_row", pa.bool_()),
    ("size_delta", pa.int64()),
    ("e_tag", pa.string()),
    ("checksum", pa.string()),
    ("status", pa.string()),
    ("modified_ms", pa.int64()),
    ("storage_class", pa.string()),
)


def _changes_table(changes: dict[tuple[int, int], dict]) -> pa.Table:
    columns: dict[str, list] = {name: [] for name, _ in _CHANGE_FIELDS}
    for (obj, rank), change in sorted(changes.items()):
        for name, _ in _CHANGE_FIELDS:
            columns[name].append({"o": obj, "rank": rank}.get(name, change.get(name)))
    return pa.table(columns, schema=pa.schema(_CHANGE_FIELDS))


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def synthesize(
    put: Put,
    copies: list[Copy],
    objects: int,
    *,
    config: str,
    rpo_s: int,
    noncurrent_days: int,
    injections: Injections | None = None,
    seed: int = 7,
    rows_per_file: int = 2_000_000,
    threads: int | None = None,
) -> Synthetic:
    """Write one inventory report per copy (``copies[0]`` is the source) and say what differs.

    ``objects`` objects give about 1.12 rows each. Injected rows are taken from objects with one
    version and no delete marker, spread over the whole key space.
    """
    inject = injections or Injections()
    source, replicas = copies[0], copies[1:]
    t0 = source.started - dt.timedelta(days=60)  # base rows: 10 to 60 days old, all settled
    changes: dict[str, dict[tuple[int, int], dict]] = {c.region: {} for c in copies}
    synthetic = Synthetic(copies, {})
    quiet = synthetic.quiet

    # Plain objects (one version, no marker, not archived) to change, spread over the key space.
    plain = (
        o
        for o in range(1, objects, max(1, objects // 997))
        if o % 10 and o % 50 != 3 and o % 97 != 5
    )

    def take(count: int) -> list[int]:
        chosen = []
        for _ in range(count):
            chosen.append(next(plain))
        return chosen

    def find(region: str, obj: int, rank: int, kind: str) -> None:
        synthetic.expected.add((key_of(obj), version_of(seed, obj, rank), region, kind))

    for replica in replicas:
        for obj in take(inject.missing):
            changes[replica.region][(obj, 0)] = {"drop_row": True}
            find(replica.region, obj, 0, "missing")
        for obj in take(inject.size_differs):
            changes[replica.region][(obj, 0)] = {"size_delta": 1}
            find(replica.region, obj, 0, "size-differs")
        for obj in take(inject.etag_differs):
            changes[replica.region][(obj, 0)] = {"e_tag": "0" * 32}
            find(replica.region, obj, 0, "etag-differs")
        for obj in take(inject.checksum_differs):
            changes[replica.region][(obj, 0)] = {"checksum": "SHA1"}
            find(replica.region, obj, 0, "checksum-differs")
        for obj in take(inject.class_differs):
            changes[replica.region][(obj, 0)] = {"storage_class": "STANDARD_IA"}
            quiet.setdefault("class-differs", set()).add((key_of(obj), replica.region))
    for obj in take(inject.only_in_replica):
        changes[source.region][(obj, 0)] = {"drop_row": True}
        for replica in replicas:
            find(replica.region, obj, 0, "only-in-replica")
    for obj in take(inject.failed):
        changes[source.region][(obj, 0)] = {"status": "FAILED"}
        find(source.region, obj, 0, "replication-failed")
        if replicas:
            changes[replicas[0].region][(obj, 0)] = {"drop_row": True}
            find(replicas[0].region, obj, 0, "missing")
    for obj in take(inject.pending):
        changes[source.region][(obj, 0)] = {"status": "PENDING"}
        find(source.region, obj, 0, "replication-pending")
        for replica in replicas:
            changes[replica.region][(obj, 0)] = {"drop_row": True}
            find(replica.region, obj, 0, "missing")
    archived = [o for o in range(5, objects, 97) if o % 10 and o % 50 != 3][: inject.archived]
    for obj in archived if replicas else ():
        changes[replicas[0].region][(obj, 0)] = {"drop_row": True}
        find(replicas[0].region, obj, 0, "missing")
        quiet.setdefault("archived", set()).add((key_of(obj), version_of(seed, obj, 0)))
    # Noncurrent for a day longer than lifecycle keeps it: expired in one replica already.
    expiring = [o for o in range(10, objects, 10) if o % 50 != 3][: inject.expiring]
    for obj in expiring:
        old = source.started - dt.timedelta(days=noncurrent_days + 30)
        superseded = source.started - dt.timedelta(days=noncurrent_days + 1)
        for copy in copies:
            changes[copy.region][(obj, 0)] = {"modified_ms": _ms(old)}
            changes[copy.region][(obj, 1)] = {"modified_ms": _ms(superseded)}
        if replicas:
            changes[replicas[-1].region][(obj, 0)]["drop_row"] = True
        quiet.setdefault("expiring", set()).add((key_of(obj), version_of(seed, obj, 0)))

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    recent_start = objects  # new objects past the end of the key space
    for copy in copies:
        is_source = copy is source
        con.register("changes", _changes_table(changes[copy.region]))
        params = {
            "objects": objects,
            "seed": seed,
            "bucket": copy.bucket,
            "t0_ms": _ms(t0),
            "status": "COMPLETED" if is_source else "REPLICA",
        }
        sql = _ROWS_SQL
        if is_source and inject.recent:
            # Written after the settled cutoff, before the source's report: in no replica yet.
            rpo = dt.timedelta(seconds=rpo_s)
            sql = _with_recent(
                sql, recent_start, inject.recent, source.started - rpo, source.started
            )
            for obj in range(recent_start, recent_start + inject.recent):
                quiet.setdefault("recent", set()).add((key_of(obj), version_of(seed, obj, 0)))
        reader = arrow_batches(con.sql(sql, params=params), 500_000)
        counted = _Counted(reader)
        write_report(put, copy.store, copy.bucket, config, copy.started, counted, rows_per_file)
        synthetic.rows[copy.region] = counted.rows
        con.unregister("changes")
    con.close()
    return synthetic


def arrow_batches(relation, rows: int):
    """Arrow record batches of a DuckDB relation (``con.sql``); DuckDB 2 renamed the method."""
    for name in ("to_arrow_reader", "fetch_record_batch"):
        if hasattr(relation, name):
            return getattr(relation, name)(rows)
    raise AttributeError("this DuckDB has no Arrow reader on relations")


def arrow_table(relation) -> pa.Table:
    """A DuckDB relation (``con.sql``) as one Arrow table; DuckDB 2 renamed the method."""
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        if hasattr(relation, name):
            return getattr(relation, name)()
    raise AttributeError("this DuckDB has no Arrow table on relations")


class _Counted:
    def __init__(self, reader):
        self.reader, self.rows = reader, 0

    def __iter__(self):
        for batch in self.reader:
            self.rows += batch.num_rows
            yield batch


def _with_recent(sql: str, start: int, count: int, after: dt.datetime, before: dt.datetime) -> str:
    """The source's rows plus ``count`` new single-version objects written in (after, before)."""
    step_ms = max(1, (_ms(before) - _ms(after)) // (count + 1))
    return f"""
SELECT * FROM ({sql}) base
UNION ALL
SELECT $bucket, 'audio/creator-' || lpad(CAST(o % 50000 AS VARCHAR), 5, '0')
        || '/track-' || lpad(CAST(o AS VARCHAR), 9, '0') || '.wav',
       md5('v' || $seed || ':' || o || ':0'), true, false, 1000 + o,
       {_ms(after)} + (o - {start} + 1) * {step_ms}, md5('e' || o), 'STANDARD', false, 'PENDING',
       'SSE-KMS', NULL, NULL, NULL, 'ENABLED', 'CRC64NVME'
FROM range({start}, {start + count}) t(o)
"""
