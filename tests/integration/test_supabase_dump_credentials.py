"""The rendered Supabase dump job keeps the database password off pg_dump's command line.

A process's arguments are world-readable (``ps``, /proc/PID/cmdline), its environment and a 0600
file are not. The job reads the DSN (host, port, user, database) from its EnvironmentFile and the
password from a pgpass file: systemd hands the root-only file to the unit as a credential
(``LoadCredential=pgpass:...``, ``PGPASSFILE=%d/pgpass``), cron points PGPASSFILE at it.

Here the rendered unit runs as systemd would (ExecStart unescaped, EnvironmentFile and Environment
applied, ``%d`` the credentials directory) against a real PostgreSQL 15 that demands a
SCRAM password from the dump role, with ``pg_dump`` and ``aws`` wrapped to record their arguments.
The dump succeeding proves the password came from the pgpass file; the recorded arguments prove
it never reached a command line. A DSN that carries the password is refused before pg_dump runs.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from components import postgres_jobs as pb
from scripts.local.postgres import PG_BIN, LocalCluster

pytestmark = pytest.mark.integration

PASSWORD = "dump-Pa55-do-not-show"
BUCKET = "dump-bucket"
KEY = "arn:aws:kms:us-east-1:111122223333:key/dump"

RECORD = """#!/bin/sh
printf '%s\\n' "$0 $*" >> "$RECORD_DIR/argv.txt"
{tail}
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _unit(kind: str = "daily") -> str:
    files = pb.render_dump_schedule(BUCKET, KEY, "us-east-1")
    return files[f"systemd/supabase-dump-{kind}.service"]


def _as_systemd_runs_it(unit: str, env_file: Path, credentials: Path) -> tuple[list[str], dict]:
    """ExecStart argv and the environment systemd would give it (EnvironmentFile, Environment)."""
    lines = unit.splitlines()
    command = next(x for x in lines if x.startswith("ExecStart=")).removeprefix("ExecStart=")
    argv = [a.replace("$$", "$") for a in shlex.split(command.replace("%%", "%"))]
    env = {}
    for line in env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    for line in lines:
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value.replace("%d", str(credentials))
    return argv, env


@pytest.fixture
def stand_in(tmp_path):
    """A cluster whose dump role must authenticate with a SCRAM password over TCP."""
    with LocalCluster("supabase-dump-auth", settings={"fsync": False}) as pg:
        pg.execute(f"create role dumper login password '{PASSWORD}'")
        pg.execute("grant pg_read_all_data to dumper")
        pg.execute("create table plays as select g as id from generate_series(1, 40) g")
        hba = pg.data_dir / "pg_hba.conf"
        hba.write_text("host all dumper 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        pg.execute("select pg_reload_conf()")
        yield pg


@pytest.fixture
def recorders(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "rec").mkdir()
    _executable(bin_dir / "pg_dump", RECORD.format(tail=f'exec {PG_BIN}/pg_dump "$@"'))
    _executable(bin_dir / "aws", RECORD.format(tail='cat > "$RECORD_DIR/dump"'))
    return tmp_path


def _run(unit: str, dsn: str, tmp: Path) -> subprocess.CompletedProcess:
    env_file = tmp / "supabase-dump.env"
    env_file.write_text(f"PUBLISHER_DSN={dsn}\n")
    env_file.chmod(0o600)
    credentials = tmp / "credentials"  # what systemd makes of LoadCredential=pgpass:FILE
    credentials.mkdir(exist_ok=True)
    pgpass = credentials / "pgpass"
    pgpass.write_text(f"127.0.0.1:*:*:dumper:{PASSWORD}\n")
    pgpass.chmod(0o400)
    argv, env = _as_systemd_runs_it(unit, env_file, credentials)
    env.update(PATH=f"{tmp / 'bin'}:{os.environ['PATH']}", RECORD_DIR=str(tmp / "rec"))
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_unit_declares_the_password_as_a_credential_not_an_argument():
    unit = _unit()
    assert f"LoadCredential=pgpass:{pb.DUMP_PGPASS_FILE}" in unit.splitlines()
    assert "Environment=PGPASSFILE=%d/pgpass" in unit.splitlines()
    cron = pb.render_dump_schedule(BUCKET, KEY, "us-east-1")["cron.d/supabase-dump"]
    assert all(f"export PGPASSFILE={pb.DUMP_PGPASS_FILE}" in line for line in cron.splitlines()[2:])


def test_dump_authenticates_from_the_pgpass_file_and_no_argument_holds_the_password(
    stand_in, recorders
):
    dsn = f"host=127.0.0.1 port={stand_in.port} dbname=postgres user=dumper"
    result = _run(_unit(), dsn, recorders)
    assert result.returncode == 0, result.stderr
    argv = (recorders / "rec" / "argv.txt").read_text()
    assert "pg_dump --format=custom" in argv and "user=dumper" in argv
    assert PASSWORD not in argv and PASSWORD not in result.stderr
    listing = subprocess.run(
        [PG_BIN / "pg_restore", "--list", recorders / "rec" / "dump"],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0 and "TABLE public plays" in listing.stdout


def test_without_the_credential_the_dump_fails(stand_in, recorders):
    """Not-met case: the same job with no usable pgpass file cannot authenticate."""
    dsn = f"host=127.0.0.1 port={stand_in.port} dbname=postgres user=dumper"
    unit = _unit().replace("Environment=PGPASSFILE=%d/pgpass", "Environment=PGPASSFILE=%d/none")
    result = _run(unit, dsn, recorders)
    assert result.returncode != 0
    assert "password" in result.stderr.lower()


@pytest.mark.parametrize(
    "dsn",
    [
        f"host=127.0.0.1 dbname=postgres user=dumper password={PASSWORD}",
        f"postgresql://dumper:{PASSWORD}@127.0.0.1/postgres",
    ],
    ids=["keyword", "uri"],
)
def test_a_dsn_with_the_password_is_refused_before_pg_dump_runs(recorders, dsn):
    result = _run(_unit(), dsn, recorders)
    assert result.returncode == 2
    assert "must not hold the password" in result.stderr and PASSWORD not in result.stderr
    assert not (recorders / "rec" / "argv.txt").exists()
