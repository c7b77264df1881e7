"""PostgreSQL operations the failover and failback runbooks perform through a DSN.

Connecting (never printing a password), the soft fence and its undoing, clearing fence state
that travelled to the standby through WAL, waiting for WAL positions, promotion, the epoch record
a promoted database carries, and the checks that the application can use it.

Only catalog changes travel through WAL: ``ALTER DATABASE ... CONNECTION LIMIT`` and per-database
or per-role settings (``pg_db_role_setting``) reach the standby; ``ALTER SYSTEM`` writes a file on
the primary's host and does not. So the soft fence sets both, and the promoted database clears
the catalog part.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from components.pg_host_agents import EPOCH_TABLE, SCHEMA
from scripts.common import DrctlError, ExitCode

CHECKSUM_MAX_ROWS = 50_000
FENCE_SETTINGS = ("default_transaction_read_only",)
# The WAL file name starts with the timeline; pg_control_checkpoint() only catches up after the
# first checkpoint on the new timeline.
TIMELINE_SQL = "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"


def redact(dsn: str | None) -> str:
    """host:port/dbname of a DSN: never the password, never the user's full conninfo."""
    if not dsn:
        return "(none)"
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable DSN)"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def connect(dsn: str, timeout: int = 5) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=timeout)


def try_connect(dsn: str | None, timeout: int = 3) -> psycopg.Connection | None:
    if not dsn:
        return None
    try:
        return connect(dsn, timeout)
    except psycopg.OperationalError:
        return None


@contextlib.contextmanager
def opened(dsn: str, what: str) -> Iterator[psycopg.Connection]:
    try:
        conn = connect(dsn)
    except psycopg.OperationalError as exc:
        raise DrctlError(
            f"cannot connect to the {what} at {redact(dsn)}: {first_line(exc)}",
            ExitCode.PRECONDITION_FAILED,
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def lsn_to_int(lsn: str | None) -> int | None:
    if not lsn:
        return None
    high, low = str(lsn).split("/")
    return (int(high, 16) << 32) + int(low, 16)


def split_password(dsn: str) -> tuple[str, dict[str, str]]:
    """A conninfo without its password, and the password as PGPASSWORD.

    Command lines are visible to every user of the host (ps); the environment is not.
    """
    parts = conninfo_to_dict(dsn)
    password = parts.pop("password", None)
    return make_conninfo(**parts), ({"PGPASSWORD": password} if password else {})


# -- the soft fence --------------------------------------------------------------------------------


def connectable_databases(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "select datname from pg_database where datallowconn and not datistemplate"
        ).fetchall()
    ]


def _default_read_only(conn: psycopg.Connection, backend: str, databases: list[str], on: bool):
    setting = (
        "set default_transaction_read_only = on" if on else "reset default_transaction_read_only"
    )
    if backend == "self-managed":
        conn.execute(f"alter system {setting}")
        conn.execute("select pg_reload_conf()")
        return
    # Hosted Postgres has no ALTER SYSTEM; per-database settings do the same for new sessions.
    # They are catalog state and reach the standby through WAL: clear_fence_state undoes them.
    for db in databases:
        conn.execute(sql.SQL("alter database {} " + setting).format(sql.Identifier(db)))


def fence(conn: psycopg.Connection, backend: str) -> dict[str, Any]:
    """Stop a reachable primary from taking writes while the standby catches up.

    New sessions default to read-only, non-superuser roles cannot connect, every other client
    session is terminated. A superuser could undo it: this is the soft layer; the lease and the
    host's fence guard are what hold (scripts/runbooks/fencing.py). Returns what to restore.
    """
    conn.execute("set default_transaction_read_only = off")  # our own session keeps writing
    databases = connectable_databases(conn)
    limits = dict(
        conn.execute(
            "select datname, datconnlimit from pg_database where datname = any(%s)", [databases]
        ).fetchall()
    )
    _default_read_only(conn, backend, databases, on=True)
    for db in databases:
        conn.execute(sql.SQL("alter database {} connection limit 0").format(sql.Identifier(db)))
    terminated = conn.execute(
        "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity "
        "where backend_type = 'client backend' and pid <> pg_backend_pid()"
    ).fetchone()[0]
    # A checkpoint inside the WAL the standby still receives: pg_rewind can later find the last
    # common checkpoint in the old primary's own pg_wal, without an archive.
    conn.execute("checkpoint")
    final = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
    return {
        "databases": databases,
        "connection_limits_before": limits,
        "terminated_sessions": terminated,
        "final_lsn": final,
    }


def unfence(conn: psycopg.Connection, backend: str, limits: Mapping[str, int]) -> None:
    """Undo ``fence`` on a primary that stays primary (a refused switchover)."""
    conn.execute("set default_transaction_read_only = off")
    databases = connectable_databases(conn)
    _default_read_only(conn, backend, databases, on=False)
    for db in databases:
        limit = int(limits.get(db, -1))
        conn.execute(
            sql.SQL("alter database {} connection limit {}").format(
                sql.Identifier(db), sql.Literal(limit)
            )
        )


def clear_fence_state(conn: psycopg.Connection, limits: Mapping[str, int]) -> dict[str, Any]:
    """On the promoted database: undo the fence state that reached it through WAL.

    Without this the application gets "too many connections" (CONNECTION LIMIT 0) or read-only
    transactions on the database it just failed over to. ``limits``: the connection limits the
    fence recorded before it set them to 0; a database at 0 with no record goes back to -1.
    """
    cleared: list[str] = []
    rows = conn.execute(
        "select d.datname, r.rolname, s.setconfig from pg_db_role_setting s "
        "left join pg_database d on d.oid = s.setdatabase "
        "left join pg_roles r on r.oid = s.setrole"
    ).fetchall()
    for datname, rolname, config in rows:
        if not any(c.split("=", 1)[0] in FENCE_SETTINGS for c in config or []):
            continue
        for setting in FENCE_SETTINGS:
            if datname and rolname:
                stmt = sql.SQL("alter role {} in database {} reset {}").format(
                    sql.Identifier(rolname), sql.Identifier(datname), sql.Identifier(setting)
                )
            elif rolname:
                stmt = sql.SQL("alter role {} reset {}").format(
                    sql.Identifier(rolname), sql.Identifier(setting)
                )
            else:
                stmt = sql.SQL("alter database {} reset {}").format(
                    sql.Identifier(datname), sql.Identifier(setting)
                )
            conn.execute(stmt)
        cleared.append(f"{setting} on " + "/".join(filter(None, (datname, rolname))))
    locked = conn.execute(
        "select datname from pg_database where datconnlimit = 0 and datallowconn"
    ).fetchall()
    for (datname,) in locked:
        limit = int(limits.get(datname, -1))
        conn.execute(
            sql.SQL("alter database {} connection limit {}").format(
                sql.Identifier(datname), sql.Literal(limit if limit != 0 else -1)
            )
        )
        cleared.append(f"connection limit 0 on {datname} -> {limit if limit != 0 else -1}")
    return {"cleared": cleared}


# -- WAL positions, streaming, promotion -----------------------------------------------------------


def wait_for_lsn(
    standby: psycopg.Connection,
    target_lsn: str,
    timeout: float,
    *,
    replayed: bool = True,
    logical: bool = False,
) -> tuple[bool, str | None]:
    """Wait until the standby has replayed (or only received) ``target_lsn``.

    Returns (reached, the standby's position at the end). Logical subscribers report the
    position their apply worker confirmed.
    """
    target = lsn_to_int(target_lsn) or 0
    if logical:
        query = "select min(latest_end_lsn)::text from pg_stat_subscription where relid is null"
    elif replayed:
        query = "select pg_last_wal_replay_lsn()::text"
    else:
        query = "select pg_last_wal_receive_lsn()::text"
    deadline = time.monotonic() + timeout
    while True:
        got = standby.execute(query).fetchone()[0]
        if (lsn_to_int(got) or 0) >= target:
            return True, got
        if time.monotonic() > deadline:
            return False, got
        time.sleep(0.05)


def stop_streaming(standby: psycopg.Connection) -> None:
    """Cut the standby off from its upstream; after promotion it must follow no one."""
    standby.execute("alter system set primary_conninfo = ''")
    standby.execute("select pg_reload_conf()")


def promote_postgres(conn: psycopg.Connection, timeout_s: int = 60) -> dict[str, Any]:
    if conn.execute("select pg_is_in_recovery()").fetchone()[0]:
        if not conn.execute("select pg_promote(true, %s)", [timeout_s]).fetchone()[0]:
            raise DrctlError(f"pg_promote() did not finish within {timeout_s}s")
        already = False
    else:
        already = True
    # A promoted server writes its new timeline into pg_control only at its first checkpoint;
    # until then pgBackRest (re-arm) and pg_rewind (failback) see timelines that disagree.
    conn.execute("checkpoint")
    timeline = conn.execute(TIMELINE_SQL).fetchone()[0]
    return {"already_primary": already, "timeline": timeline}


def record_epoch(conn: psycopg.Connection, epoch: int, run_id: str, holder: str) -> None:
    """Stamp the promoted database with the lease epoch and the run that promoted it."""
    conn.execute(f"create schema if not exists {SCHEMA}")
    conn.execute(
        f"create table if not exists {EPOCH_TABLE} (epoch int not null, run_id text not null, "
        "holder text not null, promoted_at timestamptz not null default now())"
    )
    conn.execute(
        f"insert into {EPOCH_TABLE} (epoch, run_id, holder) values (%s, %s, %s)",
        [epoch, run_id, holder],
    )


def promoted_by(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The newest epoch record of a (promoted) database, or None when it has none."""
    exists = conn.execute("select to_regclass(%s) is not null", [EPOCH_TABLE]).fetchone()[0]
    if not exists:
        return None
    row = conn.execute(
        f"select epoch, run_id, holder, promoted_at from {EPOCH_TABLE} "
        "order by promoted_at desc limit 1"
    ).fetchone()
    if row is None:
        return None
    return {"epoch": row[0], "run_id": row[1], "holder": row[2], "promoted_at": str(row[3])}


def sync_sequences(conn: psycopg.Connection) -> list[str]:
    """Logical replication copies rows, not sequences: move each past its column's maximum."""
    rows = conn.execute(
        """
        select s.oid::regclass::text, t.oid::regclass::text, a.attname
        from pg_class s
        join pg_depend d on d.objid = s.oid and d.deptype in ('a', 'i')
        join pg_class t on t.oid = d.refobjid
        join pg_attribute a on a.attrelid = t.oid and a.attnum = d.refobjsubid
        where s.relkind = 'S'
        """
    ).fetchall()
    moved = []
    for seq, table, column in rows:
        conn.execute(
            sql.SQL(
                "select setval({seq}, greatest((select coalesce(max({col}), 0) from {tbl}), 1))"
            ).format(seq=sql.Literal(seq), col=sql.Identifier(column), tbl=sql.SQL(table))
        )
        moved.append(seq)
    return moved


# -- validation ------------------------------------------------------------------------------------


def sample_tables(conn: psycopg.Connection, requested: Sequence[str]) -> list[str]:
    if requested:
        return list(requested)
    rows = conn.execute(
        "select schemaname || '.' || relname from pg_stat_user_tables "
        f"where schemaname <> '{SCHEMA}' order by schemaname, relname limit 20"
    ).fetchall()
    return [r[0] for r in rows]


def table_fingerprint(conn: psycopg.Connection, table: str) -> dict[str, Any]:
    """Row count, plus an order-independent checksum when the table is small enough."""
    name = sql.Identifier(*table.split(".", 1))
    count = conn.execute(sql.SQL("select count(*) from {}").format(name)).fetchone()[0]
    digest = None
    if count <= CHECKSUM_MAX_ROWS:
        digest = conn.execute(
            sql.SQL(
                "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
            ).format(name)
        ).fetchone()[0]
    return {"rows": count, "md5": digest}


def probe_app_write(dsn: str, what: str = "promoted database") -> dict[str, Any]:
    """Connect and commit a write as the application's own role (never a superuser).

    Superusers ignore CONNECTION LIMIT and can override read-only defaults, so a superuser's
    write proves nothing about whether the application can work. Raises with the database's own
    words when the role cannot connect or cannot write.
    """
    try:
        conn = connect(dsn)
    except psycopg.OperationalError as exc:
        raise DrctlError(
            f"the application role cannot connect to the {what} at {redact(dsn)}: "
            f"{first_line(exc)}",
            ExitCode.STEP_FAILED,
        ) from None
    with conn:
        role, is_super = conn.execute(
            "select current_user, rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
        if is_super:
            raise DrctlError(
                f"--app-dsn connects as {role}, a superuser: superusers ignore the connection "
                "limits and read-only defaults a fence leaves behind, so their write proves "
                "nothing. Give the application's own role",
                ExitCode.INVALID_CONFIG,
            )
        try:
            with conn.transaction():
                conn.execute("create temp table drctl_app_write_probe (x int)")
                conn.execute("insert into drctl_app_write_probe values (1)")
        except psycopg.Error as exc:
            raise DrctlError(
                f"the application role {role} cannot write on the {what}: {first_line(exc)}",
                ExitCode.STEP_FAILED,
            ) from None
    return {"role": role, "superuser": False, "committed_write": True}
