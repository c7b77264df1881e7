"""A DR standby started from exactly the rendered files, then failover, re-arm and failback.

Two "hosts", each a separate service instance: its own OS user, its own directory tree
(data, pgBackRest config, secret fragment, spool, units), reached only through its own
``LocalHost`` the way a runbook reaches a real host. PostgreSQL 15 and pgBackRest 2.45 are real;
the repositories are the rendered S3 repositories (repo1 in the primary region, repo2 in the DR
region) on moto's S3 behind stunnel; the cipher passphrase comes from Secrets Manager (moto)
through the rendered secrets unit, the DR host reading the DR-region replica.

Rendered and run as shipped: pgbackrest.conf, the archiving conf (with ``wal_log_hints`` and
``max_slot_wal_keep_size``), DrStandby's standby.conf (conninfo with the declared replication
role over verify-full TLS, the declared slot, a ``restore_command`` reading repo2), the secrets
unit, the slot monitor unit, the fence guard, the re-arm config and units. Host-specific inputs
(paths, ports, TLS files) are render arguments; ``PGUSER=postgres`` in the agents' environment
stands in for the postgres OS user of a real host. The primary runs without data checksums, so
pg_rewind works only because of the rendered ``wal_log_hints``.
"""

from __future__ import annotations

import os
import secrets as pysecrets
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from components.dr_standby import render_standby_config
from components.pg_host_agents import render_host_agents
from components.pgbackrest_config import (
    PgBackRestSettings,
    rearm_settings,
    render_pgbackrest_conf,
    render_postgres_conf,
    render_secret_conf,
    restore_command,
    s3_settings,
)
from components.pgbackrest_schedule import render_rearm
from components.postgres_backup import REPLICATION_ROLE, cipher_secret_name, slot_name
from scripts.dataops.hosts import DbNode
from scripts.dataops.lag import ArchiveProbe
from scripts.dataops.recovery_log import segment_name, segment_number
from scripts.runbooks import failback as fb
from scripts.runbooks import failover as fo
from tests.integration.dr_world import (
    Guard,
    HostCluster,
    Stunnel,
    agent_env,
    aws_shim,
    exec_start,
    objectives,
    os_user,
    scaled,
    shared_dir,
    tls_files,
)
from tests.scripts.dr_cloud import (
    CONTROL,
    DR,
    PRIMARY,
    REPO2,
    CloudAws,
    MotoCloud,
    outputs_for,
    seed,
)

pytestmark = pytest.mark.integration

USERS = ("drctl_pg_a", "drctl_pg_b")
REPO1 = "pg-repo1-us-east-1"
REARM_BUCKET = "pg-repo-rearm-eu-central-1"
REPL_PASSWORD = "repl-" + pysecrets.token_hex(8)
APP_PASSWORD = "app-" + pysecrets.token_hex(8)
MAX_SLOT_WAL = "48MB"  # three WAL segments: small enough to lose the slot in a test
PRIMARY_HOST = "db-primary.internal.example"
STANDBY_HOST = "db-standby.music-platform.example"


@dataclass
class Site:
    cloud: MotoCloud
    seeded: object
    a: HostCluster
    b: HostCluster
    settings: dict[str, PgBackRestSettings]
    agents: dict[str, dict[str, str]]
    env: dict[str, str]
    ca: dict[str, Path]
    slot: str
    objectives: object

    def agent_env(self, role: str) -> dict[str, str]:
        region = dict(
            line.split("=", 1)
            for line in self.agents[role][f"platform-dr/{role}/environment"].splitlines()
        )
        return {**self.env, **region, "PGUSER": "postgres"}

    def run_unit(self, role: str, unit: str):
        host = self.a if role == "primary" else self.b
        argv = exec_start(self.agents[role][f"systemd/{unit}"])
        return host.host.run(argv, env=self.agent_env(role), check=False)

    def app_dsn(self, host: HostCluster) -> str:
        return host.dsn("app_writer", APP_PASSWORD)


def _settings(obj, hc: HostCluster, kms: dict, tls_port: int) -> PgBackRestSettings:
    return s3_settings(
        obj,
        bucket_names={PRIMARY: REPO1, DR: REPO2},
        kms_key_ids=kms,
        pg_path=str(hc.data_dir),
        pg_port=hc.port,
        pg_socket_path=str(hc.socket_dir),
        spool_path=str(hc.root / "spool"),
        lock_path=str(hc.root / "lock"),
        log_path=str(hc.root / "log"),
        config_path=str(hc.root / "etc/pgbackrest.conf"),
        config_include_path=str(hc.root / "etc/conf.d"),
        process_max=1,
        # What a laptop cannot have, by name: TLS through stunnel to moto, path-style, keys.
        repo_storage_host="127.0.0.1",
        repo_storage_port=tls_port,
        repo_verify_tls=False,
        repo_uri_style="path",
        repo_key_type="shared",
    )


def _tls_for(hc: HostCluster, source: Path) -> dict[str, Path]:
    """Copies of the CA and the server key pair, owned by the host's user."""
    out = {}
    for name in ("ca.crt", "server.crt", "server.key"):
        target = hc.root / name
        shutil.copy(source / name, target)
        target.chmod(0o600)
        shutil.chown(target, hc.user, hc.user)
        out[name] = target
    return out


@pytest.fixture(scope="module")
def site():
    obj = objectives()
    cloud = MotoCloud()
    cloud.reset()  # moto's backends are per process: start from an empty account
    tls = Stunnel(cloud.port)
    base = shared_dir("drctl-hosts-")
    shim_dir = shared_dir("drctl-shim-")
    aws_shim(shim_dir)
    env = {**agent_env(cloud.url), "PATH": f"{shim_dir}:{agent_env(cloud.url)['PATH']}"}
    hosts: list[HostCluster] = []
    ca_dir = shared_dir("drctl-tls-")
    try:
        seeded = seed(
            cloud,
            primary_endpoint=PRIMARY_HOST,
            standby_endpoint=STANDBY_HOST,
            control=True,
            dr_backup=False,
        )
        cloud.client("s3", PRIMARY).create_bucket(Bucket=REPO1)
        kms = {r: cloud.client("kms", r).create_key()["KeyMetadata"]["Arn"] for r in (PRIMARY, DR)}
        cloud.client("secretsmanager", PRIMARY).create_secret(
            Name=cipher_secret_name(obj),
            SecretString=pysecrets.token_urlsafe(32),
            AddReplicaRegions=[{"Region": DR}],
        )
        host_env = {"PATH": env["PATH"], "PGUSER": "postgres"}  # the role a postgres OS user gets
        a = HostCluster("host-a", os_user(USERS[0]), base, env=host_env)
        b = HostCluster("host-b", os_user(USERS[1]), base, env=host_env)
        hosts += [a, b]
        tls_files(ca_dir)
        slot = slot_name(obj)
        settings = {
            "primary": _settings(obj, a, kms, tls.port),
            "dr": _settings(obj, b, kms, tls.port),
        }
        agents = {}
        for role, hc in (("primary", a), ("dr", b)):
            s = settings[role]
            template = render_secret_conf(
                s,
                {r.index: "\0" for r in s.repos},
                {r.index: ("testing", "testing") for r in s.repos},
            )
            agents[role] = render_host_agents(
                obj,
                lease_bucket=CONTROL,
                slot=slot,
                pgbackrest_argv=s.base_command,
                pg=hc.pg(),
                cipher_secret_name=cipher_secret_name(obj),
                secret_conf_template=template,
                include_path=s.config_include_path,
            )
            hc.write(s.config_path, render_pgbackrest_conf(s), "0640")
        site = Site(cloud, seeded, a, b, settings, agents, env, {}, slot, obj)
        # Each host reads the passphrase from its own region's copy (b: the DR replica).
        for role in ("primary", "dr"):
            done = site.run_unit(role, "platform-dr-pgbackrest-secrets.service")
            assert done.returncode == 0, done.stderr

        # The primary: no data checksums, the rendered archiving conf, TLS, the declared roles.
        a.initdb(checksums=False)
        tls_a = _tls_for(a, ca_dir)
        a.local_conf(
            ssl=True, ssl_cert_file=str(tls_a["server.crt"]), ssl_key_file=str(tls_a["server.key"])
        )
        a.write(
            "pgbackrest-archiving.conf",
            render_postgres_conf(obj, settings["primary"], max_slot_wal_keep_size=MAX_SLOT_WAL),
        )
        hba = (a.data_dir / "pg_hba.conf").read_text()
        a.write(
            "pg_hba.conf",
            f"hostssl replication {REPLICATION_ROLE} 127.0.0.1/32 scram-sha-256\n"
            f"host    replication {REPLICATION_ROLE} 127.0.0.1/32 reject\n"
            f"host    all app_writer 127.0.0.1/32 scram-sha-256\n" + hba,
        )
        a.start()
        # What PostgresBackup declares through pulumi-postgresql, by the declared names.
        a.query(
            f"create role {REPLICATION_ROLE} login replication connection limit 5 "
            f"password '{REPL_PASSWORD}'"
        )
        a.query("select pg_create_physical_replication_slot(%s)", [slot])
        a.query(
            "create table events (id bigserial primary key, payload text not null, "
            "written_at timestamptz not null default clock_timestamp())"
        )
        a.query(f"create role app_writer login password '{APP_PASSWORD}'")
        a.query("grant all on events, events_id_seq to app_writer")
        backrest_a = a.host.run([*settings["primary"].base_command, "stanza-create"])
        assert backrest_a.returncode == 0
        a.host.run([*settings["primary"].base_command, "--type=full", "--repo=2", "backup"])

        # The DR standby: a base copy through the replication role over verified TLS, then the
        # rendered standby.conf (conninfo, slot, restore_command reading repo2).
        tls_b = _tls_for(b, ca_dir)
        passfile = b.root / "pgpass"
        b.write(str(passfile), f"127.0.0.1:{a.port}:*:{REPLICATION_ROLE}:{REPL_PASSWORD}\n")
        source = (
            f"host=127.0.0.1 port={a.port} user={REPLICATION_ROLE} sslmode=verify-full "
            f"sslrootcert={tls_b['ca.crt']}"
        )
        b.host.run(
            [
                "/usr/lib/postgresql/15/bin/pg_basebackup",
                "-D",
                str(b.data_dir),
                "-d",
                source,
                "-X",
                "stream",
                "-c",
                "fast",
                "-S",
                slot,
                "--no-sync",
            ],
            env={"PGPASSFILE": str(passfile)},
        )
        b.local_conf(
            ssl=True, ssl_cert_file=str(tls_b["server.crt"]), ssl_key_file=str(tls_b["server.key"])
        )
        b.write(
            "pgbackrest-archiving.conf",
            render_postgres_conf(obj, settings["dr"], max_slot_wal_keep_size=MAX_SLOT_WAL),
        )
        rendered = render_standby_config(
            "127.0.0.1",
            a.port,
            REPLICATION_ROLE,
            slot,
            passfile=str(passfile),
            sslrootcert=str(tls_b["ca.crt"]),
            restore_command=restore_command(settings["dr"]),
        )
        auto = (b.data_dir / "postgresql.auto.conf").read_text()
        b.write("postgresql.auto.conf", auto + rendered["standby.conf"])
        b.write("standby.signal", rendered["standby.signal"])
        b.start()
        site.ca = tls_b
        yield site
    finally:
        for hc in hosts:
            hc.cleanup()
        tls.stop()
        shutil.rmtree(shim_dir, ignore_errors=True)
        shutil.rmtree(ca_dir, ignore_errors=True)
        cloud.stop()
        if not os.environ.get("DRCTL_KEEP_TEST_HOSTS"):  # post-mortems: keep logs and data
            shutil.rmtree(base, ignore_errors=True)


def _streaming(site: Site, timeout: float = 60) -> tuple:
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        rows = site.a.query(
            "select r.usename, r.application_name, r.state, s.ssl, sl.active "
            "from pg_stat_replication r join pg_stat_ssl s on s.pid = r.pid "
            "left join pg_replication_slots sl on sl.active_pid = r.pid"
        )
        if rows and rows[0][2] == "streaming":
            return rows[0]
        row = rows
        time.sleep(0.2)
    raise AssertionError(f"not streaming: {row}; standby log: {site.b.log()[-2000:]}")


def _slot_metric(site: Site) -> list[float]:
    cw = site.cloud.client("cloudwatch", PRIMARY)
    data = cw.list_metrics(Namespace="platform-dr", MetricName="ReplicationSlotWalStatus")
    assert data["Metrics"], "the slot monitor published nothing"
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    stats = cw.get_metric_statistics(
        Namespace="platform-dr",
        MetricName="ReplicationSlotWalStatus",
        Dimensions=[{"Name": "Slot", "Value": site.slot}],
        StartTime=now - dt.timedelta(minutes=10),
        EndTime=now + dt.timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    return [p["Maximum"] for p in stats["Datapoints"]]


def _switch_and_archive(hc: HostCluster, n: int = 1) -> str:
    """Close ``n`` WAL segments and wait until archive-push stored the last one closed."""
    for _ in range(n):
        hc.query("insert into events (payload) select 'filler' from generate_series(1, 100)")
        hc.query("select pg_switch_wal()")
    current = hc.scalar("select pg_walfile_name(pg_current_wal_lsn())")
    closed = segment_name(int(current[:8], 16), segment_number(current) - 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (hc.scalar("select last_archived_wal from pg_stat_archiver") or "")[:24] >= closed:
            return closed
        time.sleep(0.2)
    raise AssertionError(f"{closed} not archived: {hc.query('select * from pg_stat_archiver')}")


def test_standby_from_rendered_files_streams_and_survives_a_lost_slot_by_reading_repo2(site):
    user, app_name, state, ssl, slot_active = _streaming(site)
    assert (user, app_name, state, ssl, slot_active) == (
        REPLICATION_ROLE,
        "dr_standby",
        "streaming",
        True,
        True,
    )
    assert site.b.scalar("select current_setting('wal_log_hints')") == "on"
    assert site.a.scalar("select current_setting('max_slot_wal_keep_size')") == MAX_SLOT_WAL
    # The slot monitor, as rendered: wal_status reserved (0) while the standby streams.
    done = site.run_unit("primary", "platform-dr-slot-monitor.service")
    assert done.returncode == 0, done.stderr
    assert _slot_metric(site) == [0.0]

    # The standby goes down; the primary writes on and recycles more WAL than the slot may pin.
    site.b.stop()
    site.a.query(
        "insert into events (payload) select 'while the standby was down' "
        "from generate_series(1, 500)"
    )
    _switch_and_archive(site.a, 5)
    site.a.query("checkpoint")
    site.a.query("checkpoint")
    assert (
        site.a.scalar(
            "select wal_status from pg_replication_slots where slot_name = %s", [site.slot]
        )
        == "lost"
    )
    done = site.run_unit("primary", "platform-dr-slot-monitor.service")
    assert done.returncode == 0, done.stderr
    assert max(_slot_metric(site)) == 3.0  # the alarm's threshold is 2: it fires

    # The operator's answer to the alarm: a fresh slot. The gap comes from repo2.
    site.a.query("select pg_drop_replication_slot(%s)", [site.slot])
    site.a.query("select pg_create_physical_replication_slot(%s, true)", [site.slot])
    site.b.start()
    _streaming(site)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if site.b.scalar("select count(*) from events where payload like 'while%'") == 500:
            break
        time.sleep(0.2)
    assert site.b.scalar("select count(*) from events where payload like 'while%'") == 500
    assert "from archive" in site.b.log()  # restore_command (repo2) filled the gap


def test_failover_rearms_backups_and_fails_back_per_host_with_pg_rewind(site):
    obj, a, b = site.objectives, site.a, site.b
    _streaming(site)
    outputs = outputs_for(
        site.seeded, backend="self-managed", primary=PRIMARY_HOST, standby=STANDBY_HOST
    )
    outputs["database"]["repoBuckets"] = {"repo1": REPO1, "repo2": REPO2}
    plan = scaled(fo.load_plan("prod", outputs))
    guards = {}

    def guard(role: str, hc: HostCluster) -> Guard:
        g = Guard(
            None,
            role,
            lease_bucket=CONTROL,
            endpoint_url=site.cloud.url,
            pgbackrest_argv=site.settings[role].base_command,
            os_user=hc.user,
            pg=hc.pg(),
        )
        g.env["PGUSER"] = "postgres"
        g.env["PATH"] = site.env["PATH"]
        guards[role] = g.start()
        return g

    try:
        ga = guard("primary", a)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ga.state().get("renewed_at"):
            time.sleep(0.1)
        assert ga.state().get("renewed_at"), ga.stderr()
        for i in range(50):
            a.query("insert into events (payload) values (%s)", [f"before the loss {i}"])
        last_lsn = a.scalar("select pg_current_wal_lsn()::text")
        b_deadline = time.monotonic() + 30
        while time.monotonic() < b_deadline and not b.scalar(
            f"select pg_last_wal_replay_lsn() >= '{last_lsn}'::pg_lsn"
        ):
            time.sleep(0.1)
        _switch_and_archive(a)
        a.kill()  # the primary's host is lost

        # rearmRegion is configured: the promoted primary also gets a repository there.
        third = "eu-central-1"
        site.cloud.client("s3", third).create_bucket(
            Bucket=REARM_BUCKET, CreateBucketConfiguration={"LocationConstraint": third}
        )
        key3 = site.cloud.client("kms", third).create_key()["KeyMetadata"]["Arn"]
        new_repo = replace(
            site.settings["dr"].repo(2), region=third, bucket=REARM_BUCKET, kms_key_id=key3
        )
        rearmed = rearm_settings(site.settings["dr"], new_repo)
        regular_b = {"pgbackrest/pgbackrest.conf": render_pgbackrest_conf(site.settings["dr"])}
        dr_node = DbNode(
            b.host,
            str(b.data_dir),
            b.dsn(),
            pgbackrest_config=site.settings["dr"].config_path,
            pgbackrest_include=site.settings["dr"].config_include_path,
            unit_dir=str(b.root / "units"),
            systemd=False,
            artefacts={**render_rearm(obj, rearmed), **regular_b},
        )
        aws = CloudAws(cloud=site.cloud)
        # Every secret of the namespace in the DR region, the cipher passphrase included, in the
        # order the runbook promotes them (by name).
        listed = site.cloud.client("secretsmanager", DR).list_secrets()["SecretList"]
        aws.expect_secret_promotions([s["ARN"] for s in sorted(listed, key=lambda s: s["Name"])])
        report = fo.run_failover(
            plan,
            aws,
            fo.Connections(a.dsn(), b.dsn(), site.app_dsn(b)),
            execute=True,
            yes=True,
            journal=b.root / "failover.json",
            dr_node=dr_node,
            archive=ArchiveProbe(b.host, site.settings["dr"].base_command),
            fence_poll_s=0.2,
        )
        steps = {s["name"]: s for s in report.steps}
        assess = steps["assess"]["result"]
        assert assess["source"] == "archive" and assess["lag_s"] is not None
        assert assess["lag_s"] <= plan.rpo_s and assess["unarchived_bound_s"] == 360
        fence_wait = steps["isolate"]["result"]["fence_wait"]
        assert fence_wait["fenced_by"] == "guard acknowledgement"
        # The lost host's guard stopped pgBackRest too: nothing archives from timeline 1 now.
        assert "pgbackrest stop: exit 0" in fence_wait["acknowledgements"][0]["actions"]
        assert steps["validate"]["result"]["app_write"]["role"] == "app_writer"
        rearm = steps["rearm"]["result"]
        assert rearm["repos"] == [1, 2] and rearm["backups"] == ["repo1: full", "repo2: full"]
        assert steps["rearm"]["duration_s"] > 0 and report.rto_s is not None
        assert rearm["timers"]["installed"] == [
            "pgbackrest-diff.timer",
            "pgbackrest-full.timer",
            "pgbackrest-incr.timer",
        ]
        conf_b = (Path(site.settings["dr"].config_path)).read_text()
        assert f"repo1-s3-bucket={REPO2}" in conf_b and REPO1 not in conf_b
        assert f"repo2-s3-bucket={REARM_BUCKET}" in conf_b
        listed = site.cloud.client("s3", third).list_objects_v2(Bucket=REARM_BUCKET)
        assert any("/backup/main/" in o["Key"] for o in listed.get("Contents", []))
        # Protection is back: the promoted primary archives to the surviving repository.
        b.query("insert into events (payload) values ('after failover')")
        b.query("select pg_switch_wal()")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not b.scalar(
            "select last_archived_time > now() - interval '1 minute' from pg_stat_archiver"
        ):
            time.sleep(0.2)
        assert b.scalar("select failed_count from pg_stat_archiver") == 0

        # Failback, each step on the host where its files are.
        gb = guard("dr", b)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not gb.state().get("renewed_at"):
            time.sleep(0.1)
        assert gb.state().get("renewed_at"), gb.stderr()
        nodes = fb.FailbackNodes(
            DbNode(
                a.host,
                str(a.data_dir),
                a.dsn(),
                pgbackrest_config=site.settings["primary"].config_path,
                pgbackrest_include=site.settings["primary"].config_include_path,
                systemd=False,
            ),
            dr_node,
        )
        aws = CloudAws(cloud=site.cloud)
        back = fb.run_failback(
            plan,
            aws,
            nodes,
            app_dsn=site.app_dsn(a),
            execute=True,
            yes=True,
            journal=b.root / "failback.json",
            fence_poll_s=0.2,
        )
        assert back.status == "completed"
        bsteps = {s["name"]: s["result"] for s in back.steps}
        assert bsteps["reseed-old-primary"]["method"] == "pg_rewind", bsteps[
            "reseed-old-primary"
        ].get("rewind_failed")
        assert bsteps["reseed-old-primary"]["host"] == "host-a"
        assert (
            bsteps["reseed-dr"]["method"] == "pg_rewind" and bsteps["reseed-dr"]["host"] == "host-b"
        )
        assert bsteps["isolate"]["fence_wait"]["fenced_by"] == "guard acknowledgement"
        assert bsteps["validate"]["app_write"]["role"] == "app_writer"
        assert bsteps["reseed-dr"]["disarmed"]["timers"]["to_disable"]
        assert not a.scalar("select pg_is_in_recovery()") and b.scalar("select pg_is_in_recovery()")
        payloads = {r[0] for r in a.query("select payload from events")}
        assert "after failover" in payloads and "before the loss 49" in payloads
        # The DR host is back on its regular config (repo2 is what its restore_command reads).
        assert f"repo2-s3-bucket={REPO2}" in Path(site.settings["dr"].config_path).read_text()
    finally:
        for g in guards.values():
            g.remove()
