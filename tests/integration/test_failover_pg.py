"""`drctl failover` on a real PostgreSQL 15 primary and streaming standby, fenced for real.

The database side is real: two clusters on 127.0.0.1 (scripts/local/postgres.py), the standby
streaming through the physical slot, a writer committing rows as the application's own role
(never a superuser) and recording each acknowledged id. The primary's host runs the rendered
fence guard (components/agents/fence_guard.py with its rendered config, through the aws CLI)
and the rendered heartbeat writer, with the lease in the DR-region control bucket.

The cloud side (S3 control bucket, Route 53 records, SSM, Secrets Manager, the DR backup bucket)
is moto's server; Secrets Manager's StopReplicationToReplica is answered by botocore's Stubber
because moto lacks it (see tests/scripts/dr_cloud.py).

Split brain is the point: the primary is made unreachable with SIGSTOP on its postmaster (its
backends, walsender and the guard keep running, as on a hung host), the failover must complete,
and once the old primary is released it must not take an application write.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from scripts.cli import app
from scripts.common import DrctlError, ExitCode
from scripts.dataops.lag import physical_lag
from scripts.dataops.lease import LeaseStore
from scripts.local.postgres import LocalCluster
from scripts.runbooks import failover as fo
from tests.integration.dr_world import (
    Guard,
    Heartbeat,
    app_dsn,
    app_role,
    app_write,
    scaled,
)
from tests.scripts.dr_cloud import (
    CONTROL,
    DR,
    PRIMARY,
    CloudAws,
    MotoCloud,
    outputs_for,
    parameter,
    primary_record,
    seed,
)

pytestmark = pytest.mark.integration

PRIMARY_HOST = "db-primary.internal.example"
STANDBY_HOST = "db-standby.music-platform.example"
SCHEMA = (
    "create table events (id bigserial primary key, payload text not null, "
    "written_at timestamptz not null default clock_timestamp())"
)


@pytest.fixture(scope="module")
def cloud():
    server = MotoCloud()
    yield server
    server.stop()


@dataclass
class World:
    cloud: MotoCloud
    seeded: object
    plan: fo.FailoverPlan
    primary: LocalCluster
    standby: LocalCluster
    dsns: fo.Connections
    guard: Guard
    heartbeat: Heartbeat
    journal: Path

    def lease(self):
        store = LeaseStore(self.cloud.client("s3", DR), CONTROL, self.plan.lease_key, "x/")
        return store.read()


@pytest.fixture
def world(cloud, tmp_path):
    """Primary + streaming standby, the app role, the primary host's guard and heartbeat."""
    cloud.reset()
    seeded = seed(cloud, primary_endpoint=PRIMARY_HOST, standby_endpoint=STANDBY_HOST, control=True)
    outputs = outputs_for(
        seeded, backend="self-managed", primary=PRIMARY_HOST, standby=STANDBY_HOST
    )
    plan = scaled(fo.load_plan("prod", outputs))
    with LocalCluster("fo-primary") as primary:
        primary.execute(SCHEMA)
        primary.execute(
            "create table accounts as select g as id, md5(g::text) as email "
            "from generate_series(1, 500) g"
        )
        app_role(primary)
        standby = primary.create_standby("fo-standby", slot="dr_standby")
        heartbeat = Heartbeat(primary).start()
        guard = Guard(primary, "primary", lease_bucket=CONTROL, endpoint_url=cloud.url).start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not guard.state().get("renewed_at"):
                time.sleep(0.1)
            assert guard.state().get("renewed_at"), guard.stderr()
            lsn = primary.scalar("select pg_current_wal_lsn()::text")
            standby.wait_for(f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")
            dsns = fo.Connections(primary.dsn(), standby.dsn(), app_dsn(standby))
            yield World(
                cloud, seeded, plan, primary, standby, dsns, guard, heartbeat, tmp_path / "j.json"
            )
        finally:
            guard.remove()
            heartbeat.stop()
            _release(primary)


def _release(cluster: LocalCluster) -> None:
    pid = cluster.postmaster_pid()
    if pid is not None:
        os.kill(pid, signal.SIGCONT)


class Writer(threading.Thread):
    """Commits one row at a time as the application role; ``acked`` holds (id, wall time)."""

    def __init__(self, dsn: str, max_s: float = 30):
        super().__init__(daemon=True)
        self.dsn, self.max_s = dsn, max_s
        self.acked: list[tuple[int, float]] = []
        self.error: str | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                while not self.halt.is_set() and time.monotonic() < deadline:
                    row = conn.execute(
                        "insert into events (payload) values ('track uploaded') returning id"
                    ).fetchone()
                    self.acked.append((row[0], time.time()))
                    time.sleep(0.002)
        except psycopg.Error as exc:
            self.error = type(exc).__name__

    def wait_for(self, rows: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < rows and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.acked) >= rows, f"writer acknowledged only {len(self.acked)} rows"


def ids_on(cluster: LocalCluster) -> set[int]:
    return {r[0] for r in cluster.query("select id from events")}


def _failover(w: World, aws=None, **kw):
    aws = aws or CloudAws(cloud=w.cloud)
    if "journal" not in kw:
        kw["journal"] = w.journal
    return fo.run_failover(w.plan, aws, w.dsns, execute=True, yes=True, fence_poll_s=0.2, **kw)


def _stopped(w: World) -> int:
    pid = w.primary.postmaster_pid()
    os.kill(pid, signal.SIGSTOP)
    return pid


# -- split brain -----------------------------------------------------------------------------------


def test_split_brain_hung_primary_is_fenced_by_its_guard_and_never_writes_again(world):
    w = world
    writer = Writer(app_dsn(w.primary))
    writer.start()
    writer.wait_for(200)
    pid = _stopped(w)  # the primary hangs: nobody can connect; its sessions still run
    aws = CloudAws(cloud=w.cloud)
    aws.expect_secret_promotions(w.seeded.secret_arns_dr)
    report = _failover(w, aws)

    assert report.status == "completed" and not w.standby.is_in_recovery()
    steps = {s["name"]: s["result"] for s in report.steps}
    assert steps["isolate"]["primary_reachable"] is False
    assert steps["isolate"]["lease"]["epoch"] == 2 and steps["isolate"]["lease"]["guarded"]
    assert steps["isolate"]["fence_wait"]["fenced_by"] == "guard acknowledgement"
    (ack,) = steps["isolate"]["fence_wait"]["acknowledgements"]
    assert ack["region"] == PRIMARY and any("SIGKILL" in a for a in ack["actions"])
    assert steps["validate"]["fence"]["old_primary"] == "not answering"
    assert steps["validate"]["app_write"] == {
        "role": "app_writer",
        "superuser": False,
        "committed_write": True,
    }
    writer.join(10)
    assert writer.error, "the writer's session died with the fenced primary"
    # The standby kept streaming from the hung primary until its guard killed it, and was
    # promoted only after that: what is missing was acknowledged in the last instant before the
    # kill (asynchronous replication; the RPO governor is what closes that gap).
    killed = dt.datetime.fromisoformat(ack["fenced_at"].replace("Z", "+00:00")).timestamp()
    present = ids_on(w.standby)
    missing = [t for i, t in writer.acked if i not in present]
    assert all(t >= killed - 1.5 for t in missing) and len(missing) < 50, (missing, killed)

    # The old primary is released: it does not come back as a primary.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
    with pytest.raises(psycopg.OperationalError):
        app_write(app_dsn(w.primary), "split brain")
    # Its unit's ExecStartPre (the guard's preflight) refuses to start it as a primary again.
    refused = w.guard.run("preflight")
    assert refused.returncode == 1 and "epoch 2 is held by us-west-2" in refused.stderr
    assert "split brain" not in {r[0] for r in w.standby.query("select payload from events")}
    # The application writes on the promoted database (validate did too, as the same role).
    app_write(app_dsn(w.standby), "after failover")
    assert w.lease().holder == DR and primary_record(w.cloud, w.plan)["ResourceRecords"] == [
        {"Value": STANDBY_HOST}
    ]
    aws.stubber.assert_no_pending_responses()


def test_split_brain_primary_cut_off_from_the_dr_region_fences_itself_at_ttl(world):
    """The guard cannot read the lease either: no acknowledgement comes; the failover waits the
    lease out and the hung primary's guard has stopped it by then, on its own."""
    w = world
    w.guard.cut_off()
    taken_at = time.monotonic()
    _stopped(w)
    aws = CloudAws(cloud=w.cloud)
    aws.expect_secret_promotions(w.seeded.secret_arns_dr)
    report = _failover(w, aws)
    steps = {s["name"]: s["result"] for s in report.steps}
    assert steps["isolate"]["fence_wait"]["fenced_by"].startswith("lease wait elapsed")
    assert steps["isolate"]["fence_wait"]["waited_s"] >= w.plan.lease_ttl_s
    assert time.monotonic() - taken_at >= w.plan.lease_ttl_s
    fenced = w.guard.state()["fenced"]
    assert "lease not confirmed" in fenced["reason"] and fenced["epoch_seen"] is None
    # It stopped on its own, before the standby was promoted (the guard's clock and the
    # journal's are this machine's: comparable here).
    promote = next(s for s in json.loads(w.journal.read_text())["steps"] if s["name"] == "promote")
    assert fenced["at"] <= promote["started_at"][:19] + "Z"
    assert w.primary.postmaster_pid() is None
    with pytest.raises(psycopg.OperationalError):
        app_write(app_dsn(w.primary), "split brain")
    assert steps["validate"]["app_write"]["committed_write"] is True
    app_write(app_dsn(w.standby), "after failover")


def test_without_a_guard_the_failover_refuses_unless_told_the_primary_is_gone(world):
    w = world
    w.guard.stop()
    # A lease nobody ever renewed: take the guard's renewal history away.
    s3 = w.cloud.client("s3", DR)
    doc = json.loads(s3.get_object(Bucket=CONTROL, Key=w.plan.lease_key)["Body"].read())
    doc.pop("renewed_at", None)
    s3.put_object(Bucket=CONTROL, Key=w.plan.lease_key, Body=json.dumps(doc).encode())
    w.primary.kill()
    with pytest.raises(DrctlError) as raised:
        _failover(w)
    assert raised.value.code == ExitCode.REFUSED and "--accept-unfenced" in str(raised.value)
    assert w.standby.is_in_recovery() and w.lease().holder == PRIMARY
    aws = CloudAws(cloud=w.cloud)
    aws.expect_secret_promotions(w.seeded.secret_arns_dr)
    report = _failover(w, aws, accept_unfenced=True)
    steps = {s["name"]: s["result"] for s in report.steps}
    assert steps["isolate"]["lease"]["accepted_unfenced"] is True
    assert steps["validate"]["app_write"]["committed_write"] is True


# -- switchover ------------------------------------------------------------------------------------


def test_switchover_whose_standby_has_not_caught_up_refuses_and_unfences(world):
    w = world
    # The standby stops receiving; the primary keeps committing.
    w.standby.execute("alter system set primary_conninfo = ''")
    w.standby.execute("select pg_reload_conf()")
    time.sleep(0.5)
    w.primary.execute(
        "insert into events (payload) select 'unreplicated' from generate_series(1, 50)"
    )
    with pytest.raises(DrctlError) as raised:
        _failover(w, catch_up_timeout_s=1.0)
    message = str(raised.value)
    assert raised.value.code == ExitCode.REFUSED and "switchover refused" in message
    assert "bytes of WAL" in message and "--accept-data-loss" in message
    assert w.standby.is_in_recovery() and w.lease().holder == PRIMARY  # nothing moved
    app_write(app_dsn(w.primary), "still the primary")  # un-fenced: the app writes again
    doc = json.loads(w.journal.read_text())
    isolate = next(s for s in doc["steps"] if s["name"] == "isolate")
    assert isolate["status"] == "failed"

    aws = CloudAws(cloud=w.cloud)
    aws.expect_secret_promotions(w.seeded.secret_arns_dr)
    report = _failover(w, aws, catch_up_timeout_s=1.0, accept_data_loss=True)
    isolate = next(s for s in report.steps if s["name"] == "isolate")["result"]
    assert isolate["caught_up"] is False and isolate["would_lose"]["bytes"] > 0
    assert isolate["would_lose"]["seconds"] is not None  # the heartbeat turns bytes into time
    assert "unreplicated" not in {r[0] for r in w.standby.query("select payload from events")}
    app_write(app_dsn(w.standby), "after failover")


def test_planned_switchover_loses_nothing_resumes_after_an_outage_and_serves_the_app(world):
    w = world
    writer = Writer(app_dsn(w.primary))
    writer.start()
    writer.wait_for(200)
    aws = CloudAws(cloud=w.cloud)
    aws.expect_secret_promotions(w.seeded.secret_arns_dr)
    aws.fail_once.add(("route53", "change_resource_record_sets"))
    with pytest.raises(DrctlError) as raised:
        _failover(w, aws)
    assert raised.value.code == ExitCode.STEP_FAILED
    writer.join(10)
    assert writer.error  # the soft fence terminated the writer's session
    assert not w.standby.is_in_recovery()
    # The fence holds: the guard saw the epoch move and stopped the old primary.
    assert w.primary.postmaster_pid() is None
    with pytest.raises(psycopg.OperationalError):
        app_write(app_dsn(w.primary), "must not land")

    # Another operator resumes (a new process: new clients, the same journal) at switch-dns.
    report = _failover(w, CloudAws(cloud=w.cloud))
    assert [s["status"] for s in report.steps] == ["done-earlier"] * 4 + ["completed"] * 3
    steps = {s["name"]: s for s in json.loads(w.journal.read_text())["steps"]}
    promote = steps["promote"]["result"]
    assert promote["samples"]["compared_with_fenced_primary"] is True
    # The fence's CONNECTION LIMIT 0 reached the standby through WAL and was cleared there.
    assert "connection limit 0 on postgres -> -1" in promote["fence_state"]["cleared"]
    assert {i for i, _ in writer.acked} <= ids_on(w.standby)  # a planned failover loses nothing
    assert steps["validate"]["result"]["app_write"]["role"] == "app_writer"
    assert steps["rearm"]["result"] == {"skipped": "no DR host given (drctl failover --dr-host)"}
    assert _failover(w).status == "already-completed"
    assert parameter(w.cloud, DR, w.plan.active_region_parameter) == DR


def test_assess_recognises_a_standby_this_run_already_promoted(world):
    """The operator's machine died right after promote: the journal (still 'running') knows the
    run; a dry run, and the resume, see the promoted standby as this run's, not as a refusal."""
    w = world
    aws = CloudAws(cloud=w.cloud)
    aws.fail_once.add(("secretsmanager", "list_secrets"))
    with pytest.raises(DrctlError):
        _failover(w, aws)
    assert not w.standby.is_in_recovery()
    dry = fo.run_failover(
        w.plan, CloudAws(cloud=w.cloud), w.dsns, execute=False, yes=False, journal=w.journal
    )
    assess = dry.steps[0]["result"]
    assert assess["promoted_by_this_run"]["run_id"] == json.loads(w.journal.read_text())["run_id"]
    # A different run (no journal) is refused: that standby was promoted by someone else.
    with pytest.raises(DrctlError) as raised:
        fo.run_failover(
            w.plan,
            CloudAws(cloud=w.cloud),
            w.dsns,
            execute=False,
            yes=False,
            journal=w.journal.with_name("other.json"),
        )
    assert raised.value.code == ExitCode.PRECONDITION_FAILED
    assert "not one this run promoted" in str(raised.value)


def test_resume_rechecks_the_lease_before_promoting(world, monkeypatch):
    w = world
    real_promote = fo.promote_postgres

    def crash(conn):
        raise ConnectionError("the operator's laptop died")

    monkeypatch.setattr(fo, "promote_postgres", crash)
    with pytest.raises(DrctlError):
        _failover(w)
    doc = json.loads(w.journal.read_text())
    assert [s["status"] for s in doc["steps"]] == ["completed", "completed", "failed"]
    monkeypatch.setattr(fo, "promote_postgres", real_promote)
    # Meanwhile someone else moved the lease on (another run, a failback).
    store = LeaseStore(w.cloud.client("s3", DR), CONTROL, w.plan.lease_key, "x/")
    store.take(PRIMARY, "someone-else", "test", ttl_s=5)
    with pytest.raises(DrctlError) as raised:
        _failover(w)
    assert raised.value.code == ExitCode.REFUSED
    assert "no longer the one this run took" in str(raised.value)
    assert w.standby.is_in_recovery()  # not promoted


# -- lag -------------------------------------------------------------------------------------------


def test_an_idle_primary_is_not_lag_but_a_stalled_standby_is(world):
    w = world
    w.heartbeat.stop()
    time.sleep(2.5)  # the primary commits nothing
    with w.standby.connect() as standby:
        idle = physical_lag(standby, w.primary.dsn())
    assert idle.lag_s == 0.0, idle
    # The standby stops replaying; the heartbeat keeps committing on the primary.
    w.standby.execute("select pg_wal_replay_pause()")
    for _ in range(4):
        assert w.heartbeat.beat().returncode == 0
        time.sleep(0.5)
    with w.standby.connect() as standby:
        stalled = physical_lag(standby, w.primary.dsn())
    assert stalled.source == "heartbeat" and 1.0 <= stalled.lag_s <= 10, stalled
    # Without a heartbeat table the bytes are known, the time is not: unknown, with guidance.
    w.primary.execute("drop table platform_dr.heartbeat")
    w.primary.execute("insert into events (payload) values ('x')")
    with w.standby.connect() as standby:
        unknown = physical_lag(standby, w.primary.dsn())
    assert (
        unknown.lag_s is None
        and unknown.lag_bytes > 0
        and "pgbackrest info" in (unknown.how_to_proceed or "")
    )
    with pytest.raises(DrctlError) as raised:
        fo.check_lag(unknown, 900, accept_data_loss=False)
    assert raised.value.code == ExitCode.REFUSED and "unknown" in str(raised.value)


# -- supabase (logical) ----------------------------------------------------------------------------


@pytest.fixture
def logical_pair():
    """Supabase stand-in: a primary publishing every table, a DR-region subscriber."""
    with LocalCluster("sb-primary", settings={"wal_level": "logical"}) as primary:
        with LocalCluster("sb-dr", settings={"wal_receiver_status_interval": "1s"}) as dr:
            primary.execute(SCHEMA)
            dr.execute(SCHEMA)
            primary.execute(
                "insert into events (payload) select 'seed' from generate_series(1, 100)"
            )
            primary.execute("create publication dr_pub for all tables")
            dr.execute(
                f"create subscription dr_sub connection '{primary.conninfo()}' publication dr_pub"
            )
            dr.wait_for("select count(*) = 100 from events")
            yield primary, dr


def test_supabase_failover_fences_the_publisher_and_promotes_the_subscriber(
    cloud, logical_pair, tmp_path, monkeypatch
):
    """Through the real `drctl failover` command: DSNs from the environment, JSON on stdout."""
    primary, dr = logical_pair
    app_role(dr)
    cloud.reset()
    seeded = seed(cloud, primary_endpoint="db.abc.supabase.co", standby_endpoint=STANDBY_HOST)
    outputs = outputs_for(
        seeded, backend="supabase", primary="db.abc.supabase.co", standby=STANDBY_HOST
    )
    plan = fo.load_plan("prod", outputs)
    assert plan.dr_backup["kind"] == "s3"
    writer = Writer(primary.dsn())
    writer.start()
    writer.wait_for(200)
    aws = CloudAws(cloud=cloud)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    monkeypatch.setattr(fo, "make_aws", lambda: aws)
    monkeypatch.setenv("DRCTL_PRIMARY_DSN", primary.dsn())
    monkeypatch.setenv("DRCTL_STANDBY_DSN", dr.dsn())
    monkeypatch.setenv("DRCTL_APP_DSN", app_dsn(dr))
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(outputs))
    journal = tmp_path / "failover.json"
    args = [
        "failover",
        "--stack",
        "prod",
        "--outputs",
        str(outputs_file),
        "--journal",
        str(journal),
    ]
    result = CliRunner().invoke(app, [*args, "--execute", "--yes", "--json"])
    writer.join(10)

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "completed" and doc["rto_s"] > 0
    assert all(s["duration_s"] is not None for s in doc["steps"])
    assert primary.dsn() not in result.output and dr.dsn() not in journal.read_text()
    assert "app-secret" not in result.output + journal.read_text()
    steps = {s["name"]: s["result"] for s in doc["steps"]}
    assert steps["assess"]["source"] == "subscription"
    assert steps["isolate"]["fenced"] and steps["isolate"]["caught_up"]
    assert steps["promote"]["disabled_subscriptions"] == ["dr_sub"]
    assert steps["promote"]["samples"]["compared_with_fenced_primary"] is True
    assert steps["validate"]["app_write"]["role"] == "app_writer"
    # Every acknowledged write reached the subscriber, and the fenced publisher takes no more.
    assert {i for i, _ in writer.acked} <= ids_on(dr)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        primary.execute("insert into events (payload) values ('must not land')")
    # Sequences were moved past the copied rows: new writes on DR do not collide.
    app_write(app_dsn(dr), "after failover")
    assert dr.scalar("select max(id) from events") > max(i for i, _ in writer.acked)
    assert not dr.scalar("select subenabled from pg_subscription where subname = 'dr_sub'")
