-- The local engine's pre-filter (DuckDB only): which keys can hold a discrepancy at all.
--
-- audit.sql groups every version of every copy by (key, version_id): exact, and what Athena runs,
-- but a hash aggregate over tens of millions of long strings is the slowest thing DuckDB can do
-- on two cores. Almost every key is identical in every copy, so the local engine first splits the
-- key space into buckets (by a hash of the key, so all versions of a key share a bucket) and
-- compares one digest per bucket and copy: the number of rows and the sum of a 64-bit hash of
-- every compared field. Only the rows of buckets where a copy's digest differs, a copy has no
-- rows, or the source holds a FAILED or PENDING object are handed to audit.sql, which then finds
-- exactly what it finds over all rows. The only way to miss a discrepancy is for two different
-- bucket contents to have equal row counts and equal sums of 64-bit hashes in every copy.
-- {buckets}, {copies}, {suspects} and {settled_before} are values the engine writes in
-- (sql.local_prefilter): integers, and a TIMESTAMP literal.

-- name: digests
-- One row per bucket and copy, in one pass over every report: the digest, and the copy statistics
-- (what audit.sql's copy_stats gives, summed per copy by digest_stats below).
SELECT
    key_hash % {buckets} AS bucket,
    region,
    count(*) AS versions,
    sum(hash(key_hash, version_id, is_delete_marker, size, e_tag, checksum_algorithm)) AS digest,
    max(
        CASE WHEN is_source AND replication_status IN ('FAILED', 'PENDING') THEN 1 ELSE 0 END
    ) AS watched,
    sum(CASE WHEN is_delete_marker THEN 1 ELSE 0 END) AS delete_markers,
    sum(CASE WHEN last_modified_date > {settled_before} THEN 1 ELSE 0 END) AS unsettled,
    sum(coalesce(size, 0)) AS bytes
FROM (SELECT hash(key) AS key_hash, * FROM reports)  -- each key is hashed once
GROUP BY ALL;

-- name: digest_stats
SELECT region, sum(versions), sum(delete_markers), sum(unsettled), sum(bytes)
FROM digests
GROUP BY region
ORDER BY region;

-- name: suspect_buckets
SELECT bucket
FROM digests
GROUP BY bucket
HAVING
    count(*) <> {copies}
    OR count(DISTINCT digest) > 1
    OR count(DISTINCT versions) > 1
    OR max(watched) = 1;

-- name: narrowed
-- {suspects}: the suspect buckets as constants, so DuckDB filters each row as it scans (a join, or
-- a prepared-statement parameter, would make it aggregate or probe every row first).
SELECT *
FROM reports
WHERE hash(key) % {buckets} IN ({suspects});
