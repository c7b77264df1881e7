-- The replication audit of one dataset: the only SQL of `drctl audit replication`.
--
-- Written in the SQL that both engines accept: DuckDB executes it locally over the downloaded
-- Parquet reports, Athena (engine v3, Trino) runs it over the Glue tables. Each engine supplies the
-- same three relations, as a view or as leading WITH clauses (scripts/checks/audit/sql.py):
--
--   inventory(region, is_source, key, version_id, is_latest, is_delete_marker, size,
--             last_modified_date, e_tag, storage_class, replication_status, checksum_algorithm)
--       every row of one report per copy; is_source marks the copy replication starts from;
--   copies(region, is_source)     every copy the dataset must have, reported or not;
--   params(copies, settled_before, pending_before, expiring_before)
--       settled_before: the oldest report's start minus the class RPO. A version written before
--         it must be in every copy if replication met the RPO; newer ones are not compared yet;
--       pending_before: the source report's start minus the RPO. PENDING that long is overdue;
--       expiring_before: when a version that stopped being current was due to expire under the
--         copies' lifecycle, less two days of slack: each copy expires it on its own clock.
--
-- Replicas keep the source's version IDs, so copies are compared version by version on
-- (key, version_id): presence, delete marker, size, ETag and checksum algorithm. S3 Inventory
-- carries no checksum value, only its algorithm, so the ETag stands for the content. The S3 User
-- Guide ("What does Amazon S3 replicate?") warns that a replica's ETag differs when an unencrypted
-- source is encrypted at the destination; every copy here encrypts by default, so a different ETag
-- means different content, or an object written before default encryption was on.

-- name: findings
-- One row per discrepancy: a version missing, extra or different in a copy, or overdue in the
-- source's replication status. kind 'expiring' rows are reported apart: not discrepancies.
WITH
versions AS (
    SELECT
        key,
        version_id,
        count(*) AS holders,
        max(CASE WHEN is_source THEN 1 ELSE 0 END) AS in_source,
        min(last_modified_date) AS first_modified,
        min(size) AS min_size,
        max(size) AS max_size,
        min(e_tag) AS min_tag,
        max(e_tag) AS max_tag,
        min(coalesce(checksum_algorithm, '-')) AS min_sum,
        max(coalesce(checksum_algorithm, '-')) AS max_sum,
        min(CASE WHEN is_delete_marker THEN 1 ELSE 0 END) AS min_marker,
        max(CASE WHEN is_delete_marker THEN 1 ELSE 0 END) AS max_marker,
        max(CASE WHEN is_source THEN replication_status END) AS source_status,
        max(CASE WHEN is_source THEN last_modified_date END) AS source_modified
    FROM inventory
    GROUP BY key, version_id
),
judged AS (
    SELECT
        v.key,
        v.version_id,
        v.in_source,
        v.first_modified,
        v.source_status,
        v.first_modified <= p.settled_before
        AND (
            v.holders <> p.copies
            OR v.in_source = 0
            OR v.min_size <> v.max_size
            OR v.min_tag <> v.max_tag
            OR v.min_sum <> v.max_sum
            OR v.min_marker <> v.max_marker
        ) AS differs,
        coalesce(v.source_status = 'FAILED', false) AS failed,
        coalesce(v.source_status = 'PENDING' AND v.source_modified <= p.pending_before, false)
            AS overdue
    FROM versions AS v
    CROSS JOIN params AS p
),
flagged AS (
    SELECT * FROM judged WHERE differs OR failed OR overdue
),
related AS (
    -- Every row of the flagged versions' keys, in every copy: one more pass over the reports.
    SELECT
        i.region,
        i.is_source,
        i.key,
        i.version_id,
        i.is_delete_marker,
        i.size,
        i.e_tag,
        i.checksum_algorithm,
        i.storage_class,
        i.last_modified_date
    FROM inventory AS i
    WHERE i.key IN (SELECT key FROM flagged)
),
held AS (
    SELECT r.*
    FROM related AS r
    JOIN flagged AS f ON r.key = f.key AND r.version_id = f.version_id
),
superseded AS (
    -- When each flagged version stopped being current: the next version of its key, anywhere.
    SELECT f.key, f.version_id, min(r.last_modified_date) AS superseded_at
    FROM flagged AS f
    JOIN related AS r ON r.key = f.key AND r.last_modified_date > f.first_modified
    GROUP BY f.key, f.version_id
),
per_copy AS (
    SELECT
        f.key,
        f.version_id,
        c.region,
        CASE
            WHEN h.key IS NULL AND f.in_source = 1 THEN 'missing'
            WHEN h.key IS NOT NULL AND f.in_source = 0 THEN 'only-in-replica'
            WHEN h.key IS NULL THEN NULL
            WHEN h.is_delete_marker <> s.is_delete_marker THEN 'delete-marker-differs'
            WHEN h.size <> s.size THEN 'size-differs'
            WHEN h.e_tag <> s.e_tag THEN 'etag-differs'
            WHEN coalesce(h.checksum_algorithm, '-') <> coalesce(s.checksum_algorithm, '-')
                THEN 'checksum-differs'
        END AS kind,
        coalesce(s.size, h.size) AS size,
        coalesce(s.storage_class, h.storage_class) AS storage_class,
        coalesce(s.is_delete_marker, h.is_delete_marker) AS is_delete_marker,
        f.source_status,
        f.first_modified,
        u.superseded_at
    FROM flagged AS f
    CROSS JOIN copies AS c
    LEFT JOIN held AS h
        ON h.region = c.region AND h.key = f.key AND h.version_id = f.version_id
    LEFT JOIN held AS s
        ON s.is_source AND s.key = f.key AND s.version_id = f.version_id
    LEFT JOIN superseded AS u ON u.key = f.key AND u.version_id = f.version_id
    WHERE f.differs
)
SELECT
    r.key,
    r.version_id,
    r.region,
    CASE
        WHEN r.kind IN ('missing', 'only-in-replica') AND r.superseded_at <= p.expiring_before
            THEN 'expiring'
        ELSE r.kind
    END AS kind,
    r.size,
    r.storage_class,
    r.is_delete_marker,
    r.source_status,
    r.first_modified AS last_modified
FROM per_copy AS r
CROSS JOIN params AS p
WHERE r.kind IS NOT NULL
UNION ALL
SELECT
    f.key,
    f.version_id,
    c.region,
    CASE WHEN f.failed THEN 'replication-failed' ELSE 'replication-pending' END AS kind,
    s.size,
    s.storage_class,
    s.is_delete_marker,
    f.source_status,
    f.first_modified AS last_modified
FROM flagged AS f
JOIN copies AS c ON c.is_source
LEFT JOIN held AS s ON s.is_source AND s.key = f.key AND s.version_id = f.version_id
WHERE f.failed OR f.overdue
ORDER BY kind, region, key, version_id;

-- name: copy_stats
-- What each copy's report holds: versions, delete markers, bytes, and versions too new to compare.
SELECT
    i.region,
    count(*) AS versions,
    sum(CASE WHEN i.is_delete_marker THEN 1 ELSE 0 END) AS delete_markers,
    sum(CASE WHEN i.last_modified_date > p.settled_before THEN 1 ELSE 0 END) AS unsettled,
    sum(coalesce(i.size, 0)) AS bytes
FROM inventory AS i
CROSS JOIN params AS p
GROUP BY i.region
ORDER BY i.region;
