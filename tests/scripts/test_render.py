"""`drctl render`: host artefacts from a deployed stack's real outputs, never from mocks by chance.

The Pulumi CLI cannot be installed here, so "real outputs" are what `pulumi stack output --json`
prints, saved to a file (--outputs): the outputs of the real program evaluated for a stack that is
not an example (real-looking hosts, no `platform-dr:example`), written as that JSON.
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from scripts.common import ExitCode
from scripts.dataops import render
from scripts.local.evaluate import evaluate_stack

REAL = {
    "example": False,
    "dbHost": "pg-primary.db.musicco.net",
    "dnsZoneName": "musicco.net",
    "drDbHost": "pg-subscriber.db.musicco.net",
}


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


@pytest.fixture(scope="module")
def live_outputs(tmp_path_factory):
    """What `pulumi stack output --json -s live` would print for a deployed, non-example stack."""
    evaluation = evaluate_stack("prod", overrides=REAL)
    path = tmp_path_factory.mktemp("outputs") / "live.json"
    path.write_text(json.dumps(evaluation.outputs))
    return path, evaluation.outputs


def test_without_real_outputs_render_refuses_and_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi CLI
    result, text = _run("--stack", "live", "--out", str(tmp_path / "o"))
    assert result.exit_code == ExitCode.PRECONDITION_FAILED
    assert "cannot render stack live from real outputs" in text
    assert "pulumi stack output --json -s live > outputs.json" in text and "--example" in text
    assert not (tmp_path / "o").exists()


def test_an_example_stack_renders_examples_only(tmp_path, live_outputs):
    path, _ = live_outputs
    result, text = _run("--stack", "prod", "--outputs", str(path), "--out", str(tmp_path / "o"))
    assert result.exit_code == ExitCode.REFUSED and "marked platform-dr:example" in text
    assert not (tmp_path / "o").exists()


def test_render_writes_exactly_the_real_outputs(tmp_path, live_outputs):
    path, outputs = live_outputs
    out = tmp_path / "host"
    result, text = _run("--stack", "live", "--outputs", str(path), "--out", str(out), "--json")
    assert result.exit_code == 0, text
    doc = json.loads(result.stdout)
    expected = {**outputs["databaseArtefacts"], **outputs["probeArtefacts"]}
    assert doc["backend"] == "self-managed" and doc["example"] is False
    assert {f["status"] for f in doc["files"]} == {"created"}
    written = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert written == expected
    assert not any("EXAMPLE" in text for text in written.values())
    conf = (out / "pgbackrest/pgbackrest.conf").read_text()
    assert f"repo2-s3-bucket={outputs['database']['repoBuckets']['repo2']}" in conf
    probe = (out / "systemd/platform-dr-primary-probe.service").read_text()
    assert "pg_isready -q -h pg-primary.db.musicco.net -p 5432" in probe
    assert (out / "systemd/pgbackrest-full.timer").stat().st_mode & 0o777 == 0o644


def test_example_files_say_so_and_hold_placeholders_only(tmp_path):
    out = tmp_path / "ex"
    result, text = _run("--stack", "prod", "--example", "--out", str(out), "--json")
    assert result.exit_code == 0, text
    doc = json.loads(result.stdout)
    assert doc["example"] is True and doc["files"]
    for f in doc["files"]:
        body = (out / f["path"]).read_text()
        assert body.startswith("# EXAMPLE (drctl render --example)")
    conf = (out / "pgbackrest/pgbackrest.conf").read_text()
    assert "111122223333" in conf and "example" in conf.split("repo1-s3-bucket=")[1].split()[0]


def test_a_changed_host_file_is_diffed_and_kept_until_execute(tmp_path, live_outputs):
    path, _ = live_outputs
    out = tmp_path / "host"
    args = ("--stack", "live", "--outputs", str(path), "--out", str(out))
    _run(*args)
    conf = out / "pgbackrest/pgbackrest.conf"
    rendered = conf.read_text()
    conf.write_text(rendered.replace("process-max", "process-max-edited-by-hand"))
    (out / "operator-notes.txt").write_text("keep me")

    result, text = _run(*args)
    assert result.exit_code == 0, text
    assert "--- " in result.stdout and "process-max-edited-by-hand" in result.stdout
    assert "dry run: overwrite 1 changed host file(s)" in text
    assert "process-max-edited-by-hand" in conf.read_text()  # kept

    result, text = _run(*args, "--execute")  # no TTY and no --yes
    assert result.exit_code == ExitCode.REFUSED and "without --yes" in text
    assert "process-max-edited-by-hand" in conf.read_text()

    result, text = _run(*args, "--execute", "--yes", "--json")
    statuses = {f["path"]: f["status"] for f in json.loads(result.stdout)["files"]}
    assert statuses.pop("pgbackrest/pgbackrest.conf") == "updated"
    assert set(statuses.values()) == {"unchanged"}
    assert conf.read_text() == rendered
    assert (out / "operator-notes.txt").read_text() == "keep me"


def test_a_secret_in_the_outputs_is_refused(tmp_path, live_outputs):
    _, outputs = live_outputs
    masked = {**outputs, "probeArtefacts": {"systemd/x.service": "[secret]"}}
    path = tmp_path / "masked.json"
    path.write_text(json.dumps(masked))
    result, text = _run("--stack", "live", "--outputs", str(path), "--out", str(tmp_path / "o"))
    assert result.exit_code == ExitCode.PRECONDITION_FAILED and "never hold a secret" in text


def test_supabase_backend_renders_the_dump_schedule_as_an_example(tmp_path):
    out = tmp_path / "s"
    result, text = _run("--stack", "prod", "--example", "--backend", "supabase", "--out", str(out))
    assert result.exit_code == 0, text
    timer = (out / "systemd/supabase-dump-monthly.timer").read_text()
    assert "OnCalendar=*-*-01 02:45:00 UTC" in timer


def test_rds_renders_only_the_primary_probe(tmp_path):
    out = tmp_path / "x"
    result, text = _run("--stack", "prod", "--example", "--backend", "rds", "--out", str(out))
    assert result.exit_code == 0, text
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [
        "systemd/platform-dr-primary-probe.service",
        "systemd/platform-dr-primary-probe.timer",
    ]


def test_bad_input_is_a_clear_error(tmp_path, live_outputs):
    path, _ = live_outputs
    result, text = _run("--stack", "nope", "--example", "--out", str(tmp_path))
    assert result.exit_code == ExitCode.INVALID_CONFIG and "no stack 'nope'" in text
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result, text = _run("--stack", "live", "--outputs", str(path), "--out", str(a_file))
    assert result.exit_code == ExitCode.INVALID_CONFIG and "not a directory" in text
    result, text = _run(
        "--stack", "live", "--outputs", str(path), "--backend", "rds", "--out", str(tmp_path / "o")
    )
    assert result.exit_code == ExitCode.INVALID_CONFIG and "only applies to --example" in text
    result, text = _run(
        "--stack", "live", "--outputs", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")
    )
    assert result.exit_code == ExitCode.INVALID_CONFIG and "no such file" in text
    result, text = _run(
        "--stack", "prod", "--example", "--backend", "oracle", "--out", str(tmp_path / "o")
    )
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert not (tmp_path / "o").exists()
