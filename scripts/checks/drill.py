"""`drctl drill --local`: the spec's quarterly DR simulation, on embedded defaults (`make demo`).

The drill starts its own platform, breaks it the five ways the spec names, recovers it with the
same code an operator uses, and *measures* the result against prod's declared objectives:

- a local PostgreSQL 15 primary archiving through pgBackRest into repo1 and repo2, two local
  directories standing for the primary and the DR region (scripts/local/postgres.py,
  scripts/dataops/pgbackrest.py, rendered by components/pgbackrest_config.py from the objectives);
- a streaming standby as the DR database (data-centre outage);
- moto (a ThreadedMotoServer on 127.0.0.1) for S3, Secrets Manager, SSM and Route 53 in the
  primary and the DR region.

Each scenario starts from a healthy platform of its own, so any one can run alone
(``--scenario``). What is measured, and how:

- data: every write the drill makes is remembered with the time it was acknowledged (the commit
  returned, the PUT answered). After recovery the drill reads back what is there and compares the
  two by SHA-256 over ``key:content`` lines.
- RPO (seconds of acknowledged writes lost): zero when every acknowledged write is back; otherwise
  the time from the newest surviving write before the loss to the newest lost write.
- RTO: from the first destructive action of the incident (the clock starts there, i.e. detection
  is assumed instantaneous; add your alarm latency in production) until service is back and the
  data is verified.

A scenario is met when its data is verified and both measured figures are within the objectives
of its data class. The evidence report (Markdown and JSON) shows each figure beside its objective.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import typer

from components.objectives import Objectives, format_duration, parse_objectives
from scripts.common import DrctlError, ExitCode, fail, out, print_json, progress

STACK = "prod"  # the drill measures against prod's declared objectives

# -- results ------------------------------------------------------------------------------------


@dataclass
class Write:
    """One acknowledged write: a row id or an object key, its content, when it was acknowledged."""

    key: str
    content: str
    acked_at: float  # wall clock (time.time()), so DB and S3 writes share one time line


@dataclass
class DataCheck:
    """Acknowledged writes against what recovery brought back."""

    expected_count: int
    recovered_count: int
    expected_checksum: str
    recovered_checksum: str
    lost: int
    wrong: int
    loss_window_s: float
    verified: bool
    note: str = ""


def checksum(items: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(items):
        digest.update(f"{key}:{items[key]}\n".encode())
    return digest.hexdigest()


def compare(
    expected: list[Write], recovered: dict[str, str], *, loss_allowed: bool = True
) -> DataCheck:
    """Compare the newest acknowledged write of each key with what recovery brought back.

    A key that is back with other content is *wrong* (never acceptable). A key that is missing
    is *lost*: acceptable only when ``loss_allowed`` (a restore to a point in time legitimately
    ends before the newest writes) and then the recovered set must equal the expected set minus
    the lost keys, checksum for checksum. The loss window is the RPO measured.
    """
    newest: dict[str, Write] = {}
    for write in expected:
        newest[write.key] = write
    lost = [w for w in newest.values() if w.key not in recovered]
    wrong = [w for w in newest.values() if w.key in recovered and recovered[w.key] != w.content]
    kept = {k: w.content for k, w in newest.items() if k in recovered}
    got = {k: recovered[k] for k in newest if k in recovered}
    window = 0.0
    if lost:
        first = min(w.acked_at for w in lost)
        last = max(w.acked_at for w in lost)
        before = [w.acked_at for w in newest.values() if w.key in recovered and w.acked_at < first]
        window = last - (max(before) if before else first)
    verified = not wrong and checksum(kept) == checksum(got) and (loss_allowed or not lost)
    return DataCheck(
        expected_count=len(newest),
        recovered_count=len(got),
        expected_checksum=checksum({k: w.content for k, w in newest.items()}),
        recovered_checksum=checksum(got),
        lost=len(lost),
        wrong=len(wrong),
        loss_window_s=round(window, 3),
        verified=verified,
        note=(
            f"{len(lost)} acknowledged write(s) not recovered; the rest match the checksum of "
            "the acknowledged writes up to the recovery point"
            if lost and verified
            else ""
        ),
    )


@dataclass
class ScenarioResult:
    name: str
    title: str
    data_class: str
    dataset: str
    incident: str
    recovery: str
    rpo_objective_s: int
    rto_objective_s: int
    rpo_measured_s: float | None = None
    rto_measured_s: float | None = None
    data: DataCheck | None = None
    data_verified: bool = False
    met: bool = False
    error: str | None = None
    duration_s: float = 0.0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> None:
        self.data_verified = bool(self.data and self.data.verified)
        self.met = (
            self.error is None
            and self.data_verified
            and self.rpo_measured_s is not None
            and self.rto_measured_s is not None
            and self.rpo_measured_s <= self.rpo_objective_s
            and self.rto_measured_s <= self.rto_objective_s
        )

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        # The headline fields first, in the order the issue specifies.
        head = (
            "name",
            "rpo_measured_s",
            "rto_measured_s",
            "rpo_objective_s",
            "rto_objective_s",
            "data_verified",
            "met",
        )
        return {**{k: record[k] for k in head}, **record}


# -- the embedded platform ----------------------------------------------------------------------


class LocalAws:
    """moto's server on 127.0.0.1 and a free port: S3, Secrets Manager, SSM and Route 53.

    Clients carry fixed dummy credentials and the local endpoint, so the drill can never reach a
    real AWS account whatever the environment holds.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request on stderr; the drill's own progress is what belongs there.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> LocalAws:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._server.stop()

    def warm_up(self, regions: tuple[str, ...]) -> None:
        """moto builds each service's backend per region on first use (SSM loads AWS's public
        parameters); doing it here keeps that out of the measured recovery times."""
        for region in regions:
            self.client("s3", region).list_buckets()
            self.client("secretsmanager", region).list_secrets()
            self.client("ssm", region).describe_parameters()
        self.client("route53", "us-east-1").list_hosted_zones()

    def session(self, region: str):
        import boto3

        return boto3.session.Session(
            aws_access_key_id="drill", aws_secret_access_key="drill", region_name=region
        )

    def client(self, service: str, region: str):
        return self.session(region).client(service, endpoint_url=self.endpoint_url)


class DrillContext:
    """What every scenario gets: the objectives, local AWS, a work dir, and step timing."""

    def __init__(self, objectives: Objectives, aws: LocalAws | None, workdir: Path, keep: bool):
        self.objectives = objectives
        self.aws = aws
        self.workdir = workdir
        self.keep = keep
        self.result: ScenarioResult | None = None
        self.cleanups: list[Callable[[], None]] = []

    def run_cleanups(self) -> None:
        """Stop what the current scenario started (servers), newest first; never raises."""
        while self.cleanups:
            with contextlib.suppress(Exception):
                self.cleanups.pop()()

    @property
    def primary_region(self) -> str:
        return self.objectives.regions.primary

    @property
    def dr_region(self) -> str:
        return self.objectives.regions.dr

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        """A timed step: a spinner on stderr while it runs, a line and a timeline entry after."""
        started = time.monotonic()
        with progress.status(f"  {label}...", spinner="dots"):
            yield
        seconds = time.monotonic() - started
        if self.result is not None:
            self.result.timeline.append({"step": label, "seconds": round(seconds, 3)})
        progress.print(f"  [green]✓[/] {label} [dim]{seconds:.2f} s[/]", markup=True)


def _wait_past_second() -> dt.datetime:
    """Sleep past a whole-second boundary and return an instant just before it.

    S3 lists LastModified to the second: writes made before this call are at or before the
    returned instant, writes made after it are listed as later.
    """
    now = time.time()
    time.sleep(int(now) + 1.02 - now)
    return dt.datetime.fromtimestamp(int(time.time()), dt.UTC) - dt.timedelta(milliseconds=1)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put_versioned_bucket(s3: Any, name: str, region: str, *, object_lock: bool = False) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if object_lock:
        kwargs["ObjectLockEnabledForBucket"] = True
    s3.create_bucket(**kwargs)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _upload_audio(s3: Any, bucket: str, count: int, size: int) -> list[Write]:
    """Creator audio: ``count`` tracks, every third one re-uploaded once (a second version)."""
    writes = []
    for i in range(count):
        key = f"audio/creator-{i % 7:02d}/track-{i:03d}.wav"
        for _ in range(2 if i % 3 == 0 else 1):
            body = secrets.token_bytes(size)
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="audio/wav")
            writes.append(Write(key, _sha256(body), time.time()))
    return writes


def _current_objects(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"]] = _sha256(body)
    return found


# -- scenarios: objects ---------------------------------------------------------------------------

AUDIO_OBJECTS = 60
AUDIO_SIZE = 64 * 1024


def scenario_security_breach(ctx: DrillContext, result: ScenarioResult) -> None:
    """Locked backups survive a delete attempt; overwritten audio comes back from its versions."""
    from scripts.dataops.object_recovery import apply_recovery, plan_recovery

    assert ctx.aws is not None
    s3 = ctx.aws.client("s3", ctx.primary_region)
    s3_dr = ctx.aws.client("s3", ctx.dr_region)
    audio = f"drill-breach-audio-{ctx.primary_region}"
    backups = f"drill-breach-backups-{ctx.dr_region}"
    lock_mode = ctx.objectives.backup_object_lock_mode
    with ctx.step(f"healthy platform: {AUDIO_OBJECTS} tracks, {lock_mode}-locked backups"):
        _put_versioned_bucket(s3, audio, ctx.primary_region)
        _put_versioned_bucket(s3_dr, backups, ctx.dr_region, object_lock=True)
        s3_dr.put_object_lock_configuration(
            Bucket=backups,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": lock_mode, "Days": 1}},
            },
        )
        audio_writes = _upload_audio(s3, audio, AUDIO_OBJECTS, AUDIO_SIZE)
        backup_writes = []
        for i in range(6):
            body = secrets.token_bytes(32 * 1024)
            key = f"pgbackrest/backup/main/2026112{i}-010000F/bundle/{i}"
            s3_dr.put_object(Bucket=backups, Key=key, Body=body)
            backup_writes.append(Write(key, _sha256(body), time.time()))
        good_as_of = _wait_past_second()

    incident_started = time.monotonic()
    incident_wall = time.time()
    with ctx.step("incident: attacker deletes backup versions and overwrites every track"):
        refused = deleted = 0
        versions = s3_dr.list_object_versions(Bucket=backups).get("Versions", [])
        for version in versions:
            try:
                s3_dr.delete_object(
                    Bucket=backups,
                    Key=version["Key"],
                    VersionId=version["VersionId"],
                    BypassGovernanceRetention=True,
                )
                deleted += 1
            except s3_dr.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] != "AccessDenied":
                    raise
                refused += 1
            # Hiding an object behind a delete marker is allowed even under a lock.
            s3_dr.delete_object(Bucket=backups, Key=version["Key"])
        attacked = sorted({w.key for w in audio_writes})
        for key in attacked:
            s3.put_object(Bucket=audio, Key=key, Body=b"ENCRYPTED" + secrets.token_bytes(512))

    with ctx.step("recover: restore each track's version from before the breach"):
        audio_plan = apply_recovery(s3, plan_recovery(s3, audio, "audio/", good_as_of))
    with ctx.step("recover: remove the delete markers hiding the locked backups"):
        backup_plan = apply_recovery(s3_dr, plan_recovery(s3_dr, backups, "pgbackrest/"))
    with ctx.step("verify: checksums of every track and every backup object"):
        recovered = _current_objects(s3, audio, "audio/")
        recovered |= _current_objects(s3_dr, backups, "pgbackrest/")
        check = compare(audio_writes + backup_writes, recovered)
    result.rto_measured_s = round(time.monotonic() - incident_started, 3)
    result.rpo_measured_s = check.loss_window_s
    result.data = check
    locked_ok = refused == len(versions) and deleted == 0
    if not locked_ok:
        check.verified = False
        result.error = f"{deleted} locked backup version(s) were deleted; {refused} refused"
    result.evidence = {
        "incident_at": _iso(incident_wall),
        "restore_as_of": good_as_of.isoformat(),
        "locked_version_deletes_attempted": len(versions),
        "locked_version_deletes_refused": refused,
        "object_lock_mode": lock_mode,
        "tracks_overwritten": len(attacked),
        "audio_plan": audio_plan.counts(),
        "backup_plan": backup_plan.counts(),
        "buckets": {ctx.primary_region: audio, ctx.dr_region: backups},
    }


def scenario_accidental_deletion(ctx: DrillContext, result: ScenarioResult) -> None:
    """A creator's folder and more are deleted; removing the delete markers brings them back."""
    from scripts.dataops.object_recovery import apply_recovery, plan_recovery

    assert ctx.aws is not None
    s3 = ctx.aws.client("s3", ctx.primary_region)
    audio = f"drill-deletion-audio-{ctx.primary_region}"
    with ctx.step(f"healthy platform: {AUDIO_OBJECTS} tracks in a versioned bucket"):
        _put_versioned_bucket(s3, audio, ctx.primary_region)
        writes = _upload_audio(s3, audio, AUDIO_OBJECTS, AUDIO_SIZE)

    incident_started = time.monotonic()
    incident_wall = time.time()
    with ctx.step("incident: a cleanup job deletes two creators' folders (twice)"):
        doomed = sorted(
            {w.key for w in writes if "/creator-00/" in w.key or "/creator-03/" in w.key}
        )
        for key in doomed:
            s3.delete_object(Bucket=audio, Key=key)
        # The job retried: a second marker on half of them.
        for key in doomed[::2]:
            s3.delete_object(Bucket=audio, Key=key)
        visible_after = len(_current_objects(s3, audio, "audio/"))

    with ctx.step("recover: remove the delete markers under audio/"):
        plan = apply_recovery(s3, plan_recovery(s3, audio, "audio/"))
    with ctx.step("verify: checksum of every track"):
        check = compare(writes, _current_objects(s3, audio, "audio/"))
    result.rto_measured_s = round(time.monotonic() - incident_started, 3)
    result.rpo_measured_s = check.loss_window_s
    result.data = check
    result.evidence = {
        "incident_at": _iso(incident_wall),
        "objects_deleted": len(doomed),
        "objects_visible_after_incident": visible_after,
        "delete_markers_removed": sum(len(a.delete_marker_ids) for a in plan.actions if a.done),
        "plan": plan.counts(),
        "bucket": audio,
    }


def _iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds")


# -- the database platform ------------------------------------------------------------------------

SEED_ROWS = 5000
DRILL_APP_ROLE = "drill_app"  # the application's own role: failover validation writes as it
WRITE_SECONDS = 2.0  # write load before each database incident


class Writer(threading.Thread):
    """Inserts into ``ledger`` as fast as the server acknowledges, remembering every ack.

    ``connect`` returns a fresh autocommit connection; with ``reconnect`` the writer keeps trying
    after a failure (the outage scenario measures when writes are accepted again), otherwise it
    stops at the first failure. An insert whose outcome is unknown (the connection died under
    it) is never retried with the same id, so ids stay unique across a failover.
    """

    def __init__(self, connect: Callable[[], Any], first_id: int, *, reconnect: bool = False):
        super().__init__(name="drill-writer", daemon=True)
        self.connect = connect
        self.next_id = first_id
        self.reconnect = reconnect
        self.acked: list[Write] = []
        self.failures = 0
        self.first_failure_at: float | None = None  # monotonic
        self.back_at: float | None = None  # monotonic: first ack after a failure
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        conn = None
        while not self._halt.is_set():
            row_id = self.next_id
            self.next_id += 1
            payload = secrets.token_hex(12)
            try:
                if conn is None:
                    conn = self.connect()
                conn.execute("insert into ledger (id, payload) values (%s, %s)", (row_id, payload))
            except Exception:  # noqa: BLE001 - any failure is an unacknowledged write
                self.failures += 1
                if self.first_failure_at is None:
                    self.first_failure_at = time.monotonic()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                if not self.reconnect:
                    return
                time.sleep(0.05)
                continue
            self.acked.append(Write(str(row_id), payload, time.time()))
            if self.first_failure_at is not None and self.back_at is None:
                self.back_at = time.monotonic()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _connect(conninfo: str):
    import psycopg

    return psycopg.connect(conninfo, autocommit=True, connect_timeout=3)


def ledger_rows(cluster: Any) -> dict[str, str]:
    return {str(i): p for i, p in cluster.query("select id, payload from ledger", dbname="app")}


class PgSite:
    """A healthy database platform: primary archiving to repo1 and repo2, full backups in both,
    a seeded ``ledger``, optionally a streaming standby through a physical slot."""

    def __init__(self, ctx: DrillContext, name: str):
        self.ctx = ctx
        self.dir = ctx.workdir / name
        self.primary: Any = None
        self.standby: Any = None
        self.pgbackrest: Any = None
        self.seed: list[Write] = []
        self.clusters: list[Any] = []

    def start(self, *, backups: tuple[int, ...] = (1, 2), standby: bool = False) -> PgSite:
        """WAL always goes to both repos; ``backups`` says which repos get a full backup now
        (a scenario takes the ones its recovery reads, to keep the drill short)."""
        from components.pgbackrest_config import posix_settings, postgres_settings
        from scripts.dataops.pgbackrest import PgBackRest, require_binaries, write_config
        from scripts.local.postgres import LocalCluster, make_postgres_dir

        require_binaries()
        make_postgres_dir(self.dir, 0o755)
        dirs = {
            role: str(make_postgres_dir(self.dir / role))
            for role in (
                f"repo1-{self.ctx.primary_region}",
                f"repo2-{self.ctx.dr_region}",
                "spool",
                "lock",
                "log",
            )
        }
        self.primary = LocalCluster("primary", base_dir=self.dir)
        self.clusters.append(self.primary)
        settings = posix_settings(
            self.ctx.objectives,
            repo1_path=dirs[f"repo1-{self.ctx.primary_region}"],
            repo2_path=dirs[f"repo2-{self.ctx.dr_region}"],
            pg_path=str(self.primary.data_dir),
            pg_socket_path=str(self.primary.socket_dir),
            spool_path=dirs["spool"],
            lock_path=dirs["lock"],
            log_path=dirs["log"],
            process_max=2,
        )
        passes = {1: secrets.token_urlsafe(24), 2: secrets.token_urlsafe(24)}
        conf_dir = make_postgres_dir(self.dir / "pgbackrest", 0o755)
        settings = write_config(settings, conf_dir, passes)
        self.primary.settings.update(postgres_settings(self.ctx.objectives, settings))
        self.primary.init()
        self.primary.start()
        # pgBackRest reaches Postgres on the socket named after the port picked at start.
        settings = write_config(replace(settings, pg_port=self.primary.port), conf_dir, passes)
        self.settings = settings
        self.pgbackrest = PgBackRest.from_settings(settings)
        self.primary.execute("create database app")
        self.primary.execute(
            "create table ledger (id bigint primary key, payload text not null, "
            "written_at timestamptz not null default clock_timestamp())",
            dbname="app",
        )
        self.primary.execute(f"create role {DRILL_APP_ROLE} login nosuperuser")
        self.primary.execute(f"grant all on ledger to {DRILL_APP_ROLE}", dbname="app")
        rows = [(i, secrets.token_hex(12)) for i in range(1, SEED_ROWS + 1)]
        with self.primary.connect("app") as conn, conn.cursor() as cur:
            with cur.copy("copy ledger (id, payload) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
        acked = time.time()
        self.seed = [Write(str(i), p, acked) for i, p in rows]
        self.pgbackrest.stanza_create()
        for repo in backups:
            self.pgbackrest.backup("full", repo)
        if standby:
            self.standby = self.primary.create_standby("standby", slot="dr_standby")
            self.standby.wait_for("select pg_last_wal_replay_lsn() is not null")
        return self

    def writer(self, *, reconnect: bool = False, connect: Callable[[], Any] | None = None):
        primary = self.primary
        return Writer(
            connect or (lambda: _connect(primary.conninfo("app"))),
            SEED_ROWS + 1,
            reconnect=reconnect,
        )

    def adopt_restore(self, data_dir: Path, name: str) -> Any:
        """Start a restored copy as a server of this site (stopped with it)."""
        copy = self.primary.adopt(data_dir, name)
        copy.start()
        return copy

    def stop(self) -> None:
        for cluster in self.clusters:
            with contextlib.suppress(Exception):
                cluster.cleanup()


def _switch_and_archive(cluster: Any, timeout: float = 60) -> str:
    """Close the current WAL segment and wait until the archiver has shipped it."""
    segment = cluster.scalar("select pg_walfile_name(pg_switch_wal())")
    cluster.wait_for(
        f"select last_archived_wal >= '{segment}' from pg_stat_archiver", timeout=timeout
    )
    return segment


def _run_load(writer: Writer, seconds: float) -> None:
    writer.start()
    time.sleep(seconds)


# -- scenarios: database -------------------------------------------------------------------------


def scenario_human_error(ctx: DrillContext, result: ScenarioResult) -> None:
    """``drop table ledger`` under write load; PITR to just before, copy the table back."""
    from scripts.local.postgres import PG_BIN

    site = PgSite(ctx, "human-error")
    ctx.cleanups.append(site.stop)
    with ctx.step("healthy platform: primary archiving to repo1 + repo2, full backup in repo1"):
        site.start(backups=(1,))
    writer = site.writer()
    with ctx.step(f"write load on ledger ({WRITE_SECONDS:.0f} s)"):
        _run_load(writer, WRITE_SECONDS)

    incident_started = time.monotonic()
    with ctx.step("incident: an operator drops table ledger"):
        # What the operator reads from the statement log afterwards: the drop's start time.
        target = site.primary.scalar("select clock_timestamp()")
        site.primary.execute("drop table ledger", dbname="app")
        writer.join(timeout=10)  # its next insert fails: the table is gone
    with ctx.step("ship the WAL holding the drop to the repositories"):
        segment = _switch_and_archive(site.primary)
    restored_dir = site.dir / "pitr"
    with ctx.step("PITR: pgbackrest restore --type=time to just before the drop"):
        site.pgbackrest.restore(restored_dir, target_time=target, repo=1)
    with ctx.step("replay to the target and prove recovery stopped there"):
        recovery = site.pgbackrest.recover(restored_dir, target)
    with ctx.step("start the restored copy"):
        copy = site.adopt_restore(restored_dir, "pitr")
    with ctx.step("copy ledger back into the primary (pg_dump -t ledger | psql)"):
        dump = subprocess.run(
            [PG_BIN / "pg_dump", "-d", copy.conninfo("app"), "-t", "ledger", "--no-owner"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        subprocess.run(
            [PG_BIN / "psql", "-d", site.primary.conninfo("app"), "-v", "ON_ERROR_STOP=1", "-q"],
            input=dump.stdout,
            capture_output=True,
            check=True,
            timeout=120,
        )
    with ctx.step("verify: checksum of ledger on the primary"):
        check = compare(site.seed + writer.acked, ledger_rows(site.primary))
    result.rto_measured_s = round(time.monotonic() - incident_started, 3)
    result.rpo_measured_s = check.loss_window_s
    result.data = check
    copy.stop()
    result.evidence = {
        "pitr_target": _iso(target.timestamp()),
        "drop_wal_segment": segment,
        "recovery": recovery.to_json(),
        "acknowledged_writes_under_load": len(writer.acked),
        "restored_from": "repo1",
    }


def _damage(data_dir: Path) -> list[str]:
    """Overwrite the control file and ledger's heap with random bytes, as a failing disk would."""
    damaged = []
    for path in [data_dir / "global" / "pg_control", *sorted((data_dir / "base").glob("*/*"))]:
        if path.name == "pg_control" or (path.is_file() and path.stat().st_size >= 8192):
            size = path.stat().st_size
            with path.open("r+b") as fh:
                fh.write(secrets.token_bytes(min(size, 8192)))
            damaged.append(str(path.relative_to(data_dir)))
    return damaged


def scenario_database_corruption(ctx: DrillContext, result: ScenarioResult) -> None:
    """The primary's data directory is damaged under load; restore the latest from repo2."""
    from components.pgbackrest_config import worst_case_rpo_s
    from scripts.local.postgres import LocalPgError

    site = PgSite(ctx, "corruption")
    ctx.cleanups.append(site.stop)
    with ctx.step("healthy platform: primary archiving to repo1 + repo2, full backup in repo2"):
        site.start(backups=(2,))
    writer = site.writer()
    with ctx.step(f"write load on ledger ({WRITE_SECONDS:.0f} s)"):
        _run_load(writer, WRITE_SECONDS)

    incident_started = time.monotonic()
    with ctx.step("incident: the host dies and its disk scribbles over the data directory"):
        site.primary.kill()
        writer.join(timeout=10)
        damaged = _damage(site.primary.data_dir)
    with ctx.step("assess: the damaged primary refuses to start"):
        try:
            site.primary.start(timeout=20)
            refused = None
        except LocalPgError as exc:
            refused = str(exc)[:300]
    if refused is None:
        site.primary.kill()
        raise DrctlError("the damaged primary started; the corruption was not detected")
    restored_dir = site.dir / "restored-from-repo2"
    with ctx.step(f"restore the latest backup and WAL from repo2 ({ctx.dr_region})"):
        site.pgbackrest.restore(restored_dir, repo=2)
    with ctx.step("replay to the end of the archive and prove it got there"):
        recovery = site.pgbackrest.recover(restored_dir, None)
    with ctx.step("start the restored copy as the new primary and accept writes"):
        primary = site.adopt_restore(restored_dir, "new-primary")
        primary.execute(
            "insert into ledger (id, payload) values (0, 'service check')", dbname="app"
        )
        primary.execute("delete from ledger where id = 0", dbname="app")
    with ctx.step("verify: checksum of ledger on the new primary"):
        check = compare(site.seed + writer.acked, ledger_rows(primary))
    result.rto_measured_s = round(time.monotonic() - incident_started, 3)
    result.rpo_measured_s = check.loss_window_s
    result.data = check
    result.evidence = {
        "damaged_files": len(damaged),
        "damaged_primary_refused_to_start": refused,
        "recovery": recovery.to_json(),
        "restored_from": f"repo2 ({ctx.dr_region})",
        "acknowledged_writes_under_load": len(writer.acked),
        "archive_timeout_s": int(site.primary.settings["archive_timeout"].rstrip("s")),
        # The derived bound on WAL not yet shipped when a host is lost (pgbackrest_config).
        "worst_case_rpo_s": worst_case_rpo_s(ctx.objectives),
    }


ZONE = "drill.internal"
RECORD = f"db.{ZONE}"


def _endpoint(region: str) -> str:
    return f"db.{region}.{ZONE}"


class _MotoAws:
    """The failover engine's client factory (scripts.runbooks.failover.Aws) pointed at moto."""

    def __init__(self, aws: LocalAws):
        self._aws = aws
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        if (service, region) not in self._clients:
            self._clients[service, region] = self._aws.client(service, region)
        return self._clients[service, region]


def _dr_control_plane(ctx: DrillContext, site: PgSite) -> dict[str, Any]:
    """What the DrStandby/SecretsBackup/PostgresBackup components would have deployed, on moto:
    a Route 53 zone with PRIMARY/SECONDARY failover records, the DB secret and the runtime
    parameters in both regions, and repo2's files in a DR-region bucket. Returns stack outputs
    in the shape ``scripts.runbooks.failover.load_plan`` reads."""
    from components.secrets_backup import namespace_of, parameter_name, secret_name
    from scripts.runbooks.failover import ACTIVE_REGION_KEY, DATABASE_HOST_KEY

    assert ctx.aws is not None
    primary, dr = ctx.primary_region, ctx.dr_region
    namespace = namespace_of(ctx.objectives)
    r53 = ctx.aws.client("route53", "us-east-1")
    zone_id = r53.create_hosted_zone(Name=ZONE, CallerReference=secrets.token_hex(8))["HostedZone"][
        "Id"
    ]
    health = r53.create_health_check(
        CallerReference=secrets.token_hex(8),
        HealthCheckConfig={"Type": "TCP", "IPAddress": "127.0.0.1", "Port": site.primary.port},
    )["HealthCheck"]["Id"]
    changes = []
    for role, region, check in (("PRIMARY", primary, health), ("SECONDARY", dr, None)):
        record: dict[str, Any] = {
            "Name": RECORD,
            "Type": "CNAME",
            "SetIdentifier": f"{role.lower()}-{region}",
            "Failover": role,
            "TTL": 30,
            "ResourceRecords": [{"Value": _endpoint(region)}],
        }
        if check:
            record["HealthCheckId"] = check
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    # moto has no StopReplicationToReplica, so the DR copy of the secret is the standalone
    # secret that call would leave behind; the engine reports it as already standalone.
    for region in (primary, dr):
        ctx.aws.client("secretsmanager", region).create_secret(
            Name=secret_name(namespace, "database"),
            SecretString=json.dumps({"host": _endpoint(primary), "port": 5432}),
        )
        ssm = ctx.aws.client("ssm", region)
        for key, value in ((ACTIVE_REGION_KEY, primary), (DATABASE_HOST_KEY, _endpoint(primary))):
            ssm.put_parameter(Name=parameter_name(namespace, key), Value=value, Type="String")
    # repo2 is a directory here; in prod it is an S3 bucket in the DR region with this very
    # layout. Mirror its backup files so the engine's "DR backup present" check reads a bucket.
    bucket = f"drill-pgbackrest-repo2-{dr}"
    s3 = ctx.aws.client("s3", dr)
    _put_versioned_bucket(s3, bucket, dr)
    repo2 = site.dir / f"repo2-{dr}"
    for path in sorted((repo2 / "backup").rglob("*")):
        if path.is_file():
            key = "pgbackrest/" + str(path.relative_to(repo2))
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return {
        "drStandby": {
            "backend": "self-managed",
            "primaryRegion": primary,
            "drRegion": dr,
            "zoneId": zone_id.split("/")[-1],
            "recordName": RECORD,
            "healthCheckId": health,
            "primaryEndpoint": _endpoint(primary),
            "standbyEndpoint": _endpoint(dr),
            "port": 5432,
        },
        "database": {"repoBuckets": {"repo2": bucket}, "replicationSlotName": "dr_standby"},
    }


def _dns_answer(r53: Any, zone_id: str) -> str:
    """What the failover record answers while PRIMARY is served (moto runs no health checks)."""
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    for rs in sets:
        if rs["Name"].rstrip(".") == RECORD and rs.get("Failover") == "PRIMARY":
            return rs["ResourceRecords"][0]["Value"]
    raise DrctlError(f"no PRIMARY failover record {RECORD} in zone {zone_id}")


def scenario_outage(ctx: DrillContext, result: ScenarioResult) -> None:
    """The primary is killed under write load; the failover engine promotes the standby and
    flips DNS; the application (the writer) finds the new primary through Route 53."""
    from scripts.runbooks.failover import Connections, load_plan, run_failover

    assert ctx.aws is not None
    site = PgSite(ctx, "outage")
    ctx.cleanups.append(site.stop)
    with ctx.step("healthy platform: primary, streaming standby (slot), backup in repo2"):
        site.start(backups=(2,), standby=True)
    with ctx.step("DR control plane on moto: Route 53 failover records, secrets, SSM, repo2"):
        outputs = _dr_control_plane(ctx, site)
        plan = load_plan(STACK, outputs)
        r53 = ctx.aws.client("route53", "us-east-1")
        zone_id = outputs["drStandby"]["zoneId"]
        dns_before = _dns_answer(r53, zone_id)
    servers = {_endpoint(ctx.primary_region): site.primary, _endpoint(ctx.dr_region): site.standby}

    def connect_through_dns():
        return _connect(servers[_dns_answer(r53, zone_id)].conninfo("app"))

    writer = site.writer(reconnect=True, connect=connect_through_dns)
    with ctx.step(f"write load through {RECORD} ({WRITE_SECONDS:.0f} s)"):
        _run_load(writer, WRITE_SECONDS)
        if not writer.acked:
            raise DrctlError("the writer got no acknowledged write before the outage")

    incident_started = time.monotonic()
    incident_wall = time.time()
    with ctx.step(f"incident: the primary's host ({ctx.primary_region}) is lost (SIGKILL)"):
        site.primary.kill()
    with ctx.step("failover runbook: assess, isolate, promote, switch config and DNS, validate"):
        # Validation writes as the application's own role (never a superuser); the killed host
        # runs no fence guard here, so the drill states that it is powered off (the guard itself
        # is proven in tests/integration/test_failover_pg.py).
        app = site.standby.conninfo("app", user=DRILL_APP_ROLE)
        report = run_failover(
            plan,
            _MotoAws(ctx.aws),
            Connections(site.primary.conninfo("app"), site.standby.conninfo("app"), app),
            execute=True,
            yes=True,
            accept_unfenced=True,
            samples=("public.ledger",),
            journal=ctx.workdir / "failover-journal.json",
        )
    with ctx.step("the application writes again through DNS"):
        deadline = time.monotonic() + 60
        while writer.back_at is None and time.monotonic() < deadline and writer.is_alive():
            time.sleep(0.02)
        if writer.back_at is None:
            raise DrctlError("no write was accepted through DNS after the failover")
        time.sleep(0.5)  # let some post-failover writes land before stopping the load
        writer.stop()
    with ctx.step("verify: checksum of ledger on the promoted DR database"):
        check = compare(site.seed + writer.acked, ledger_rows(site.standby))
    result.rto_measured_s = round(time.monotonic() - incident_started, 3)
    result.rpo_measured_s = check.loss_window_s
    result.data = check
    steps = {row["name"]: row for row in report.steps}
    after_failover = [w for w in writer.acked if w.acked_at > incident_wall]
    result.evidence = {
        "incident_at": _iso(incident_wall),
        "dns_before": dns_before,
        "dns_after": _dns_answer(r53, zone_id),
        "writes_accepted_again_after_s": round(writer.back_at - incident_started, 3),
        "writes_accepted_after_failover": len(after_failover),
        "failover_runbook_rto_s": report.rto_s,
        "failover_steps_s": {name: row.get("duration_s") for name, row in steps.items()},
        "lag_at_assess": (steps.get("assess") or {}).get("result"),
        "standby_timeline": ((steps.get("promote") or {}).get("result") or {}).get("timeline"),
        "note": "repo2's backup files are mirrored to a moto bucket for the engine's "
        "DR-backup check; the DR secret is a standalone copy (moto has no "
        "StopReplicationToReplica)",
    }


# -- the drill -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    data_class: str
    dataset: str
    incident: str
    recovery: str
    needs_aws: bool
    needs_postgres: bool
    run: Callable[[DrillContext, ScenarioResult], None]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "human-error",
        "Human error",
        "critical",
        "database",
        "an operator drops table ledger while writes are acknowledged",
        "pgBackRest PITR (--type=time) to just before the drop into a new data dir; the table is "
        "copied back into the primary",
        needs_aws=False,
        needs_postgres=True,
        run=scenario_human_error,
    ),
    Scenario(
        "database-corruption",
        "Database corruption",
        "critical",
        "database",
        "the primary dies under load and its data directory is overwritten with random bytes",
        "restore the latest backup and archived WAL from repo2 (the DR region) into a new data "
        "dir and start it as the new primary",
        needs_aws=False,
        needs_postgres=True,
        run=scenario_database_corruption,
    ),
    Scenario(
        "data-centre-outage",
        "Data-centre outage",
        "critical",
        "database",
        "the primary's host is killed (SIGKILL) while the application writes through DNS",
        "drctl's failover runbook (scripts/runbooks/failover.py) assesses lag against the RPO, "
        "isolates, "
        "promotes the streaming standby, switches secrets/SSM config and flips the Route 53 "
        "failover record; the application reconnects through DNS",
        needs_aws=True,
        needs_postgres=True,
        run=scenario_outage,
    ),
    Scenario(
        "security-breach",
        "Security breach",
        "critical",
        "creator-audio",
        "an attacker tries to delete the object-locked backups and overwrites every audio track",
        "locked versions refuse deletion; each track's version from before the breach is copied "
        "back on top and the delete markers over the backups are removed",
        needs_aws=True,
        needs_postgres=False,
        run=scenario_security_breach,
    ),
    Scenario(
        "accidental-file-deletion",
        "Accidental file deletion",
        "critical",
        "creator-audio",
        "a cleanup job deletes two creators' folders of audio",
        "the delete markers are removed, so each object's newest version is current again",
        needs_aws=True,
        needs_postgres=False,
        run=scenario_accidental_deletion,
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)
_SCENARIO_HELP = f"Run only these (repeatable): {', '.join(SCENARIO_NAMES)}."


def drill_objectives() -> Objectives:
    """prod's declared objectives (Pulumi.prod.yaml), validated by the one model."""
    from scripts.local.evaluate import read_stack_config

    return parse_objectives(read_stack_config(STACK), STACK)


@dataclass
class DrillReport:
    stack: str
    started_at: str
    objectives: dict[str, Any]
    scenarios: list[ScenarioResult]
    setup_s: float = 0.0
    drill_s: float = 0.0
    teardown_s: float = 0.0
    host: dict[str, Any] = field(default_factory=dict)

    @property
    def all_met(self) -> bool:
        return bool(self.scenarios) and all(s.met for s in self.scenarios)

    def to_record(self) -> dict[str, Any]:
        return {
            "scenarios": [s.to_record() for s in self.scenarios],
            "all_met": self.all_met,
            "stack": self.stack,
            "started_at": self.started_at,
            "objectives": self.objectives,
            "durations_s": {
                "setup": round(self.setup_s, 3),
                "drill": round(self.drill_s, 3),
                "teardown": round(self.teardown_s, 3),
            },
            "host": self.host,
        }


def run_drill(
    names: list[str] | tuple[str, ...] = SCENARIO_NAMES,
    *,
    keep: bool = False,
    objectives: Objectives | None = None,
) -> DrillReport:
    """Start the embedded platform, run the scenarios in order, always tear everything down."""
    objectives = objectives or drill_objectives()
    chosen = [s for s in SCENARIOS if s.name in names]
    report = DrillReport(
        stack=STACK,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        objectives={
            name: {"rpo_s": c.rpo_s, "rto_s": c.rto_s} for name, c in objectives.classes.items()
        },
        scenarios=[],
        host={"cpus": os.cpu_count(), "pgbackrest": _pgbackrest_version()},
    )
    workdir = Path(tempfile.mkdtemp(prefix="drctl-drill-"))
    aws: LocalAws | None = None
    ctx: DrillContext | None = None
    setup_started = time.monotonic()
    try:
        from scripts.local.postgres import chown_to_postgres

        chown_to_postgres(workdir)
        workdir.chmod(0o755)
        if any(s.needs_postgres for s in chosen):
            from scripts.dataops.pgbackrest import require_binaries

            require_binaries()  # exit 4 naming what is missing, before anything starts
        if any(s.needs_aws for s in chosen):
            with progress.status("starting moto (S3, Secrets Manager, SSM, Route 53)..."):
                aws = LocalAws().start()
                aws.warm_up((objectives.regions.primary, objectives.regions.dr))
            progress.print(f"[green]✓[/] moto on {aws.endpoint_url}", markup=True)
        ctx = DrillContext(objectives, aws, workdir, keep)
        report.setup_s = time.monotonic() - setup_started
        drill_started = time.monotonic()
        for scenario in chosen:
            report.scenarios.append(_run_scenario(ctx, scenario))
        report.drill_s = time.monotonic() - drill_started
    finally:
        teardown_started = time.monotonic()
        with progress.status("tearing down the embedded platform..."):
            if ctx is not None:
                ctx.run_cleanups()
            if aws is not None:
                aws.stop()
            if keep:
                progress.print(f"kept the drill's files in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        report.teardown_s = time.monotonic() - teardown_started
    return report


def _run_scenario(ctx: DrillContext, scenario: Scenario) -> ScenarioResult:
    cls = ctx.objectives.of(scenario.data_class)
    result = ScenarioResult(
        name=scenario.name,
        title=scenario.title,
        data_class=scenario.data_class,
        dataset=scenario.dataset,
        incident=scenario.incident,
        recovery=scenario.recovery,
        rpo_objective_s=cls.rpo_s,
        rto_objective_s=cls.rto_s,
    )
    progress.print(f"[bold]{scenario.title}[/] [dim]({scenario.name})[/]", markup=True)
    ctx.result = result
    started = time.monotonic()
    try:
        scenario.run(ctx, result)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - one failed scenario must not hide the others
        result.error = f"{type(exc).__name__}: {exc}"
        progress.print(f"  [red]✗[/] {result.error}", markup=True)
    finally:
        ctx.run_cleanups()
        ctx.result = None
    result.duration_s = round(time.monotonic() - started, 3)
    result.finish()
    verdict = "[green]met[/]" if result.met else "[red]NOT met[/]"
    progress.print(
        f"  {verdict}: RPO {_fmt_s(result.rpo_measured_s)} (objective "
        f"{format_duration(result.rpo_objective_s)}), RTO {_fmt_s(result.rto_measured_s)} "
        f"(objective {format_duration(result.rto_objective_s)})",
        markup=True,
    )
    return result


def _pgbackrest_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["pgbackrest", "version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return None


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


# -- evidence -------------------------------------------------------------------------------------


def render_markdown(report: DrillReport) -> str:
    verdict = "all scenarios met their objectives" if report.all_met else "objectives NOT met"
    lines = [
        f"# DR drill evidence: {report.started_at}",
        "",
        f"Stack objectives: `Pulumi.{report.stack}.yaml`. Result: **{verdict}**.",
        f"Drill duration {report.drill_s:.1f} s (set-up {report.setup_s:.1f} s, "
        f"teardown {report.teardown_s:.1f} s, excluded).",
        "",
        "RPO measured = seconds of acknowledged writes lost; RTO measured = seconds from the "
        "first destructive action until service is back with its data verified. Data is "
        "compared by SHA-256 over every acknowledged write against what recovery brought back.",
        "",
        "| scenario | class | data expected | data recovered | checksums | RPO measured | "
        "RPO objective | RTO measured | RTO objective | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report.scenarios:
        data = s.data
        lines.append(
            "| {title} | {cls} | {exp} | {rec} | {sums} | {rpo} | {rpo_o} | {rto} | {rto_o} | "
            "{met} |".format(
                title=s.title,
                cls=s.data_class,
                exp=f"{data.expected_count} {_unit(s)}" if data else "n/a",
                rec=f"{data.recovered_count} {_unit(s)}" if data else "n/a",
                sums=(
                    ("match" if data.verified else "MISMATCH")
                    + (f" ({data.lost} lost)" if data.lost else "")
                    if data
                    else "n/a"
                ),
                rpo=_fmt_s(s.rpo_measured_s),
                rpo_o=f"{s.rpo_objective_s} s ({format_duration(s.rpo_objective_s)})",
                rto=_fmt_s(s.rto_measured_s),
                rto_o=f"{s.rto_objective_s} s ({format_duration(s.rto_objective_s)})",
                met="yes" if s.met else "**NO**",
            )
        )
    for s in report.scenarios:
        lines += [
            "",
            f"## {s.title} (`{s.name}`)",
            "",
            f"- Incident: {s.incident}.",
            f"- Recovery: {s.recovery}.",
            f"- Dataset: {s.dataset}, class {s.data_class}.",
            f"- RPO: measured {_fmt_s(s.rpo_measured_s)} against objective "
            f"{s.rpo_objective_s} s; RTO: measured {_fmt_s(s.rto_measured_s)} against objective "
            f"{s.rto_objective_s} s.",
        ]
        if s.data:
            lines += [
                f"- Expected {s.data.expected_count}, recovered {s.data.recovered_count}, "
                f"lost {s.data.lost}, wrong content {s.data.wrong}.",
                f"- SHA-256 expected `{s.data.expected_checksum}`",
                f"- SHA-256 recovered `{s.data.recovered_checksum}`",
            ]
            if s.data.note:
                lines.append(f"- {s.data.note}.")
        if s.error:
            lines.append(f"- **Error**: {s.error}")
        if s.timeline:
            lines += ["", "| step | seconds |", "|---|---|"]
            lines += [f"| {_cell(t['step'])} | {t['seconds']:.3f} |" for t in s.timeline]
        if s.evidence:
            lines += ["", "```json", json.dumps(s.evidence, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _unit(s: ScenarioResult) -> str:
    return "rows" if s.dataset == "database" else "objects"


def write_evidence(report: DrillReport, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "report.md", "json": out_dir / "report.json"}
    paths["markdown"].write_text(render_markdown(report))
    paths["json"].write_text(json.dumps(report.to_record(), indent=2, default=str) + "\n")
    return paths


# -- CLI ------------------------------------------------------------------------------------------


def _install_sigterm() -> Callable[[], None]:
    """SIGTERM unwinds like Ctrl-C, so every server and moto still get stopped."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    @app.command()
    def drill(
        local: bool = typer.Option(
            False, "--local", help="Run on embedded defaults (local PostgreSQL, moto)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        out_dir: Path = typer.Option(
            None, "--out", help="Evidence directory (default: evidence/drill-<UTC timestamp>)."
        ),
        scenario: list[str] = typer.Option(None, "--scenario", help=_SCENARIO_HELP),
        keep: bool = typer.Option(False, "--keep", help="Keep the drill's files for post-mortem."),
    ) -> None:
        """The quarterly DR simulation: break, recover, measure RPO/RTO against the objectives."""
        if not local:
            fail(
                "--local is required: the drill runs on embedded defaults only (use "
                "`drctl verify` against a live stack)",
                ExitCode.INVALID_CONFIG,
            )
        names = list(scenario or SCENARIO_NAMES)
        for name in names:
            if name not in SCENARIO_NAMES:
                fail(
                    f"--scenario {name!r} is not valid: one of {', '.join(SCENARIO_NAMES)}",
                    ExitCode.INVALID_CONFIG,
                )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out_dir = out_dir or Path("evidence") / f"drill-{stamp}"
        restore = _install_sigterm()
        try:
            report = run_drill(names, keep=keep)
        except DrctlError as exc:
            fail(str(exc), exc.code)
        except KeyboardInterrupt:
            progress.print("interrupted: the embedded platform was torn down; no evidence written")
            raise SystemExit(int(ExitCode.INTERRUPTED)) from None
        finally:
            restore()
        paths = write_evidence(report, out_dir)
        progress.print(
            f"drill took {report.drill_s:.1f} s (set-up {report.setup_s:.1f} s, teardown "
            f"{report.teardown_s:.1f} s); evidence: {paths['markdown']}, {paths['json']}"
        )
        if as_json:
            record = report.to_record()
            record["evidence"] = {k: str(v) for k, v in paths.items()}
            print_json(record)
        else:
            _print_table(report)
        if not report.all_met:
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))


def _print_table(report: DrillReport) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped output (make demo | tee) gets the full table, not one squeezed to 80 columns.
    console = out if out.is_terminal else Console(highlight=False, width=140)
    table = Table(title=f"DR drill against {report.stack} objectives", title_justify="left")
    for column in (
        "scenario",
        "data",
        "RPO measured",
        "RPO obj.",
        "RTO measured",
        "RTO obj.",
        "met",
    ):
        table.add_column(column)
    for s in report.scenarios:
        data = (
            f"{s.data.recovered_count}/{s.data.expected_count} {_unit(s)}, "
            + ("checksums match" if s.data.verified else "MISMATCH")
            if s.data
            else (s.error or "n/a")
        )
        table.add_row(
            s.name,
            data,
            _fmt_s(s.rpo_measured_s),
            format_duration(s.rpo_objective_s),
            _fmt_s(s.rto_measured_s),
            format_duration(s.rto_objective_s),
            "[green]yes[/]" if s.met else "[red]NO[/]",
        )
    console.print(table)
    console.print(
        f"all met: {'yes' if report.all_met else 'NO'}; drill {report.drill_s:.1f} s "
        "(set-up and teardown excluded)"
    )
