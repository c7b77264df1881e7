"""`drctl backup`/`drctl restore` argument handling and backend dispatch, without a database.

The pgBackRest paths themselves run against real PostgreSQL in tests/integration/. Here the
stack's backend is swapped with monkeypatch to check what each backend is routed to; the rds
restore itself is tested on moto in tests/scripts/test_rds_restore.py."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from scripts.common import ExitCode
from scripts.dataops import backup as backup_cli


def drctl(*args: str):
    app = typer.Typer()
    app.callback()(lambda: None)
    backup_cli.register(app)
    return CliRunner().invoke(app, list(args))


def test_prod_and_dr_stacks_are_self_managed():
    assert backup_cli.stack_backend("prod") == "self-managed"
    assert backup_cli.stack_backend("dr") == "self-managed"


def test_unknown_stack_is_invalid_config():
    result = drctl("backup", "--type", "full", "--stack", "nope")
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert "--stack 'nope'" in result.stderr


@pytest.mark.parametrize("backend", ["rds", "supabase"])
def test_backup_refuses_backends_that_back_up_themselves(monkeypatch, backend):
    monkeypatch.setattr(backup_cli, "stack_backend", lambda stack: backend)
    result = drctl("backup", "--type", "full")
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert f"dbBackend {backend!r}" in result.stderr


def test_restore_on_rds_dispatches_to_the_rds_restore_with_every_argument(monkeypatch):
    from scripts.dataops import rds_restore

    calls = []
    monkeypatch.setattr(backup_cli, "stack_backend", lambda stack: "rds")
    monkeypatch.setattr(rds_restore, "run", lambda **kw: calls.append(kw))
    result = drctl(
        "restore", "--stack", "prod", "--target-time", "latest", "--to", "db-copy",
        "--from-repo", "2", "--execute", "--yes", "--accept-data-loss", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert calls == [
        {
            "stack": "prod",
            "target_time": "latest",
            "to": "db-copy",
            "from_repo": 2,
            "execute": True,
            "yes": True,
            "as_json": True,
            "accept_data_loss": True,
        }
    ]


def test_restore_on_supabase_is_refused(monkeypatch):
    monkeypatch.setattr(backup_cli, "stack_backend", lambda stack: "supabase")
    result = drctl("restore", "--target-time", "latest", "--to", "/tmp/x")
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert "dbBackend 'supabase'" in result.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--from-repo", "3"], "--from-repo 3 is not valid"),
        (["--target-time", "yesterday"], "--target-time 'yesterday' is not valid"),
        (["--target-time", "2026-11-26T18:30:00"], "with a UTC offset"),
    ],
)
def test_bad_restore_arguments_name_the_argument(args, needle, tmp_path):
    base = {"--target-time": "latest", "--to": str(tmp_path / "new"), "--config": "/nonexistent"}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    result = drctl("restore", *[x for kv in base.items() for x in kv])
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert needle in " ".join(result.stderr.split())


def test_bad_backup_type_names_the_allowed_values(tmp_path):
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text("[global]\nrepo1-type=posix\nrepo1-path=/r\n")
    result = drctl("backup", "--type", "weekly", "--config", str(conf))
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert "--type 'weekly' is not valid: one of full, diff, incr" in " ".join(
        result.stderr.split()
    )
