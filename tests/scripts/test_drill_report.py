"""The drill's evidence directory and HTML report, as an operator opens them.

The reports are built from drill results of the real shape: ``DrillReport``/``ScenarioResult``
(scripts/checks/drill/model.py) filled as a run fills them, with the verdict computed by the
model's own ``finish()``, written by ``write_evidence`` exactly as `drctl drill` writes them. One
run has a scenario that misses its RTO and loses data. No drill runs here (tests/integration/
test_drill.py runs real ones and checks the HTML they write).

Headless Chromium (the ``browser`` fixture, tests/conftest.py) opens ``report.html`` from disk
with no network: the test reads the browser's console log (no errors), the *visible* text (each
scenario and its verdict, NOT MET with its reasons), that the charts were drawn, and that the
page fetched nothing but itself. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scripts.checks.drill.html_report import render_html
from scripts.checks.drill.model import Step
from scripts.checks.drill.report import check_out_dir, new_evidence_dir, write_evidence
from scripts.cli import app
from scripts.common import DrctlError
from tests.scripts.drill_evidence import drill_report, full_screenshot, open_report, scenario


@pytest.fixture
def not_met_run(tmp_path) -> Path:
    report = drill_report(
        scenario("human-error", rto_s=3.2),
        scenario("database-corruption", rto_s=41.0, missing=3),  # RTO 41 s > 36 s, data lost
    )
    assert [s.met for s in report.scenarios] == [True, False]
    out = tmp_path / "evidence" / "drill-20261201T173000Z"
    write_evidence(report, out)
    return out


def test_the_report_renders_in_chromium_and_says_not_met_with_the_reasons(browser, not_met_run):
    page = open_report(browser, not_met_run / "report.html")
    full_screenshot(browser, not_met_run / "report-screenshot.png")
    assert (not_met_run / "report-screenshot.png").stat().st_size > 10_000
    assert page["errors"] == []
    assert page["fetched"] == []  # plotly.js is inline: nothing comes from a CDN
    # Two charts per scenario: objectives as bars, the steps as a timeline.
    assert page["charts"] == 4
    assert "NOT MET: 1 of 2 scenarios met their objectives (database-corruption)" in page["text"]
    sections = page["sections"]
    assert set(sections) == {"human-error", "database-corruption"}
    assert "MET" in sections["human-error"] and "NOT MET" not in sections["human-error"]
    broken = sections["database-corruption"]
    assert "NOT MET because:" in broken
    assert "RTO 41.000 s > 36 s" in broken
    assert "data not verified: 4997/5000 back; 3 missing" in broken
    # The objectives as the drill reports them (scaled, and what they stand for), and the steps
    # with their durations: on the timeline (on a bar, or as a point for an instant) and in words.
    assert "36 s (≙ 1h)" in page["text"] and "9 s (≙ 15m)" in page["text"]
    assert "promote promote +1.900 +2.100 0.200" in broken
    assert "validate validate +2.400 +41.000 38.600" in broken
    assert "write load load -11.200 -0.010 11.190" in broken  # off the timeline, in the table
    bars = browser.execute_script(
        "const d = document.getElementById('timeline-database-corruption').data;"
        "return d.flatMap(t => t.y.map((y, i) => [t.name, y, t.type === 'bar' ? t.x[i] : 0]));"
    )
    assert ["validate", "6. validate", 38.6] in bars and [
        "failure",
        "1. incident: the host is lost",
        0,
    ] in bars
    assert not any(phase in ("setup", "load") for phase, _, _ in bars)
    assert "database-corruption <b>happens</b>" in broken


def test_a_met_run_says_met_and_the_html_matches_report_json(browser, tmp_path):
    out = tmp_path / "drill"
    paths = write_evidence(drill_report(scenario("human-error", rto_s=3.2)), out)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    page = open_report(browser, paths["html"])
    full_screenshot(browser, out.parent / "met-screenshot.png")
    assert page["errors"] == []
    assert "MET: all 1 scenarios met their objectives" in page["text"]
    assert "NOT MET" not in page["text"]
    # The page is a function of report.json alone: re-rendering the saved record gives it back.
    assert paths["html"].read_text() == render_html(json.loads(paths["json"].read_text()))


def test_a_new_phase_or_scenario_appears_without_a_change(tmp_path):
    extra = scenario("priority-rebuild", rto_s=3.0)
    extra.steps.append(Step("notify the status page", "status-page", 0.5, 0.6))
    html = render_html(drill_report(extra).to_record())
    assert 'data-scenario="priority-rebuild"' in html and "notify the status page" in html


def test_tiers_and_named_checks_are_shown_with_their_own_verdicts(browser, tmp_path):
    rebuild = scenario("priority-rebuild", rto_s=3.0)
    rebuild.tiers = [
        {
            "tier": "critical",
            "met": True,
            "healthy": True,
            "elapsed_s": 3.0,
            "rto_s": 36.0,
            "declared_rto_s": 3600,
            "services": ["user-auth"],
        },
        {
            "tier": "important",
            "met": False,
            "healthy": False,
            "elapsed_s": None,
            "rto_s": 144.0,
            "declared_rto_s": 14400,
            "services": ["social-features"],
        },
    ]
    rebuild.checks = [
        {"name": "status page opened", "ok": True, "detail": "every service Outage"},
        {"name": "no secret in any message", "ok": False, "detail": "token in 1 message"},
    ]
    rebuild.finish()
    paths = write_evidence(drill_report(rebuild), tmp_path / "drill")
    page = open_report(browser, paths["html"])
    shown = page["sections"]["priority-rebuild"]
    assert page["errors"] == [] and "NOT MET because:" in shown
    assert "critical 36 s (≙ 1h) 3.000 s MET" in shown
    assert "important 144 s (≙ 4h) not healthy NOT MET" in shown
    assert "tier important NOT met: not healthy by its deadline" in shown
    assert "NOT ok: no secret in any message (token in 1 message)" in shown
    assert "ok: status page opened (every service Outage)" in shown


# -- evidence directories ------------------------------------------------------------------------


def test_evidence_directories_are_timestamped_in_utc_and_never_shared(tmp_path):
    # 14:00 in St. John's (the suite's zone) is 16:30 UTC.
    local = dt.datetime(2026, 12, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3.5)))
    first = new_evidence_dir(tmp_path, local)
    second = new_evidence_dir(tmp_path, local)
    assert first.name == "drill-20261201T163000Z" and second.name == "drill-20261201T163000Z-2"
    assert first.is_dir() and second.is_dir()


def test_out_that_already_holds_evidence_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "drill-old"
    write_evidence(drill_report(scenario("human-error", rto_s=3.2)), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(DrctlError, match="is not empty: evidence is never overwritten") as exc:
        check_out_dir(out)
    assert exc.value.code == 2
    with pytest.raises(FileExistsError):  # the writer itself never replaces a file either
        write_evidence(drill_report(scenario("human-error", rto_s=3.2)), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert check_out_dir(tmp_path / "empty") is True and check_out_dir(tmp_path / "empty") is False


def test_the_drill_refuses_a_non_empty_out_before_it_starts_anything(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "report.json").write_text("{}")
    result = CliRunner().invoke(app, ["drill", "--local", "--out", str(out)])
    assert result.exit_code == 2
    assert "is not empty: evidence is never overwritten" in result.stderr
    assert "nothing was started" in result.stderr and "time scale" not in result.stderr
    assert [p.name for p in out.iterdir()] == ["report.json"]
