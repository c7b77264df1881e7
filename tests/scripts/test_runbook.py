"""The journaled step engine shared by failover, failback and rebuild."""

from __future__ import annotations

import json

import pytest

from scripts.common import DrctlError, ExitCode
from scripts.runbooks.engine import Runbook, Step


class Recorder:
    """Steps that count their calls, and can be told to fail once."""

    def __init__(self):
        self.calls: list[str] = []
        self.fail_once: set[str] = set()

    def step(self, name, *, dry_run=False, result=None):
        def action(ctx):
            self.calls.append(name)
            if name in self.fail_once:
                self.fail_once.discard(name)
                raise ConnectionError(f"{name}: endpoint unreachable")
            return {"saw": sorted(ctx.results), **(result or {})}

        return Step(name, name.title(), action, plan=f"do {name}", dry_run=dry_run)

    def runbook(self, path, names=("assess", "promote", "switch", "validate")):
        steps = [
            self.step(n, dry_run=(n == "assess"), result={"n": i}) for i, n in enumerate(names)
        ]
        return Runbook("failover", "prod", steps, journal=path)


def test_runs_steps_in_order_and_journals_each_with_timing(tmp_path):
    rec, path = Recorder(), tmp_path / "j.json"
    report = rec.runbook(path).run(execute=True, yes=True)
    assert rec.calls == ["assess", "promote", "switch", "validate"]
    doc = json.loads(path.read_text())
    assert doc["status"] == "completed" and doc["runs"] == 1
    assert [s["name"] for s in doc["steps"]] == rec.calls
    assert all(s["status"] == "completed" and s["duration_s"] >= 0 for s in doc["steps"])
    # Later steps see earlier results.
    assert doc["steps"][3]["result"]["saw"] == ["assess", "promote", "switch"]
    assert report.status == "completed" and report.rto_s == doc["rto_s"] >= 0
    assert report.to_json()["steps"][0]["name"] == "assess"


def test_a_failed_step_stops_the_run_and_a_rerun_resumes_after_the_last_completed(tmp_path):
    rec, path = Recorder(), tmp_path / "j.json"
    rec.fail_once.add("switch")
    with pytest.raises(DrctlError) as raised:
        rec.runbook(path).run(execute=True, yes=True)
    assert raised.value.code == ExitCode.STEP_FAILED
    assert "rerun the same command to resume" in str(raised.value)
    doc = json.loads(path.read_text())
    assert doc["status"] == "failed"
    assert [(s["name"], s["status"]) for s in doc["steps"]] == [
        ("assess", "completed"),
        ("promote", "completed"),
        ("switch", "failed"),
    ]
    assert "endpoint unreachable" in doc["steps"][2]["error"]
    assert rec.calls == ["assess", "promote", "switch"]

    rec.calls.clear()
    report = rec.runbook(path).run(execute=True, yes=True)
    assert rec.calls == ["switch", "validate"]  # assess and promote are not repeated
    doc = json.loads(path.read_text())
    assert doc["status"] == "completed" and doc["runs"] == 2
    switch = doc["steps"][2]
    assert switch["attempts"] == 2 and switch["result"]["saw"] == ["assess", "promote"]
    assert [r["status"] for r in report.steps] == [
        "done-earlier",
        "done-earlier",
        "completed",
        "completed",
    ]


def test_rerunning_a_finished_run_changes_nothing(tmp_path):
    rec, path = Recorder(), tmp_path / "j.json"
    rec.runbook(path).run(execute=True, yes=True)
    before = path.read_text()
    rec.calls.clear()
    report = rec.runbook(path).run(execute=True, yes=True)
    assert rec.calls == [] and path.read_text() == before
    assert report.status == "already-completed"


def test_fresh_archives_a_finished_run_but_never_an_unfinished_one(tmp_path):
    rec, path = Recorder(), tmp_path / "j.json"
    rec.fail_once.add("promote")
    with pytest.raises(DrctlError):
        rec.runbook(path).run(execute=True, yes=True)
    with pytest.raises(DrctlError) as raised:
        rec.runbook(path).run(execute=True, yes=True, fresh=True)
    assert raised.value.code == ExitCode.REFUSED
    rec.runbook(path).run(execute=True, yes=True)
    rec.calls.clear()
    rec.runbook(path).run(execute=True, yes=True, fresh=True)
    assert rec.calls == ["assess", "promote", "switch", "validate"]
    assert len(list(tmp_path.glob("j.*.json"))) == 1  # the archived first run


def test_dry_run_runs_only_read_only_checks_and_writes_no_journal(tmp_path):
    rec, path = Recorder(), tmp_path / "j.json"
    report = rec.runbook(path).run(execute=False, yes=False)
    assert rec.calls == ["assess"] and not path.exists()
    assert [r["status"] for r in report.steps] == ["checked", "planned", "planned", "planned"]
    assert report.status == "dry-run" and not report.executed


def test_execute_without_yes_and_without_a_tty_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    rec, path = Recorder(), tmp_path / "j.json"
    with pytest.raises(SystemExit) as raised:
        rec.runbook(path).run(execute=True, yes=False)
    assert raised.value.code == ExitCode.REFUSED and rec.calls == [] and not path.exists()


def test_a_refusal_keeps_its_exit_code_and_is_retried_on_rerun(tmp_path):
    calls = []

    def assess(ctx):
        calls.append(ctx.options.get("accept"))
        if not ctx.options.get("accept"):
            raise DrctlError("lag 30s exceeds the RPO 15s", ExitCode.REFUSED)
        return {"lag_s": 30}

    book = Runbook("failover", "prod", [Step("assess", "Assess", assess)], journal=tmp_path / "j")
    with pytest.raises(DrctlError) as raised:
        book.run(execute=True, yes=True)
    assert raised.value.code == ExitCode.REFUSED and "exceeds the RPO" in str(raised.value)
    book.run(execute=True, yes=True, options={"accept": True})
    assert calls == [None, True]


def test_only_one_run_at_a_time(tmp_path):
    path = tmp_path / "j.json"
    inner = {}

    def nested(ctx):
        with pytest.raises(DrctlError) as raised:
            Runbook("failover", "prod", [Step("x", "X", lambda c: {})], journal=path).run(
                execute=True, yes=True
            )
        inner["code"] = raised.value.code
        return {}

    Runbook("failover", "prod", [Step("outer", "Outer", nested)], journal=path).run(
        execute=True, yes=True
    )
    assert inner["code"] == ExitCode.REFUSED


def test_an_interrupt_is_journaled_and_re_raised(tmp_path):
    path = tmp_path / "j.json"

    def interrupted(ctx):
        raise KeyboardInterrupt

    book = Runbook("failover", "prod", [Step("promote", "Promote", interrupted)], journal=path)
    with pytest.raises(KeyboardInterrupt):
        book.run(execute=True, yes=True)
    doc = json.loads(path.read_text())
    assert doc["status"] == "failed" and doc["steps"][0]["error"] == "KeyboardInterrupt"


def test_a_journal_from_another_runbook_is_refused(tmp_path):
    path = tmp_path / "j.json"
    Recorder().runbook(path, names=("a", "b")).run(execute=True, yes=True)
    doc = json.loads(path.read_text())
    doc["status"] = "failed"
    path.write_text(json.dumps(doc))
    with pytest.raises(DrctlError) as raised:
        Recorder().runbook(path, names=("x", "y")).run(execute=True, yes=True)
    assert raised.value.code == ExitCode.PRECONDITION_FAILED
