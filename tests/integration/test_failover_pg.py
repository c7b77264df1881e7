"""`drctl failover` and `failback` on a real PostgreSQL 15 primary and streaming standby.

The database side is real: two clusters on 127.0.0.1 (scripts/local/postgres.py), the standby
streaming through the physical slot, a writer thread committing rows and recording each acknowledged
id.
The cloud side (Route 53 records, SSM, Secrets Manager, the DR backup bucket) is moto's server in
two regions; Secrets Manager's StopReplicationToReplica is answered by botocore's Stubber because
moto lacks it (see tests/scripts/dr_cloud.py).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import psycopg
import pytest
from typer.testing import CliRunner

from scripts.cli import app
from scripts.common import DrctlError, ExitCode
from scripts.local.postgres import LocalCluster
from scripts.runbooks import failover as fo
from tests.scripts.dr_cloud import (
    DR,
    NAMESPACE,
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


@pytest.fixture(scope="module")
def cloud():
    server = MotoCloud()
    yield server
    server.stop()


@pytest.fixture
def pair():
    """A primary with a streaming standby through the 'dr_standby' slot, both stopped after."""
    with LocalCluster("fo-primary") as primary:
        primary.execute(
            "create table events (id bigserial primary key, payload text not null, "
            "written_at timestamptz not null default clock_timestamp())"
        )
        primary.execute(
            "create table accounts as select g as id, md5(g::text) as email "
            "from generate_series(1, 500) g"
        )
        standby = primary.create_standby("fo-standby", slot="dr_standby")
        lsn = primary.scalar("select pg_current_wal_lsn()::text")
        standby.wait_for(f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")
        yield primary, standby


@pytest.fixture
def world(cloud, pair, tmp_path):
    cloud.reset()
    seeded = seed(cloud, primary_endpoint=PRIMARY_HOST, standby_endpoint=STANDBY_HOST)
    outputs = outputs_for(
        seeded, backend="self-managed", primary=PRIMARY_HOST, standby=STANDBY_HOST
    )
    plan = fo.load_plan("prod", outputs)
    primary, standby = pair
    dsns = fo.Connections(primary=primary.dsn(), standby=standby.dsn())
    return cloud, seeded, plan, primary, standby, dsns, tmp_path / "failover.json"


class Writer(threading.Thread):
    """Commits one row at a time; ``acked`` holds (id, wall time) of every acknowledged commit.

    Bounded: it stops at the first error (the primary died or was fenced), when told to, or
    after ``max_s`` seconds.
    """

    def __init__(self, dsn: str, max_s: float = 20):
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
        except psycopg.Error as exc:
            self.error = type(exc).__name__

    def wait_for(self, rows: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < rows and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.acked) >= rows, f"writer acknowledged only {len(self.acked)} rows"


def ids_on(cluster: LocalCluster) -> set[int]:
    return {r[0] for r in cluster.query("select id from events")}


def _failover(plan, aws, dsns, journal, **kw):
    return fo.run_failover(plan, aws, dsns, execute=True, yes=True, journal=journal, **kw)


def test_kill_the_primary_under_write_load_and_fail_over(world):
    cloud, seeded, plan, primary, standby, dsns, journal = world
    writer = Writer(primary.dsn())
    writer.start()
    writer.wait_for(300)
    killed_at = time.time()
    primary.kill()
    writer.join(10)
    assert writer.error, "the writer must have seen the primary die"

    aws = CloudAws(cloud=cloud)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = _failover(plan, aws, dsns, journal)

    assert report.status == "completed" and not standby.is_in_recovery()
    doc = json.loads(journal.read_text())
    steps = {s["name"]: s["result"] for s in doc["steps"]}
    assess = steps["assess"]
    assert assess["primary_reachable"] is False and assess["within_rpo"] is True
    lag_s = assess["lag_s"]
    assert lag_s is not None and lag_s <= plan.rpo_s

    # No acknowledged write is lost beyond the measured lag: every commit acknowledged before
    # (kill - lag) is on the promoted standby; anything missing was acknowledged inside it.
    present = ids_on(standby)
    missing = [(i, t) for i, t in writer.acked if i not in present]
    assert all(t >= killed_at - lag_s for _, t in missing), (missing[:5], lag_s)
    assert len(writer.acked) >= 300

    assert steps["isolate"]["primary_reachable"] is False
    assert steps["promote"]["already_primary"] is False and steps["promote"]["timeline"] == 2
    assert steps["validate"]["writable"] is True
    assert steps["validate"]["samples"]["public.accounts"]["rows"] == 500
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": STANDBY_HOST}]
    assert parameter(cloud, DR, plan.active_region_parameter) == DR
    aws.stubber.assert_no_pending_responses()
    # The promoted standby takes writes, so the platform can resume.
    standby.execute("insert into events (payload) values ('after failover')")


def test_lag_beyond_the_rpo_is_refused_unless_the_loss_is_accepted(world):
    cloud, seeded, plan, primary, standby, dsns, journal = world
    plan = replace(plan, rpo_s=1)
    writer = Writer(primary.dsn())
    writer.start()
    writer.wait_for(50)
    primary.kill()
    writer.join(10)
    time.sleep(1.5)  # the newest replayed commit is now older than the 1 s RPO

    aws = CloudAws(cloud=cloud)
    with pytest.raises(DrctlError) as raised:
        _failover(plan, aws, dsns, journal)
    assert raised.value.code == ExitCode.REFUSED and "exceeds the critical RPO" in str(raised.value)
    assert standby.is_in_recovery()  # nothing was promoted
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": PRIMARY_HOST}]

    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = _failover(plan, aws, dsns, journal, accept_data_loss=True)
    assert report.status == "completed" and not standby.is_in_recovery()
    assess = json.loads(journal.read_text())["steps"][0]
    assert assess["attempts"] == 2 and assess["result"]["lag_s"] > 1


def test_planned_failover_fences_resumes_after_an_outage_then_fails_back(world, tmp_path):
    cloud, seeded, plan, primary, standby, dsns, journal = world
    writer = Writer(primary.dsn())
    writer.start()
    writer.wait_for(200)

    aws = CloudAws(cloud=cloud)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    aws.fail_once.add(("route53", "change_resource_record_sets"))
    with pytest.raises(DrctlError) as raised:
        _failover(plan, aws, dsns, journal)
    assert raised.value.code == ExitCode.STEP_FAILED
    writer.join(10)
    assert writer.error  # fencing terminated the writer's session

    # The fenced primary refuses writes, the standby is already promoted, DNS is untouched.
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        primary.execute("insert into events (payload) values ('must not land')")
    assert not standby.is_in_recovery()
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": PRIMARY_HOST}]
    timeline = standby.scalar(fo.TIMELINE_SQL)

    report = _failover(plan, aws, dsns, journal)  # resumes at switch-dns
    assert [s["status"] for s in report.steps] == ["done-earlier"] * 4 + ["completed"] * 2
    validate = report.steps[-1]["result"]
    assert validate["compared_with_old_primary"] is True
    # A planned failover loses nothing: every acknowledged write is on the promoted standby.
    assert {i for i, _ in writer.acked} <= ids_on(standby)
    assert standby.scalar(fo.TIMELINE_SQL) == timeline
    assert _failover(plan, aws, dsns, journal).status == "already-completed"

    # While DR serves: writes land there, and a secret is rotated in DR. moto cannot stop
    # replication, so put it in the state AWS leaves behind: standalone copies in DR.
    standby.execute(
        "insert into events (payload) select 'during outage' from generate_series(1, 50)"
    )
    sm_p, sm_dr = cloud.client("secretsmanager", PRIMARY), cloud.client("secretsmanager", DR)
    for name in (f"{NAMESPACE}/api/payments", f"{NAMESPACE}/integrations/cdn"):
        value = sm_dr.get_secret_value(SecretId=name)["SecretString"]
        sm_p.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[DR])
        sm_dr.create_secret(Name=name, SecretString=value)
    sm_dr.put_secret_value(SecretId=f"{NAMESPACE}/api/payments", SecretString="rotated-in-dr")
    expected_ids = ids_on(standby)

    back = fo.run_failback(
        plan,
        aws,
        dsns,
        fo.HostPaths(primary.data_dir, standby.data_dir),
        execute=True,
        yes=True,
        journal=tmp_path / "failback.json",
    )
    assert back.status == "completed"
    steps = {s["name"]: s["result"] for s in back.steps}
    assert steps["reseed-old-primary"]["method"] == "pg_rewind"
    assert steps["reseed-dr"]["method"] == "pg_rewind"
    assert steps["catch-up"]["within_rpo"] is True
    assert not primary.is_in_recovery() and standby.is_in_recovery()
    assert ids_on(primary) == expected_ids  # the outage's writes came back with it
    assert "must not land" not in {r[0] for r in primary.query("select payload from events")}
    assert steps["validate"]["streaming_standbys"] == 1
    primary.execute("insert into events (payload) values ('after failback')")
    lsn = primary.scalar("select pg_current_wal_lsn()::text")
    standby.wait_for(f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")
    assert ids_on(standby) == ids_on(primary)

    record = primary_record(cloud, plan)
    assert record["ResourceRecords"] == [{"Value": PRIMARY_HOST}]
    assert record["HealthCheckId"] == seeded.health_check_id
    assert parameter(cloud, DR, plan.active_region_parameter) == PRIMARY
    assert sm_p.get_secret_value(SecretId=f"{NAMESPACE}/api/payments")["SecretString"] == (
        "rotated-in-dr"
    )
    assert sm_dr.describe_secret(SecretId=f"{NAMESPACE}/api/payments")["PrimaryRegion"] == PRIMARY
    assert steps["switch-config"]["secrets"]["values_copied_back"] == [f"{NAMESPACE}/api/payments"]


@pytest.fixture
def logical_pair():
    """Supabase stand-in: a primary publishing every table, a DR-region subscriber."""
    with LocalCluster("sb-primary", settings={"wal_level": "logical"}) as primary:
        with LocalCluster("sb-dr", settings={"wal_receiver_status_interval": "1s"}) as dr:
            schema = (
                "create table events (id bigserial primary key, payload text not null, "
                "written_at timestamptz not null default clock_timestamp())"
            )
            primary.execute(schema)
            dr.execute(schema)
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
    steps = {s["name"]: s["result"] for s in doc["steps"]}
    assert steps["assess"]["method"].startswith("primary reachable")
    assert steps["isolate"]["fenced"] and steps["isolate"]["caught_up"]
    assert steps["promote"]["disabled_subscriptions"] == ["dr_sub"]
    assert steps["validate"]["compared_with_old_primary"] is True
    # Every acknowledged write reached the subscriber, and the fenced publisher takes no more.
    assert {i for i, _ in writer.acked} <= ids_on(dr)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        primary.execute("insert into events (payload) values ('must not land')")
    # Sequences were moved past the copied rows: new writes on DR do not collide.
    dr.execute("insert into events (payload) values ('after failover')")
    assert dr.scalar("select max(id) from events") > max(i for i, _ in writer.acked)
    assert not dr.scalar("select subenabled from pg_subscription where subname = 'dr_sub'")
