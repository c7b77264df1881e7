"""`drctl supabase check` against a local stand-in for the Supabase Management API.

The stub is a real HTTP server on 127.0.0.1 answering GET /v1/projects/{ref}/database/backups in
the API's documented shape (V1BackupsResponse: region, walg_enabled, pitr_enabled, backups,
physical_backup_data), so the real urllib transport, headers and error handling are exercised.
"""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from scripts.common import DrctlError, ExitCode
from scripts.dataops import supabase

REF = "abcdefghijklmnopqrst"
TOKEN = "sbp_0123456789abcdef-never-print-me"


class _Api:
    def __init__(self):
        self.status = 200
        self.body: dict | str = {}
        self.requests: list[tuple[str, str]] = []


@pytest.fixture
def api(monkeypatch):
    state = _Api()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            state.requests.append((self.path, self.headers.get("Authorization", "")))
            body = state.body if isinstance(state.body, str) else json.dumps(state.body)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(supabase.API_URL_ENV, f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv(supabase.TOKEN_ENV, TOKEN)
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def _answer(pitr: bool, earliest_days: float = 8, latest_s: float = 60) -> dict:
    now = datetime.now(UTC).timestamp()
    return {
        "region": "us-east-1",
        "walg_enabled": True,
        "pitr_enabled": pitr,
        "backups": [],
        "physical_backup_data": {
            "earliest_physical_backup_date_unix": int(now - earliest_days * 86400),
            "latest_physical_backup_date_unix": int(now - latest_s),
        },
    }


def _cli():
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    supabase.register(app)
    return app


def _run(*args):
    result = CliRunner().invoke(_cli(), ["supabase", "check", *args])
    # Rich wraps long lines on the terminal; compare the words.
    return result, " ".join((result.stdout + result.stderr).split())


def test_pitr_on_and_covering_the_window_passes(api):
    api.body = _answer(pitr=True)
    result, text = _run("--project-ref", REF, "--json")
    assert result.exit_code == 0, text
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["pitr_enabled"] is True and doc["region"] == "us-east-1"
    assert api.requests == [(f"/v1/projects/{REF}/database/backups", f"Bearer {TOKEN}")]
    assert TOKEN not in text


def test_pitr_off_is_objective_not_met_with_operator_steps(api):
    api.body = _answer(pitr=False)
    result, text = _run("--project-ref", REF)
    assert result.exit_code == ExitCode.OBJECTIVE_NOT_MET
    assert "PITR add-on is off" in text and "Add-ons" in text
    assert TOKEN not in text


def test_window_too_short_and_stale_latest_are_reported(api):
    api.body = _answer(pitr=True, earliest_days=2, latest_s=3600)
    result, text = _run("--project-ref", REF, "--json")
    assert result.exit_code == ExitCode.OBJECTIVE_NOT_MET
    problems = json.loads(result.stdout)["problems"]
    assert any("reaches back 2.0 days" in p and "7 days" in p for p in problems)
    assert any("beyond the critical RPO of 900 s" in p for p in problems)


@pytest.mark.parametrize(
    "status, body, code, needle",
    [
        (401, {"message": "Unauthorized"}, ExitCode.PRECONDITION_FAILED, "refused the token"),
        (404, {"message": "not found"}, ExitCode.PRECONDITION_FAILED, "not found"),
        (500, "oops", ExitCode.STEP_FAILED, "HTTP 500"),
        (200, {"unexpected": True}, ExitCode.STEP_FAILED, "no 'pitr_enabled'"),
        (200, "not json", ExitCode.STEP_FAILED, "no 'pitr_enabled'"),
    ],
)
def test_api_errors_are_clear_and_never_show_the_token(api, status, body, code, needle):
    api.status, api.body = status, body
    result, text = _run("--project-ref", REF)
    assert result.exit_code == code
    assert needle in text and TOKEN not in text


def test_bad_ref_missing_token_and_unreachable_api(api, monkeypatch):
    result, text = _run("--project-ref", "Not-A-Ref")
    assert result.exit_code == ExitCode.INVALID_CONFIG and "20 lowercase letters" in text
    assert api.requests == []
    result, text = _run("--stack", "prod")  # prod is an example: its ref is a placeholder
    assert result.exit_code == ExitCode.INVALID_CONFIG and "--project-ref" in text
    assert "is an example" in text and api.requests == []
    monkeypatch.delenv(supabase.TOKEN_ENV)
    result, text = _run("--project-ref", REF)
    assert result.exit_code == ExitCode.PRECONDITION_FAILED and supabase.TOKEN_ENV in text
    monkeypatch.setenv(supabase.TOKEN_ENV, TOKEN)
    monkeypatch.setenv(supabase.API_URL_ENV, "http://127.0.0.1:9")  # discard port: refused
    result, text = _run("--project-ref", REF)
    assert result.exit_code == ExitCode.PRECONDITION_FAILED and "cannot reach" in text


def test_injected_transport_and_time():
    calls = []

    def transport(method, url, headers, timeout):
        calls.append((method, url))
        return 200, json.dumps(_answer(pitr=True)).encode()

    status = supabase.check(
        REF,
        pitr_window_days=7,
        critical_rpo_s=900,
        token="t",
        transport=transport,
        api_url="https://api.example",
        now=datetime.now(UTC) + timedelta(days=30),  # a month on, the latest point is stale
    )
    assert calls == [("GET", f"https://api.example/v1/projects/{REF}/database/backups")]
    assert not status.ok and "latest restorable point" in status.problems[0]
    with pytest.raises(DrctlError):
        supabase.check_project_ref("abc")
