"""The error boundary (scripts/cli_errors.py): each kind of error, its code and its one line."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import NoCredentialsError

from components.objectives import ConfigError
from scripts.cli_errors import boundary
from scripts.common import DrctlError, ExitCode, fail


def _exit(capsys, error: BaseException, argv=("verify", "--json")):
    with pytest.raises(SystemExit) as raised, boundary(list(argv)):
        raise error
    captured = capsys.readouterr()
    return raised.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (DrctlError("--stack 'x': no stack", ExitCode.INVALID_CONFIG), 2, "--stack 'x'"),
        (ConfigError("platform-dr:criticalRpo", "soon", "a duration like 15m"), 2, "criticalRpo"),
        (NoCredentialsError(), 4, "AWS credentials"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (RuntimeError("boom"), 70, "RuntimeError: boom"),
    ],
    ids=["drctl", "config", "credentials", "interrupt", "bug"],
)
def test_each_error_is_one_line_its_code_and_json(capsys, monkeypatch, error, code, said):
    monkeypatch.delenv("DRCTL_DEBUG", raising=False)
    exit_code, out, err = _exit(capsys, error)
    assert exit_code == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and said in lines[0], err
    assert "Traceback" not in err
    assert json.loads(out) == {
        "error": {"code": code, "name": ExitCode(code).name.lower(), "message": lines[0][7:]}
    }


def test_without_json_nothing_on_stdout(capsys):
    exit_code, out, err = _exit(capsys, DrctlError("no"), argv=("verify",))
    assert exit_code == ExitCode.STEP_FAILED and out == "" and err.startswith("error: no")


def test_fail_prints_once_and_adds_the_json(capsys):
    with pytest.raises(SystemExit) as raised, boundary(["restore", "--json"]):
        fail("--to '/srv' is not empty", ExitCode.INVALID_CONFIG)
    captured = capsys.readouterr()
    assert raised.value.code == 2 and captured.err.count("error:") == 1
    assert json.loads(captured.out)["error"]["message"] == "--to '/srv' is not empty"


def test_a_verdict_exit_passes_through(capsys):
    with pytest.raises(SystemExit) as raised, boundary(["posture", "--json"]):
        raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
    assert raised.value.code == 1 and capsys.readouterr().out == ""


def test_drctl_debug_shows_the_traceback_of_a_bug(monkeypatch):
    monkeypatch.setenv("DRCTL_DEBUG", "1")
    with pytest.raises(RuntimeError), boundary(["verify"]):
        raise RuntimeError("boom")
