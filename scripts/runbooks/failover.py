"""`drctl failover` and `drctl failback`: the spec's database recovery procedure as runbooks.

failover, in the spec's order (Assess, Isolate, Restore/promote, Validate, Resume):

1. **assess**: the standby's lag against the critical RPO, and DR-region backups present. Runs
   in a dry run too. Lag above the RPO, or no DR backup, is refused unless --accept-data-loss.
2. **isolate**: fence the primary if it still answers (new sessions read-only, app roles locked
   out, sessions terminated), wait for the standby to receive the fenced primary's last WAL,
   then stop replication so nothing the old primary does later reaches the standby.
3. **promote**: pg_promote() (self-managed), PromoteReadReplica (rds), or disable the
   subscription and move sequences past the copied rows (supabase).
4. **switch-config**: promote the Secrets Manager replicas in the DR region
   (StopReplicationToReplica) and point the SSM runtime parameters at the DR region.
5. **switch-dns**: the PRIMARY failover record now answers with the DR endpoint.
6. **validate**: the new primary accepts writes, sample tables match the fenced primary (row
   counts and checksums), DNS answers with the DR endpoint.

failback re-seeds the old primary from the promoted DR database (pg_rewind, or pg_basebackup
when rewinding is impossible), lets it catch up as a standby, then runs the same fence, promote,
switch steps the other way, and finally re-seeds the DR database as a standby again. Same safety
rules: dry run by default, --yes without a TTY, refusal beyond the RPO unless --accept-data-loss.

Every AWS call goes through an injected session factory (region -> boto3 Session), every
database through a DSN, so the tests run this exact code against moto and local PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import typer
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from components.objectives import PROJECT, format_duration, parse_objectives
from components.pgbackrest_config import DEFAULT_STANZA, REPO_S3_PATH
from components.secrets_backup import namespace_of, parameter_name
from scripts.common import DrctlError, ExitCode, progress
from scripts.local.evaluate import ROOT, read_stack_config
from scripts.runbooks.engine import Runbook, RunContext, RunReport, Step, run_command

SessionFactory = Callable[[str], Any]
ROUTE53_REGION = "us-east-1"
ACTIVE_REGION_KEY = "runtime/active-region"
DATABASE_HOST_KEY = "runtime/database-host"
FENCE_SETTINGS = ("default_transaction_read_only",)
REPLICATION_SETTINGS = ("primary_conninfo", "primary_slot_name")
CHECKSUM_MAX_ROWS = 50_000
FAILBACK_SLOT = "failback_standby"
# The WAL file name starts with the timeline; pg_control_checkpoint() only catches up after the
# first checkpoint on the new timeline.
TIMELINE_SQL = "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"


def default_sessions(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


class Aws:
    """boto3 clients per (service, region), from an injected session factory."""

    def __init__(
        self, sessions: SessionFactory = default_sessions, endpoint_url: str | None = None
    ):
        self._sessions = sessions
        self._endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            extra = {"endpoint_url": self._endpoint_url} if self._endpoint_url else {}
            session = self._sessions(region)
            self._clients[key] = session.client(service, region_name=region, **extra)
        return self._clients[key]


# ---------------------------------------------------------------------------------------------
# What the runbooks act on


@dataclass(frozen=True)
class FailoverPlan:
    """Everything failover needs to know, from the stack file and the stack's outputs."""

    stack: str
    backend: str
    primary_region: str
    dr_region: str
    rpo_s: int
    rto_s: int
    pitr_window_days: int
    namespace: str
    zone_id: str
    record_name: str
    health_check_id: str
    primary_endpoint: str
    standby_endpoint: str
    port: int = 5432
    replica_identifier: str | None = None
    source_arn: str | None = None
    replication_slot: str | None = None
    dr_backup: Mapping[str, Any] | None = None
    mode: str = "warm-standby"
    full_instance_class: str | None = None

    @property
    def active_region_parameter(self) -> str:
        return parameter_name(self.namespace, ACTIVE_REGION_KEY)

    @property
    def database_host_parameter(self) -> str:
        return parameter_name(self.namespace, DATABASE_HOST_KEY)


def load_plan(stack: str, outputs: Mapping[str, Any], root: Path = ROOT) -> FailoverPlan:
    """The plan of ``stack``: objectives from Pulumi.<stack>.yaml, names from its outputs."""
    try:
        raw = read_stack_config(stack, root)
    except FileNotFoundError as exc:
        raise DrctlError(str(exc), ExitCode.INVALID_CONFIG) from None
    objectives = parse_objectives({k: v for k, v in raw.items() if k.startswith(PROJECT)}, stack)
    standby = outputs.get("drStandby")
    if not standby:
        raise DrctlError(
            f"the outputs of stack {stack!r} have no 'drStandby'; deploy the DrStandby "
            "component first (pulumi up), or pass the right --outputs file",
            ExitCode.PRECONDITION_FAILED,
        )
    database = outputs.get("database") or {}
    critical = objectives.of("critical")
    backend = standby.get("backend", objectives.db_backend)
    dr = standby["drRegion"]
    dr_backup: dict[str, Any] | None = None
    if backend == "self-managed" and (database.get("repoBuckets") or {}).get("repo2"):
        prefix = f"{REPO_S3_PATH.strip('/')}/backup/{DEFAULT_STANZA}/"
        dr_backup = {"kind": "s3", "bucket": database["repoBuckets"]["repo2"], "prefix": prefix}
    elif backend == "supabase" and (database.get("dumpBuckets") or {}).get(dr):
        dr_backup = {"kind": "s3", "bucket": database["dumpBuckets"][dr], "prefix": ""}
    elif backend == "rds" and database.get("rdsInstanceArn"):
        dr_backup = {"kind": "rds", "source_arn": database["rdsInstanceArn"]}
    return FailoverPlan(
        stack=stack,
        backend=backend,
        primary_region=standby["primaryRegion"],
        dr_region=dr,
        rpo_s=critical.rpo_s,
        rto_s=critical.rto_s,
        pitr_window_days=objectives.pitr_window_days,
        namespace=namespace_of(objectives),
        zone_id=standby["zoneId"],
        record_name=standby["recordName"],
        health_check_id=standby["healthCheckId"],
        primary_endpoint=standby["primaryEndpoint"],
        standby_endpoint=standby["standbyEndpoint"],
        port=int(standby.get("port") or 5432),
        replica_identifier=standby.get("replicaIdentifier"),
        source_arn=database.get("rdsInstanceArn"),
        replication_slot=database.get("replicationSlotName"),
        dr_backup=dr_backup,
        mode=standby.get("mode", "warm-standby"),
        full_instance_class=standby.get("fullInstanceClass"),
    )


def read_outputs(stack: str, outputs_file: Path | None, root: Path = ROOT) -> dict[str, Any]:
    """Stack outputs from a file (`pulumi stack output --json`) or the Automation API."""
    if outputs_file is not None:
        try:
            return json.loads(Path(outputs_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DrctlError(
                f"--outputs {outputs_file}: cannot read stack outputs ({exc})",
                ExitCode.INVALID_CONFIG,
            ) from None
    try:
        from pulumi import automation as auto

        selected = auto.select_stack(stack_name=stack, work_dir=str(root))
        return {name: out.value for name, out in selected.outputs().items()}
    except Exception as exc:  # the CLI is missing, not logged in, or the stack is unknown
        raise DrctlError(
            f"cannot read the outputs of stack {stack!r} through the Pulumi CLI "
            f"({type(exc).__name__}); pass --outputs FILE, written by "
            f"`pulumi stack output --json --stack {stack} > FILE`",
            ExitCode.PRECONDITION_FAILED,
        ) from None


# ---------------------------------------------------------------------------------------------
# Databases


def redact(dsn: str) -> str:
    """host:port/dbname of a DSN: never the password, never the user's full conninfo."""
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DrctlError(
            f"cannot connect to the {what} at {redact(dsn)}: {first}",
            ExitCode.PRECONDITION_FAILED,
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def lsn_to_int(lsn: str | None) -> int | None:
    if not lsn:
        return None
    high, low = str(lsn).split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class LagReading:
    """How much the standby could lose if promoted now.

    lag_s is None when it cannot be known (no commit replayed yet and the primary is gone).
    """

    lag_s: float | None
    lag_bytes: int | None
    primary_reachable: bool
    method: str

    def to_record(self) -> dict[str, Any]:
        return {
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
            "lag_bytes": self.lag_bytes,
            "primary_reachable": self.primary_reachable,
            "method": self.method,
        }


def physical_lag(standby: psycopg.Connection, primary_dsn: str | None) -> LagReading:
    """Lag of a streaming standby.

    Primary reachable: WAL the standby has not received (bytes) and, if any, the age of the
    standby's newest replayed commit on the primary's clock. Primary gone: the age of the newest
    replayed commit, an upper bound (it also counts the time since the primary stopped writing).
    """
    received, replay_ts, standby_now = standby.execute(
        "select pg_last_wal_receive_lsn()::text, pg_last_xact_replay_timestamp(), now()"
    ).fetchone()
    primary = try_connect(primary_dsn)
    if primary is not None:
        with primary:
            current, primary_now = primary.execute(
                "select pg_current_wal_lsn()::text, now()"
            ).fetchone()
        behind = max(0, (lsn_to_int(current) or 0) - (lsn_to_int(received) or 0))
        if behind == 0:
            return LagReading(0.0, 0, True, "primary reachable: standby has received all WAL")
        lag = None if replay_ts is None else max(0.0, (primary_now - replay_ts).total_seconds())
        return LagReading(lag, behind, True, "primary reachable: WAL not yet received")
    if replay_ts is None:
        return LagReading(None, None, False, "primary unreachable; no replayed commit to date")
    lag = max(0.0, (standby_now - replay_ts).total_seconds())
    return LagReading(
        lag, None, False, "primary unreachable: age of the newest replayed commit (upper bound)"
    )


def logical_lag(subscriber: psycopg.Connection, primary_dsn: str | None) -> LagReading:
    """Lag of a logical subscriber (supabase backend), from pg_stat_subscription."""
    rows = subscriber.execute(
        "select latest_end_lsn::text, latest_end_time, now() from pg_stat_subscription "
        "where relid is null"
    ).fetchall()
    if not rows:
        return LagReading(None, None, False, "no active subscription worker on the DR database")
    received = min((lsn_to_int(r[0]) or 0) for r in rows)
    end_time = min((r[1] for r in rows if r[1] is not None), default=None)
    sub_now = rows[0][2]
    primary = try_connect(primary_dsn)
    if primary is not None:
        with primary:
            current = lsn_to_int(primary.execute("select pg_current_wal_lsn()::text").fetchone()[0])
        behind = max(0, (current or 0) - received)
        if behind == 0:
            return LagReading(0.0, 0, True, "primary reachable: subscription has all WAL")
        lag = None if end_time is None else max(0.0, (sub_now - end_time).total_seconds())
        return LagReading(lag, behind, True, "primary reachable: WAL not yet applied")
    if end_time is None:
        return LagReading(None, None, False, "primary unreachable; subscription never reported")
    lag = max(0.0, (sub_now - end_time).total_seconds())
    return LagReading(lag, None, False, "primary unreachable: age of the last applied position")


def check_lag(reading: LagReading, rpo_s: int, accept_data_loss: bool) -> bool:
    """True when within the RPO; raises REFUSED beyond it unless the loss is accepted."""
    within = reading.lag_s is not None and reading.lag_s <= rpo_s
    if within:
        return True
    shown = "unknown" if reading.lag_s is None else f"{reading.lag_s:.1f}s"
    if not accept_data_loss:
        raise DrctlError(
            f"replica lag {shown} ({reading.method}) exceeds the critical RPO of "
            f"{format_duration(rpo_s)}; promoting now could lose more than the objective allows. "
            "Wait for the standby to catch up, or rerun with --accept-data-loss",
            ExitCode.REFUSED,
        )
    progress.print(f"    [yellow]accepted data loss:[/] lag {shown} > RPO {format_duration(rpo_s)}")
    return False


def _connectable_databases(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "select datname from pg_database where datallowconn and not datistemplate"
        ).fetchall()
    ]


def _default_read_only(
    conn: psycopg.Connection, backend: str, databases: list[str], on: bool
) -> None:
    setting = (
        "set default_transaction_read_only = on" if on else "reset default_transaction_read_only"
    )
    if backend == "self-managed":
        conn.execute(f"alter system {setting}")
        conn.execute("select pg_reload_conf()")
        return
    # Hosted Postgres has no ALTER SYSTEM; per-database settings do the same for new sessions.
    for db in databases:
        conn.execute(sql.SQL("alter database {} " + setting).format(sql.Identifier(db)))


def _connection_limit(conn: psycopg.Connection, databases: list[str], limit: int) -> None:
    for db in databases:
        conn.execute(
            sql.SQL("alter database {} connection limit {}").format(
                sql.Identifier(db), sql.Literal(limit)
            )
        )


def fence(conn: psycopg.Connection, backend: str) -> dict[str, Any]:
    """Stop a primary from taking writes, without stopping it (it still serves reads).

    New sessions default to read-only; non-superuser app roles cannot connect; every other
    client session is terminated. A superuser could still override the default, which is why
    the DNS switch follows and the old host must not be put back without failback.
    """
    # Our own session keeps writing the fence after the reload makes new sessions read-only.
    conn.execute("set default_transaction_read_only = off")
    databases = _connectable_databases(conn)
    _default_read_only(conn, backend, databases, on=True)
    _connection_limit(conn, databases, 0)
    terminated = conn.execute(
        "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity "
        "where backend_type = 'client backend' and pid <> pg_backend_pid()"
    ).fetchone()[0]
    # A checkpoint inside the WAL the standby still receives: pg_rewind can later find the last
    # common checkpoint in the old primary's own pg_wal, without an archive.
    conn.execute("checkpoint")
    final = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
    return {"databases": databases, "terminated_sessions": terminated, "final_lsn": final}


def unfence(conn: psycopg.Connection, backend: str) -> None:
    conn.execute("set default_transaction_read_only = off")
    databases = _connectable_databases(conn)
    _default_read_only(conn, backend, databases, on=False)
    _connection_limit(conn, databases, -1)


def wait_received(
    standby: psycopg.Connection, target_lsn: str, timeout: float, logical: bool = False
) -> bool:
    """Wait until the standby (or subscriber) has received ``target_lsn``; False on timeout."""
    target = lsn_to_int(target_lsn) or 0
    query = (
        "select min(latest_end_lsn)::text from pg_stat_subscription where relid is null"
        if logical
        else "select pg_last_wal_receive_lsn()::text"
    )
    deadline = time.monotonic() + timeout
    while True:
        got = lsn_to_int(standby.execute(query).fetchone()[0]) or 0
        if got >= target:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop_streaming(standby: psycopg.Connection) -> None:
    """Cut the standby off from its upstream; after promotion it must follow no one."""
    standby.execute("alter system set primary_conninfo = ''")
    standby.execute("select pg_reload_conf()")


def promote_postgres(conn: psycopg.Connection) -> dict[str, Any]:
    if conn.execute("select pg_is_in_recovery()").fetchone()[0]:
        promoted = conn.execute("select pg_promote(true, 60)").fetchone()[0]
        if not promoted:
            raise DrctlError("pg_promote() did not finish within 60s", ExitCode.STEP_FAILED)
        already = False
    else:
        already = True
    timeline = conn.execute(TIMELINE_SQL).fetchone()[0]
    return {"already_primary": already, "timeline": timeline}


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
            ).format(
                seq=sql.Literal(seq),
                col=sql.Identifier(column),
                tbl=sql.SQL(table),
            )
        )
        moved.append(seq)
    return moved


def sample_tables(conn: psycopg.Connection, requested: Sequence[str]) -> list[str]:
    if requested:
        return list(requested)
    rows = conn.execute(
        "select schemaname || '.' || relname from pg_stat_user_tables "
        "order by schemaname, relname limit 20"
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


def probe_writable(conn: psycopg.Connection) -> None:
    """A write that leaves nothing behind: proves the database accepts writes."""
    with conn.transaction(force_rollback=True):
        conn.execute("create temp table drctl_write_probe (x int)")
        conn.execute("insert into drctl_write_probe values (1)")


# ---------------------------------------------------------------------------------------------
# AWS steps


def check_dr_backups(plan: FailoverPlan, aws: Aws) -> dict[str, Any]:
    """Is there a recovery point in the DR region, should the promoted database fail too?"""
    spec = plan.dr_backup
    if not spec:
        return {"present": False, "where": "no DR backup location in the stack outputs"}
    if spec["kind"] == "s3":
        s3 = aws.client("s3", plan.dr_region)
        listing = s3.list_objects_v2(Bucket=spec["bucket"], Prefix=spec["prefix"], MaxKeys=100)
        objects = listing.get("Contents") or []
        where = f"s3://{spec['bucket']}/{spec['prefix']}"
        if not objects:
            return {"present": False, "where": where}
        newest = max(o["LastModified"] for o in objects)
        return {"present": True, "where": where, "newest": newest.isoformat()}
    rds = aws.client("rds", plan.dr_region)
    backups = rds.describe_db_instance_automated_backups().get("DBInstanceAutomatedBackups", [])
    replicated = [b for b in backups if b.get("DBInstanceArn") == spec["source_arn"]]
    if replicated:
        return {"present": True, "where": f"replicated automated backups in {plan.dr_region}"}
    # Copies of the source's snapshots, or snapshots of the replica itself; nothing unrelated.
    ours = {spec["source_arn"].rsplit(":", 1)[-1], plan.replica_identifier}
    snapshots = [
        s
        for s in rds.describe_db_snapshots().get("DBSnapshots", [])
        if s.get("DBInstanceIdentifier") in ours
    ]
    if snapshots:
        newest = max(s.get("SnapshotCreateTime") or dt.datetime.min for s in snapshots)
        return {
            "present": True,
            "where": f"{len(snapshots)} DB snapshot(s) in {plan.dr_region}",
            "newest": str(newest),
        }
    return {"present": False, "where": f"no automated backups or snapshots in {plan.dr_region}"}


def rds_replica_lag(plan: FailoverPlan, aws: Aws) -> LagReading:
    cw = aws.client("cloudwatch", plan.dr_region)
    end = dt.datetime.now(dt.UTC)
    stats = cw.get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName="ReplicaLag",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": plan.replica_identifier}],
        StartTime=end - dt.timedelta(minutes=5),
        EndTime=end + dt.timedelta(minutes=1),  # the current, still open period too
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(stats.get("Datapoints", []), key=lambda p: p["Timestamp"])
    if not points:
        return LagReading(None, None, False, "no ReplicaLag datapoint in the last 5 minutes")
    return LagReading(float(points[-1]["Maximum"]), None, False, "CloudWatch ReplicaLag (latest)")


def describe_instance(rds: Any, identifier: str) -> dict[str, Any]:
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def promote_rds(plan: FailoverPlan, aws: Aws, waiter_delay: int = 15) -> dict[str, Any]:
    rds = aws.client("rds", plan.dr_region)
    ident = plan.replica_identifier
    if not ident:
        raise DrctlError("the stack outputs name no DR replica", ExitCode.PRECONDITION_FAILED)
    instance = describe_instance(rds, ident)
    source = instance.get("ReadReplicaSourceDBInstanceIdentifier")
    if source:
        rds.promote_read_replica(
            DBInstanceIdentifier=ident, BackupRetentionPeriod=plan.pitr_window_days
        )
    waiter = rds.get_waiter("db_instance_available")
    waiter.wait(
        DBInstanceIdentifier=ident, WaiterConfig={"Delay": waiter_delay, "MaxAttempts": 120}
    )
    result = {"replica": ident, "was_replica_of": source, "already_promoted": not source}
    target_class = plan.full_instance_class
    if plan.mode == "pilot-light" and target_class:
        # A pilot light replicates on a small class; production load needs the full one.
        current = describe_instance(rds, ident)["DBInstanceClass"]
        if current != target_class:
            rds.modify_db_instance(
                DBInstanceIdentifier=ident, DBInstanceClass=target_class, ApplyImmediately=True
            )
            waiter.wait(
                DBInstanceIdentifier=ident,
                WaiterConfig={"Delay": waiter_delay, "MaxAttempts": 240},
            )
        result["scaled"] = {"from": current, "to": target_class}
    return result


def list_namespace_secrets(sm: Any, namespace: str) -> list[dict[str, Any]]:
    found = []
    for page in sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [f"{namespace}/"]}]
    ):
        found += [s for s in page["SecretList"] if s["Name"].startswith(f"{namespace}/")]
    return sorted(found, key=lambda s: s["Name"])


def promote_secret_replicas(plan: FailoverPlan, aws: Aws) -> dict[str, Any]:
    """Make the DR copies standalone secrets, so they stay writable without the primary region."""
    sm = aws.client("secretsmanager", plan.dr_region)
    promoted, standalone = [], []
    for secret in list_namespace_secrets(sm, plan.namespace):
        detail = sm.describe_secret(SecretId=secret["ARN"])
        primary_region = detail.get("PrimaryRegion")
        if primary_region and primary_region != plan.dr_region:
            sm.stop_replication_to_replica(SecretId=detail["ARN"])
            promoted.append(detail["Name"])
        else:
            standalone.append(detail["Name"])
    return {"promoted": promoted, "already_standalone": standalone}


def point_config_at(
    plan: FailoverPlan, aws: Aws, region: str, host: str, required: Sequence[str]
) -> dict[str, Any]:
    """Write the runtime parameters in both regions; a region in ``required`` must succeed."""
    written, failed = [], {}
    for target in (plan.dr_region, plan.primary_region):
        ssm = aws.client("ssm", target)
        try:
            for name, value in (
                (plan.active_region_parameter, region),
                (plan.database_host_parameter, host),
            ):
                ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
            written.append(target)
        except Exception as exc:
            if target in required:
                raise
            # The old primary region may be the one that is down; the DR copy is what counts.
            failed[target] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return {"active_region": region, "database_host": host, "written": written, "failed": failed}


def _normalise(name: str) -> str:
    return name.rstrip(".").lower()


def failover_record_sets(plan: FailoverPlan, aws: Aws) -> dict[str, dict[str, Any]]:
    r53 = aws.client("route53", ROUTE53_REGION)
    listing = r53.list_resource_record_sets(
        HostedZoneId=plan.zone_id, StartRecordName=plan.record_name, MaxItems="20"
    )
    found = {}
    for rs in listing["ResourceRecordSets"]:
        if _normalise(rs["Name"]) == _normalise(plan.record_name) and rs.get("Failover"):
            found[rs["Failover"]] = rs
    if "PRIMARY" not in found or "SECONDARY" not in found:
        raise DrctlError(
            f"zone {plan.zone_id} has no PRIMARY/SECONDARY failover records named "
            f"{plan.record_name}; found {sorted(found)}",
            ExitCode.PRECONDITION_FAILED,
        )
    return found


def upsert_primary_record(
    plan: FailoverPlan, aws: Aws, target: str, health_check_id: str | None
) -> dict[str, Any]:
    sets = failover_record_sets(plan, aws)
    current = sets["PRIMARY"]
    values = [r["Value"] for r in current.get("ResourceRecords", [])]
    previous = {"records": values, "health_check_id": current.get("HealthCheckId")}
    if values == [target] and current.get("HealthCheckId") == health_check_id:
        return {"changed": False, "previous": previous, "now": target}
    record = {
        "Name": current["Name"],
        "Type": current["Type"],
        "SetIdentifier": current["SetIdentifier"],
        "Failover": "PRIMARY",
        "TTL": current.get("TTL", 60),
        "ResourceRecords": [{"Value": target}],
    }
    if health_check_id:
        record["HealthCheckId"] = health_check_id
    r53 = aws.client("route53", ROUTE53_REGION)
    change = r53.change_resource_record_sets(
        HostedZoneId=plan.zone_id,
        ChangeBatch={
            "Comment": f"drctl {plan.stack}: PRIMARY -> {target}",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}],
        },
    )["ChangeInfo"]
    deadline = time.monotonic() + 120
    status = change["Status"]
    while status != "INSYNC" and time.monotonic() < deadline:
        time.sleep(2)
        status = r53.get_change(Id=change["Id"])["ChangeInfo"]["Status"]
    return {
        "changed": True,
        "previous": previous,
        "now": target,
        "change_id": change["Id"],
        "status": status,
    }


def secondary_target(plan: FailoverPlan, aws: Aws) -> str:
    sets = failover_record_sets(plan, aws)
    return sets["SECONDARY"]["ResourceRecords"][0]["Value"]


# ---------------------------------------------------------------------------------------------
# The failover runbook


@dataclass
class Connections:
    """DSNs the runbook uses. Never printed: only ``redact`` forms reach the journal."""

    primary: str | None = None
    standby: str | None = None


def _require(dsn: str | None, option: str, plan: FailoverPlan) -> str:
    if not dsn:
        raise DrctlError(
            f"{option} is required for the {plan.backend} backend (or its DRCTL_ env var)",
            ExitCode.INVALID_CONFIG,
        )
    return dsn


def failover_steps(
    plan: FailoverPlan,
    aws: Aws,
    dsns: Connections,
    *,
    accept_data_loss: bool = False,
    samples: Sequence[str] = (),
    catch_up_timeout_s: float = 30,
    waiter_delay: int = 15,
) -> list[Step]:
    backend = plan.backend
    uses_dsn = backend in ("self-managed", "supabase")

    def assess(ctx: RunContext) -> dict[str, Any]:
        if uses_dsn:
            with opened(_require(dsns.standby, "--standby-dsn", plan), "standby") as standby:
                if backend == "self-managed":
                    if not standby.execute("select pg_is_in_recovery()").fetchone()[0]:
                        raise DrctlError(
                            f"the standby at {redact(dsns.standby)} is not in recovery: it is "
                            "already a primary, so there is nothing to promote",
                            ExitCode.PRECONDITION_FAILED,
                        )
                    reading = physical_lag(standby, dsns.primary)
                else:
                    reading = logical_lag(standby, dsns.primary)
        else:
            reading = rds_replica_lag(plan, aws)
        shown = "unknown" if reading.lag_s is None else f"{reading.lag_s:.3f}s"
        ctx.note(f"lag {shown} ({reading.method}); RPO {format_duration(plan.rpo_s)}")
        within = check_lag(reading, plan.rpo_s, accept_data_loss)
        backups = check_dr_backups(plan, aws)
        ctx.note(
            f"DR backups: {'present' if backups['present'] else 'MISSING'} at {backups['where']}"
        )
        if not backups["present"] and not accept_data_loss:
            raise DrctlError(
                f"no DR-region backup found ({backups['where']}): after failover the promoted "
                "database would have no recovery point; fix the backups, or rerun with "
                "--accept-data-loss",
                ExitCode.PRECONDITION_FAILED,
            )
        return {
            **reading.to_record(),
            "rpo_s": plan.rpo_s,
            "within_rpo": within,
            "accepted_data_loss": not within or not backups["present"],
            "dr_backup": backups,
        }

    def isolate(ctx: RunContext) -> dict[str, Any]:
        result: dict[str, Any] = {"primary_reachable": False, "fenced": False}
        primary = try_connect(dsns.primary)
        if primary is None:
            ctx.note("primary unreachable: it stays fenced only while it stays down")
            result["note"] = (
                "primary unreachable; keep it down until `drctl failback` re-seeds it, or it "
                "comes back writable"
            )
        else:
            with primary:
                fenced = fence(primary, backend)
            ctx.note(
                f"primary fenced: read-only, app roles locked out, "
                f"{fenced['terminated_sessions']} session(s) terminated"
            )
            result.update(primary_reachable=True, fenced=True, **fenced)
        if uses_dsn:
            with opened(_require(dsns.standby, "--standby-dsn", plan), "standby") as standby:
                if result["fenced"]:
                    caught = wait_received(
                        standby, result["final_lsn"], catch_up_timeout_s, backend == "supabase"
                    )
                    result["caught_up"] = caught
                    ctx.note(f"standby received the fenced primary's last WAL: {caught}")
                if backend == "self-managed":
                    stop_streaming(standby)
                result["replication_stopped"] = backend == "self-managed"
        return result

    def promote(ctx: RunContext) -> dict[str, Any]:
        if backend == "rds":
            return promote_rds(plan, aws, waiter_delay)
        with opened(_require(dsns.standby, "--standby-dsn", plan), "standby") as standby:
            if backend == "self-managed":
                return promote_postgres(standby)
            subs = [
                r[0]
                for r in standby.execute("select subname from pg_subscription where subenabled")
            ]
            for sub in subs:
                standby.execute(
                    sql.SQL("alter subscription {} disable").format(sql.Identifier(sub))
                )
            return {"disabled_subscriptions": subs, "sequences": sync_sequences(standby)}

    def switch_config(ctx: RunContext) -> dict[str, Any]:
        secrets = promote_secret_replicas(plan, aws)
        ctx.note(f"secret replicas promoted: {len(secrets['promoted'])}")
        config = point_config_at(
            plan, aws, plan.dr_region, plan.standby_endpoint, required=(plan.dr_region,)
        )
        return {"secrets": secrets, "config": config}

    def switch_dns(ctx: RunContext) -> dict[str, Any]:
        target = secondary_target(plan, aws)
        result = upsert_primary_record(plan, aws, target, None)
        ctx.note(f"{plan.record_name} PRIMARY -> {target} ({result.get('status', 'unchanged')})")
        return result

    def validate(ctx: RunContext) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if backend == "rds":
            instance = describe_instance(aws.client("rds", plan.dr_region), plan.replica_identifier)
            if instance["DBInstanceStatus"] != "available":
                raise DrctlError(f"DR instance is {instance['DBInstanceStatus']}")
            result["instance_status"] = instance["DBInstanceStatus"]
        if uses_dsn or dsns.standby:
            result.update(validate_database(dsns, samples, ctx.results.get("isolate", {})))
        sets = failover_record_sets(plan, aws)
        values = [r["Value"] for r in sets["PRIMARY"]["ResourceRecords"]]
        expected = ctx.results.get("switch-dns", {}).get("now")
        if values != [expected]:
            raise DrctlError(f"PRIMARY record answers {values}, expected {[expected]}")
        result["dns_primary"] = values[0]
        return result

    return [
        Step(
            "assess",
            "Assess: replica lag against the RPO, DR backups present",
            assess,
            dry_run=True,
        ),
        Step("isolate", "Isolate: fence the primary, stop replication", isolate, plan="fence"),
        Step("promote", "Promote the DR database", promote, plan="promote the standby"),
        Step(
            "switch-config",
            "Switch secrets and config to the DR region",
            switch_config,
            plan="promote secret replicas and point SSM runtime config at the DR region",
        ),
        Step(
            "switch-dns",
            "Switch DNS to the DR endpoint",
            switch_dns,
            plan="point the PRIMARY failover record at the DR endpoint",
        ),
        Step(
            "validate",
            "Validate: writes accepted, sample rows match, DNS answers DR",
            validate,
            plan="check writes, sample tables and DNS",
        ),
    ]


def validate_database(
    dsns: Connections, samples: Sequence[str], isolate: Mapping[str, Any]
) -> dict[str, Any]:
    with opened(dsns.standby, "promoted database") as new:
        if new.execute("select pg_is_in_recovery()").fetchone()[0]:
            raise DrctlError("the promoted database is still in recovery")
        probe_writable(new)
        tables = sample_tables(new, samples)
        ours = {t: table_fingerprint(new, t) for t in tables}
    compared = False
    old = try_connect(dsns.primary) if isolate.get("caught_up") else None
    if old is not None:
        with old:
            theirs = {t: table_fingerprint(old, t) for t in tables}
        diffs = [t for t in tables if ours[t] != theirs[t]]
        if diffs:
            raise DrctlError(
                f"sample tables differ from the fenced primary: {', '.join(diffs)} "
                f"(promoted {[ours[t] for t in diffs]}, primary {[theirs[t] for t in diffs]})"
            )
        compared = True
    return {"writable": True, "samples": ours, "compared_with_old_primary": compared}


def run_failover(
    plan: FailoverPlan,
    aws: Aws,
    dsns: Connections,
    *,
    execute: bool,
    yes: bool,
    accept_data_loss: bool = False,
    samples: Sequence[str] = (),
    journal: str | Path | None = None,
    fresh: bool = False,
    waiter_delay: int = 15,
) -> RunReport:
    steps = failover_steps(
        plan,
        aws,
        dsns,
        accept_data_loss=accept_data_loss,
        samples=samples,
        waiter_delay=waiter_delay,
    )
    book = Runbook("failover", plan.stack, steps, journal=journal)
    return book.run(
        execute=execute,
        yes=yes,
        fresh=fresh,
        what=f"fail {plan.stack} over from {plan.primary_region} to {plan.dr_region}",
    )


# ---------------------------------------------------------------------------------------------
# Failback (self-managed): re-seed, catch up, switch back, re-seed the DR standby


@dataclass(frozen=True)
class HostPaths:
    """Data directories on this host; failback runs where the database files are."""

    old_primary_data_dir: Path
    dr_data_dir: Path


def _pg(tool: str) -> str:
    from scripts.local.postgres import PG_BIN

    return str(PG_BIN / tool)


def _run_pg(argv: Sequence[str], timeout: float = 600, env: Mapping[str, str] | None = None) -> str:
    from scripts.local.postgres import LocalPgError, run_as_postgres

    try:
        return run_as_postgres(argv, timeout=timeout, env=env).stdout
    except LocalPgError as exc:
        raise DrctlError(str(exc), ExitCode.STEP_FAILED) from None


def _is_running(data_dir: Path) -> bool:
    from scripts.local.postgres import _pid_alive

    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return False
    return _pid_alive(pid)


def _clean_shutdown(data_dir: Path) -> None:
    """Leave the cluster cleanly shut down without ever letting it accept a connection.

    pg_rewind needs a clean shutdown; a crashed primary gets crash recovery in single-user
    mode, which cannot serve a client (starting it normally would make it writable again).
    """
    if _is_running(data_dir):
        _run_pg([_pg("pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"])
        return
    state = _run_pg([_pg("pg_controldata"), str(data_dir)])
    if re.search(r"Database cluster state:\s+shut down", state):
        return
    from scripts.local.postgres import as_postgres

    proc = subprocess.run(
        as_postgres([_pg("postgres"), "--single", "-D", str(data_dir), "postgres"]),
        input="",
        capture_output=True,
        text=True,
        timeout=600,
        cwd="/",
    )
    if proc.returncode != 0:
        raise DrctlError(f"single-user crash recovery failed: {proc.stderr.strip()[-300:]}")


HOST_CONFIG_GLOBS = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf", "*.conf")


def _save_host_config(data_dir: Path) -> dict[str, str]:
    """This host's own config files: pg_rewind and pg_basebackup copy the source's over them."""
    saved = {}
    for path in data_dir.glob("*.conf"):
        saved[path.name] = path.read_text()
    return saved


def _restore_host_config(
    data_dir: Path, saved: Mapping[str, str], upstream_conninfo: str, slot: str
) -> None:
    from scripts.local.postgres import chown_to_postgres

    for name, text in saved.items():
        if name == "postgresql.auto.conf":
            continue
        (data_dir / name).write_text(text)
        chown_to_postgres(data_dir / name)
    drop = (*FENCE_SETTINGS, *REPLICATION_SETTINGS)
    kept = [
        line
        for line in saved.get("postgresql.auto.conf", "").splitlines()
        if line.split("=", 1)[0].strip() not in drop
    ]
    quoted = upstream_conninfo.replace("'", "''")
    kept += [f"primary_conninfo = '{quoted}'", f"primary_slot_name = '{slot}'"]
    auto = data_dir / "postgresql.auto.conf"
    auto.write_text("\n".join(kept) + "\n")
    chown_to_postgres(auto)
    (data_dir / "standby.signal").write_text("")
    chown_to_postgres(data_dir / "standby.signal")


def split_password(dsn: str) -> tuple[str, dict[str, str]]:
    """A conninfo without its password, and the password as PGPASSWORD.

    Command lines are visible to every user of the host (ps); the environment is not.
    """
    parts = conninfo_to_dict(dsn)
    password = parts.pop("password", None)
    return make_conninfo(**parts), ({"PGPASSWORD": password} if password else {})


def _replication_conninfo(dsn: str, application_name: str) -> str:
    """The upstream's conninfo for primary_conninfo, with its password left to a passfile."""
    parts = {k: v for k, v in conninfo_to_dict(dsn).items() if k != "password"}
    parts["application_name"] = application_name
    parts.pop("dbname", None)
    return make_conninfo(**parts)


def reseed_as_standby(
    data_dir: Path, upstream_dsn: str, slot: str, application_name: str
) -> dict[str, Any]:
    """Make ``data_dir`` a streaming standby of the upstream: pg_rewind, else pg_basebackup.

    A rewind that fails, or whose result will not start, falls back to a full copy; the old
    files are moved aside (``<dir>.before-reseed-<time>``), never deleted.
    """
    if not (data_dir / "PG_VERSION").exists():
        raise DrctlError(f"{data_dir} holds no PostgreSQL cluster", ExitCode.PRECONDITION_FAILED)
    with opened(upstream_dsn, "new upstream") as upstream:
        exists = upstream.execute(
            "select count(*) from pg_replication_slots where slot_name = %s", [slot]
        ).fetchone()[0]
        if not exists:
            upstream.execute("select pg_create_physical_replication_slot(%s, true)", [slot])
        # pg_rewind reads the source's timeline from its control file, which a freshly
        # promoted server only updates at its first checkpoint (see the pg_rewind docs).
        upstream.execute("checkpoint")
    saved = _save_host_config(data_dir)
    _clean_shutdown(data_dir)
    source, secret_env = split_password(upstream_dsn)
    conninfo = _replication_conninfo(upstream_dsn, application_name)
    try:
        _run_pg(
            [_pg("pg_rewind"), f"--target-pgdata={data_dir}", f"--source-server={source}"],
            env=secret_env,
        )
        _restore_host_config(data_dir, saved, conninfo, slot)
        _start(data_dir)
        return {"data_dir": str(data_dir), "method": "pg_rewind", "slot": slot}
    except DrctlError as exc:
        reason = str(exc)[:300]
    # Without checksums or wal_log_hints, with WAL already recycled, or after timeline switches
    # pg_rewind cannot follow, only a full copy works.
    if _is_running(data_dir):
        _run_pg([_pg("pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    aside = data_dir.with_name(f"{data_dir.name}.before-reseed-{stamp}")
    os.replace(data_dir, aside)
    from scripts.local.postgres import make_postgres_dir

    make_postgres_dir(data_dir)
    argv = [_pg("pg_basebackup"), "-D", str(data_dir), "-d", source, "-X", "stream"]
    _run_pg([*argv, "-c", "fast", "-S", slot], env=secret_env)
    _restore_host_config(data_dir, saved, conninfo, slot)
    _start(data_dir)
    return {
        "data_dir": str(data_dir),
        "method": "pg_basebackup",
        "rewind_failed": reason,
        "kept_aside": str(aside),
        "slot": slot,
    }


def _start(data_dir: Path) -> None:
    for stale in ("postmaster.pid", "backup_label.old"):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / stale).unlink()
    log = data_dir / "drctl-start.log"
    try:
        _run_pg([_pg("pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "-t", "120", "start"])
    except DrctlError as exc:
        tail = " | ".join(log.read_text(errors="replace").splitlines()[-6:]) if log.exists() else ""
        raise DrctlError(f"{exc}; server log: {tail}") from None


def wait_streaming(standby_dsn: str, upstream_dsn: str, timeout: float) -> LagReading:
    """Wait for a re-seeded standby to accept connections and catch up; return its lag."""
    deadline = time.monotonic() + timeout
    while True:
        conn = try_connect(standby_dsn, timeout=2)
        if conn is not None:
            with conn:
                with opened(upstream_dsn, "upstream") as upstream:
                    target = upstream.execute("select pg_current_wal_lsn()::text").fetchone()[0]
                wait_received(conn, target, max(0.0, deadline - time.monotonic()))
                return physical_lag(conn, upstream_dsn)
        if time.monotonic() > deadline:
            raise DrctlError(
                f"the re-seeded standby at {redact(standby_dsn)} did not accept connections "
                f"within {timeout:.0f}s"
            )
        time.sleep(0.1)


def failback_steps(
    plan: FailoverPlan,
    aws: Aws,
    dsns: Connections,
    paths: HostPaths | None,
    *,
    accept_data_loss: bool = False,
    samples: Sequence[str] = (),
    catch_up_timeout_s: float = 60,
) -> list[Step]:
    """``dsns.primary``: the old primary (as it will listen once re-seeded); ``dsns.standby``:
    the DR database, primary since the failover."""
    if plan.backend != "self-managed":
        raise DrctlError(
            f"failback is automated for the self-managed backend only (this stack: "
            f"{plan.backend}); see docs/runbooks/failback.md for the manual steps",
            ExitCode.PRECONDITION_FAILED,
        )
    old_dsn = _require(dsns.primary, "--primary-dsn", plan)
    dr_dsn = _require(dsns.standby, "--standby-dsn", plan)
    if paths is None:
        raise DrctlError(
            "--old-primary-data-dir and --dr-data-dir are required: failback re-seeds them",
            ExitCode.INVALID_CONFIG,
        )
    slot = plan.replication_slot or "dr_standby"

    def assess(ctx: RunContext) -> dict[str, Any]:
        with opened(dr_dsn, "DR database") as dr:
            if dr.execute("select pg_is_in_recovery()").fetchone()[0]:
                raise DrctlError(
                    "the DR database is still a standby: there was no failover to come back from",
                    ExitCode.PRECONDITION_FAILED,
                )
        for path in (paths.old_primary_data_dir, paths.dr_data_dir):
            if not (path / "PG_VERSION").exists():
                raise DrctlError(
                    f"{path} holds no PostgreSQL cluster", ExitCode.PRECONDITION_FAILED
                )
        return {
            "old_primary_running": _is_running(paths.old_primary_data_dir),
            "dr_is_primary": True,
        }

    def reseed_old(ctx: RunContext) -> dict[str, Any]:
        result = reseed_as_standby(paths.old_primary_data_dir, dr_dsn, FAILBACK_SLOT, "failback")
        ctx.note(f"old primary re-seeded by {result['method'].split(' ')[0]}")
        return result

    def catch_up(ctx: RunContext) -> dict[str, Any]:
        reading = wait_streaming(old_dsn, dr_dsn, catch_up_timeout_s)
        within = check_lag(reading, plan.rpo_s, accept_data_loss)
        return {**reading.to_record(), "within_rpo": within}

    def isolate(ctx: RunContext) -> dict[str, Any]:
        with opened(dr_dsn, "DR database") as dr:
            fenced = fence(dr, "self-managed")
        with opened(old_dsn, "old primary") as old:
            caught = wait_received(old, fenced["final_lsn"], catch_up_timeout_s)
            if not caught and not accept_data_loss:
                raise DrctlError(
                    "the old primary did not receive the DR database's last WAL in time; "
                    "rerun to retry, or --accept-data-loss",
                    ExitCode.REFUSED,
                )
            stop_streaming(old)
        return {**fenced, "caught_up": caught}

    def promote(ctx: RunContext) -> dict[str, Any]:
        with opened(old_dsn, "old primary") as old:
            result = promote_postgres(old)
            probe_writable(old)
        return result

    def switch_config(ctx: RunContext) -> dict[str, Any]:
        secrets = rejoin_secret_replicas(plan, aws)
        config = point_config_at(
            plan, aws, plan.primary_region, plan.primary_endpoint, required=(plan.primary_region,)
        )
        return {"secrets": secrets, "config": config}

    def switch_dns(ctx: RunContext) -> dict[str, Any]:
        return upsert_primary_record(plan, aws, plan.primary_endpoint, plan.health_check_id)

    def reseed_dr(ctx: RunContext) -> dict[str, Any]:
        # The slot the old primary streamed from during failback would pin WAL on the DR host.
        with opened(dr_dsn, "DR database") as dr:
            dr.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                "where slot_name = %s and not active",
                [FAILBACK_SLOT],
            )
        result = reseed_as_standby(paths.dr_data_dir, old_dsn, slot, "dr_standby")
        reading = wait_streaming(dr_dsn, old_dsn, catch_up_timeout_s)
        return {**result, "lag": reading.to_record()}

    def validate(ctx: RunContext) -> dict[str, Any]:
        with opened(old_dsn, "primary") as primary:
            if primary.execute("select pg_is_in_recovery()").fetchone()[0]:
                raise DrctlError("the primary is still in recovery")
            probe_writable(primary)
            streaming = primary.execute(
                "select count(*) from pg_stat_replication where state = 'streaming'"
            ).fetchone()[0]
            tables = sample_tables(primary, samples)
            ours = {t: table_fingerprint(primary, t) for t in tables}
        with opened(dr_dsn, "DR standby") as dr:
            if not dr.execute("select pg_is_in_recovery()").fetchone()[0]:
                raise DrctlError("the DR database is not a standby again")
            theirs = {t: table_fingerprint(dr, t) for t in tables}
        diffs = [t for t in tables if ours[t] != theirs[t]]
        if diffs:
            raise DrctlError(f"DR standby differs from the primary on {', '.join(diffs)}")
        sets = failover_record_sets(plan, aws)
        values = [r["Value"] for r in sets["PRIMARY"]["ResourceRecords"]]
        if values != [plan.primary_endpoint]:
            raise DrctlError(f"PRIMARY record answers {values}, not {plan.primary_endpoint}")
        return {"streaming_standbys": streaming, "samples": ours, "dns_primary": values[0]}

    return [
        Step("assess", "Assess: DR database is primary, data dirs present", assess, dry_run=True),
        Step(
            "reseed-old-primary",
            "Re-seed the old primary from the DR database",
            reseed_old,
            plan="pg_rewind (or pg_basebackup) the old primary as a standby of the DR database",
        ),
        Step(
            "catch-up",
            "Wait for the old primary to catch up; lag against the RPO",
            catch_up,
            plan="wait for streaming and check the lag",
        ),
        Step("isolate", "Isolate: fence the DR database", isolate, plan="fence the DR database"),
        Step("promote", "Promote the old primary", promote, plan="pg_promote the old primary"),
        Step(
            "switch-config",
            "Switch secrets and config back to the primary region",
            switch_config,
            plan="re-replicate secrets from the primary region and point SSM config back",
        ),
        Step(
            "switch-dns",
            "Switch DNS back to the primary",
            switch_dns,
            plan="restore the PRIMARY failover record and its health check",
        ),
        Step(
            "reseed-dr",
            "Re-seed the DR database as a standby again",
            reseed_dr,
            plan="pg_rewind the DR database as a standby of the primary, through the slot",
        ),
        Step(
            "validate",
            "Validate: primary writable, DR streaming, samples match, DNS",
            validate,
            plan="check writes, replication, samples and DNS",
        ),
    ]


def rejoin_secret_replicas(plan: FailoverPlan, aws: Aws) -> dict[str, Any]:
    """Copy DR-side secret changes back to the primary region, then replicate to DR again."""
    sm_dr = aws.client("secretsmanager", plan.dr_region)
    sm_primary = aws.client("secretsmanager", plan.primary_region)
    rejoined, synced = [], []
    for secret in list_namespace_secrets(sm_dr, plan.namespace):
        detail = sm_dr.describe_secret(SecretId=secret["ARN"])
        if detail.get("PrimaryRegion") not in (None, plan.dr_region):
            continue  # still a replica: nothing to rejoin
        name = detail["Name"]
        dr_value = sm_dr.get_secret_value(SecretId=name)
        primary_value = sm_primary.get_secret_value(SecretId=name)
        if _secret_digest(dr_value) != _secret_digest(primary_value):
            # Rotated or edited in DR while it served: the DR value is the live one.
            payload = (
                {"SecretString": dr_value["SecretString"]}
                if "SecretString" in dr_value
                else {"SecretBinary": dr_value["SecretBinary"]}
            )
            sm_primary.put_secret_value(SecretId=name, **payload)
            synced.append(name)
        region = {"Region": plan.dr_region}
        if detail.get("KmsKeyId"):
            region["KmsKeyId"] = detail["KmsKeyId"]
        sm_primary.replicate_secret_to_regions(
            SecretId=name, AddReplicaRegions=[region], ForceOverwriteReplicaSecret=True
        )
        rejoined.append(name)
    return {"rejoined": rejoined, "values_copied_back": synced}


def _secret_digest(value: Mapping[str, Any]) -> str:
    data = value.get("SecretString")
    raw = data.encode() if data is not None else bytes(value.get("SecretBinary") or b"")
    return hashlib.sha256(raw).hexdigest()


def run_failback(
    plan: FailoverPlan,
    aws: Aws,
    dsns: Connections,
    paths: HostPaths | None,
    *,
    execute: bool,
    yes: bool,
    accept_data_loss: bool = False,
    samples: Sequence[str] = (),
    journal: str | Path | None = None,
    fresh: bool = False,
) -> RunReport:
    steps = failback_steps(
        plan, aws, dsns, paths, accept_data_loss=accept_data_loss, samples=samples
    )
    book = Runbook("failback", plan.stack, steps, journal=journal)
    return book.run(
        execute=execute,
        yes=yes,
        fresh=fresh,
        what=f"fail {plan.stack} back from {plan.dr_region} to {plan.primary_region}",
    )


# ---------------------------------------------------------------------------------------------
# CLI


def make_aws() -> Aws:
    """The clients the CLI uses; tests replace this to inject moto or a Stubber."""
    return Aws(default_sessions)


def register(app: typer.Typer) -> None:
    stack_opt = typer.Option("prod", "--stack", help="Stack to act on (Pulumi.<stack>.yaml).")
    outputs_opt = typer.Option(
        None,
        "--outputs",
        help="Stack outputs JSON (`pulumi stack output --json`); default: read via Pulumi.",
    )
    execute_opt = typer.Option(False, "--execute", help="Act; without it this is a dry run.")
    yes_opt = typer.Option(False, "--yes", help="Do not ask; required without a TTY.")
    loss_opt = typer.Option(
        False, "--accept-data-loss", help="Proceed even if the lag exceeds the RPO."
    )
    json_opt = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
    journal_opt = typer.Option(
        None, "--journal", help="Journal file; default .drctl/journal/<stack>-<command>.json."
    )
    fresh_opt = typer.Option(False, "--fresh", help="Start a new run after a completed one.")
    sample_opt = typer.Option(
        None, "--sample-table", help="Table to compare (repeatable); default: up to 20 tables."
    )
    primary_opt = typer.Option(
        None,
        "--primary-dsn",
        envvar="DRCTL_PRIMARY_DSN",
        help="DSN of the primary database (env DRCTL_PRIMARY_DSN).",
        show_default=False,
    )
    standby_opt = typer.Option(
        None,
        "--standby-dsn",
        envvar="DRCTL_STANDBY_DSN",
        help="DSN of the DR database (env DRCTL_STANDBY_DSN).",
        show_default=False,
    )

    @app.command()
    def failover(
        stack: str = stack_opt,
        outputs: Path | None = outputs_opt,
        execute: bool = execute_opt,
        yes: bool = yes_opt,
        accept_data_loss: bool = loss_opt,
        as_json: bool = json_opt,
        journal: Path | None = journal_opt,
        fresh: bool = fresh_opt,
        sample_table: list[str] | None = sample_opt,
        primary_dsn: str | None = primary_opt,
        standby_dsn: str | None = standby_opt,
    ) -> None:
        """Fail the database over to the DR region (dry run unless --execute)."""

        def build() -> RunReport:
            plan = load_plan(stack, read_outputs(stack, outputs))
            return run_failover(
                plan,
                make_aws(),
                Connections(primary_dsn, standby_dsn),
                execute=execute,
                yes=yes,
                accept_data_loss=accept_data_loss,
                samples=sample_table or (),
                journal=journal,
                fresh=fresh,
            )

        run_command(build, as_json)

    @app.command()
    def failback(
        stack: str = stack_opt,
        outputs: Path | None = outputs_opt,
        execute: bool = execute_opt,
        yes: bool = yes_opt,
        accept_data_loss: bool = loss_opt,
        as_json: bool = json_opt,
        journal: Path | None = journal_opt,
        fresh: bool = fresh_opt,
        sample_table: list[str] | None = sample_opt,
        primary_dsn: str | None = primary_opt,
        standby_dsn: str | None = standby_opt,
        old_primary_data_dir: Path | None = typer.Option(
            None, "--old-primary-data-dir", help="Data dir of the old primary, on this host."
        ),
        dr_data_dir: Path | None = typer.Option(
            None, "--dr-data-dir", help="Data dir of the DR database, on this host."
        ),
    ) -> None:
        """Re-seed the old primary from the DR database and switch back (dry run by default)."""

        def build() -> RunReport:
            plan = load_plan(stack, read_outputs(stack, outputs))
            paths = (
                HostPaths(old_primary_data_dir, dr_data_dir)
                if old_primary_data_dir and dr_data_dir
                else None
            )
            return run_failback(
                plan,
                make_aws(),
                Connections(primary_dsn, standby_dsn),
                paths,
                execute=execute,
                yes=yes,
                accept_data_loss=accept_data_loss,
                samples=sample_table or (),
                journal=journal,
                fresh=fresh,
            )

        run_command(build, as_json)


__all__ = [
    "Aws",
    "Connections",
    "FailoverPlan",
    "HostPaths",
    "LagReading",
    "check_lag",
    "failback_steps",
    "failover_steps",
    "load_plan",
    "physical_lag",
    "run_failback",
    "run_failover",
]
