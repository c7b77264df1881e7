"""What PostgresBackup declares and renders, run against a real PostgreSQL 15.

- The Supabase dump job: the systemd unit text the supabase backend exports is run as systemd
  would run it (ExecStart with %% unescaped, EnvironmentFile as environment) with a real pg_dump
  against a real cluster. `aws` is replaced by a recorder on PATH (no network here) that stores
  the stream and its arguments; the stored dump is then restored with pg_restore and compared.
- The self-managed roles and physical slot: the SQL names the component declares are created on
  a real cluster and a real streaming standby uses the slot.
"""

from __future__ import annotations

import functools
import os
import shlex
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from components import postgres_backup as pb
from components import postgres_jobs as pj
from scripts.local.evaluate import evaluate_stack
from scripts.local.postgres import PG_BIN, LocalCluster, make_postgres_dir

pytestmark = pytest.mark.integration

FAKE_AWS = """#!/bin/sh
# Records `aws s3 cp - s3://bucket/key ...`: arguments to args.txt, the stream to the key's path.
printf '%s\\n' "$@" >> "$RECORD_DIR/args.txt"
target="$4"
path="$RECORD_DIR/$(echo "$target" | sed 's#^s3://##')"
mkdir -p "$(dirname "$path")"
cat > "$path"
"""


@functools.cache
def _supabase_outputs():
    return evaluate_stack("prod", overrides={"dbBackend": "supabase"}).outputs


def _exec_start(unit: str) -> list[str]:
    line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    command = line.removeprefix("ExecStart=")
    # systemd: %% is a literal %; any other % would be a specifier and must not appear.
    assert "%" not in command.replace("%%", ""), command
    # ...and $$ a literal $ (a lone $NAME word would be an environment substitution).
    return [arg.replace("$$", "$") for arg in shlex.split(command.replace("%%", "%"))]


@pytest.fixture
def recorder():
    root = Path(tempfile.mkdtemp(prefix="dump-it-"))
    bin_dir = root / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS)
    aws.chmod(aws.stat().st_mode | stat.S_IEXEC)
    (root / "s3").mkdir()
    return root


def _run_unit(unit: str, dsn: str, recorder: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{recorder / 'bin'}:{PG_BIN}:{os.environ['PATH']}",
        "PUBLISHER_DSN": dsn,
        "RECORD_DIR": str(recorder / "s3"),
    }
    return subprocess.run(_exec_start(unit), env=env, capture_output=True, text=True, timeout=120)


def test_rendered_daily_dump_job_produces_a_restorable_custom_format_dump(recorder):
    outputs = _supabase_outputs()
    unit = outputs["databaseArtefacts"]["systemd/supabase-dump-daily.service"]
    bucket = outputs["database"]["dumpBuckets"]["us-east-1"]
    with LocalCluster("supabase-stand-in", settings={"fsync": False}) as pg:
        pg.execute("create table tracks (id int primary key, title text)")
        pg.execute("insert into tracks select g, 'track ' || g from generate_series(1, 500) g")
        result = _run_unit(unit, pg.conninfo(), recorder)
        assert result.returncode == 0, result.stderr
        dumps = sorted((recorder / "s3" / bucket / pj.DUMP_PREFIX / "daily").glob("*.dump"))
        assert len(dumps) == 1 and dumps[0].stat().st_size > 0
        args = (recorder / "s3" / "args.txt").read_text().split("\n")
        key_arn = next(a for a in args if a.startswith("arn:aws:kms:us-east-1:"))
        assert args[args.index("--sse") + 1] == "aws:kms"
        assert args[args.index("--sse-kms-key-id") + 1] == key_arn
        # The stamp is a UTC time, rendered by date(1) from the unescaped %Y-%m-...
        assert dumps[0].name[:2] == "20" and dumps[0].name.endswith("Z.dump")

        pg.execute("create database restored")
        dump_copy = make_postgres_dir(Path(tempfile.mkdtemp(prefix="dump-copy-")), 0o755)
        (dump_copy / "d.dump").write_bytes(dumps[0].read_bytes())
        restore = subprocess.run(
            [
                PG_BIN / "pg_restore",
                "--no-owner",
                "--dbname",
                pg.conninfo("restored"),
                dump_copy / "d.dump",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restore.returncode == 0, restore.stderr
        assert pg.scalar("select count(*) from tracks", dbname="restored") == 500
        assert pg.scalar("select title from tracks where id = 42", dbname="restored") == "track 42"


def test_failed_pg_dump_fails_the_job_even_though_the_upload_succeeded(recorder):
    unit = _supabase_outputs()["databaseArtefacts"]["systemd/supabase-dump-monthly.service"]
    # Nothing listens on the discard port: pg_dump fails, the fake aws happily stores 0 bytes.
    result = _run_unit(unit, "host=127.0.0.1 port=9 dbname=postgres connect_timeout=2", recorder)
    assert result.returncode != 0
    assert "pg_dump" in result.stderr


def test_declared_roles_and_slot_work_on_a_real_cluster():
    outputs = evaluate_stack("prod", overrides={"dbBackend": "self-managed"}).outputs
    slot = outputs["database"]["replicationSlotName"]
    with LocalCluster("self-managed", settings={"fsync": False}) as pg:
        # What pulumi-postgresql issues for the two roles and the slot.
        pg.execute(f"create role {pb.REPLICATION_ROLE} login replication connection limit 5")
        pg.execute(f"create role {pb.MONITORING_ROLE} login connection limit 3")
        pg.execute(f"grant pg_monitor to {pb.MONITORING_ROLE}")
        pg.execute("select pg_create_physical_replication_slot(%s)", [slot])
        standby = pg.create_standby("dr", slot=slot)
        active = pg.wait_for(
            f"select active from pg_replication_slots where slot_name = '{slot}' and active"
        )
        assert active is True
        pg.execute("create role plain_user login")
        seen = {}
        for role in (pb.MONITORING_ROLE, "plain_user"):
            with pg.connect() as conn:
                conn.execute(f"set role {role}")
                seen[role] = conn.execute("select sent_lsn from pg_stat_replication").fetchone()[0]
        # pg_monitor sees the standby's replication progress; a plain role sees nulls.
        assert seen[pb.MONITORING_ROLE] is not None and seen["plain_user"] is None
        assert standby.is_in_recovery()


def test_rendered_cron_line_runs_the_same_dump(recorder):
    """cron.d variant, run as cron does: `\\%` -> `%`, then $SHELL -c on the command field.

    The only change to the rendered text is the env file's path (the real one lives in /etc)."""
    outputs = _supabase_outputs()
    cron = outputs["databaseArtefacts"]["cron.d/supabase-dump"]
    bucket = outputs["database"]["dumpBuckets"]["us-east-1"]
    shell = next(x for x in cron.splitlines() if x.startswith("SHELL=")).removeprefix("SHELL=")
    daily = next(x for x in cron.splitlines() if "/daily/" in x)
    fields = daily.split(None, 6)
    assert fields[5] == "postgres"
    command = fields[6]
    assert "%" not in command.replace("\\%", "")  # a bare % would end the command in cron
    with LocalCluster("supabase-stand-in", settings={"fsync": False}) as pg:
        pg.execute("create table likes as select g as id from generate_series(1, 50) g")
        env_file = recorder / "supabase-dump.env"
        env_file.write_text(f"PUBLISHER_DSN='{pg.conninfo()}'\n")
        command = command.replace(pj.DUMP_ENV_FILE, str(env_file)).replace("\\%", "%")
        env = {
            "PATH": f"{recorder / 'bin'}:{PG_BIN}:{os.environ['PATH']}",
            "RECORD_DIR": str(recorder / "s3"),
        }
        result = subprocess.run(
            [shell, "-c", command], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        dumps = list((recorder / "s3" / bucket / pj.DUMP_PREFIX / "daily").glob("*.dump"))
        assert len(dumps) == 1
        listing = subprocess.run(
            [PG_BIN / "pg_restore", "--list", dumps[0]], capture_output=True, text=True
        )
        assert listing.returncode == 0 and "TABLE public likes" in listing.stdout
