"""`drctl render`: the stack's database artefacts written as files, idempotently."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from scripts.common import ExitCode
from scripts.dataops import render
from scripts.local.evaluate import evaluate_stack


def _cli():
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    render.register(app)
    return app


def _run(*args):
    result = CliRunner().invoke(_cli(), ["render", *args])
    return result, " ".join((result.stdout + result.stderr).split())


def test_render_writes_exactly_the_stack_outputs(tmp_path, prod):
    out = tmp_path / "prod"
    result, text = _run("--stack", "prod", "--out", str(out), "--json")
    assert result.exit_code == 0, text
    doc = json.loads(result.stdout)
    expected = prod.outputs["databaseArtefacts"]
    assert doc["backend"] == "self-managed"
    assert {f["path"] for f in doc["files"]} == set(expected)
    assert {f["status"] for f in doc["files"]} == {"created"}
    written = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert written == expected
    conf = (out / "pgbackrest/pgbackrest.conf").read_text()
    assert f"repo2-s3-bucket={prod.outputs['database']['repoBuckets']['repo2']}" in conf
    archiving = (out / "postgresql/conf.d/pgbackrest-archiving.conf").read_text()
    assert "archive_timeout = '300s'" in archiving
    assert (out / "systemd/pgbackrest-full.timer").stat().st_mode & 0o777 == 0o644


def test_second_render_is_unchanged_and_an_edit_is_put_back(tmp_path):
    out = tmp_path / "r"
    _run("--stack", "dr", "--out", str(out))
    conf = out / "pgbackrest/pgbackrest.conf"
    original = conf.read_text()
    conf.write_text("# hand edit\n")
    (out / "operator-notes.txt").write_text("keep me")
    result, text = _run("--stack", "dr", "--out", str(out), "--json")
    statuses = {f["path"]: f["status"] for f in json.loads(result.stdout)["files"]}
    assert statuses.pop("pgbackrest/pgbackrest.conf") == "updated"
    assert set(statuses.values()) == {"unchanged"}
    assert conf.read_text() == original
    assert (out / "operator-notes.txt").read_text() == "keep me"


def test_supabase_backend_renders_the_dump_schedule(tmp_path):
    out = tmp_path / "s"
    result, text = _run("--stack", "prod", "--backend", "supabase", "--out", str(out))
    assert result.exit_code == 0, text
    timer = (out / "systemd/supabase-dump-monthly.timer").read_text()
    assert "OnCalendar=*-*-01 02:45:00 UTC" in timer
    expected = evaluate_stack("prod", overrides={"dbBackend": "supabase"}).outputs
    assert (out / "cron.d/supabase-dump").read_text() == expected["databaseArtefacts"][
        "cron.d/supabase-dump"
    ]


def test_rds_renders_nothing_and_says_why(tmp_path):
    result, text = _run("--stack", "prod", "--backend", "rds", "--out", str(tmp_path / "x"))
    assert result.exit_code == 0 and "renders no host artefacts" in text
    assert not (tmp_path / "x").exists()


def test_bad_input_is_a_clear_error(tmp_path):
    result, text = _run("--stack", "nope", "--out", str(tmp_path))
    assert result.exit_code == ExitCode.INVALID_CONFIG and "no stack 'nope'" in text
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result, text = _run("--stack", "prod", "--out", str(a_file))
    assert result.exit_code == ExitCode.INVALID_CONFIG and "not a directory" in text
    result, text = _run("--stack", "prod", "--backend", "oracle", "--out", str(tmp_path / "o"))
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert not (tmp_path / "o").exists()
