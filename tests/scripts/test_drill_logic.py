"""scripts/checks/drill.py without the platform: the data check, the verdicts and the CLI's guards.

The embedded platform itself is exercised end to end in tests/integration/test_drill.py.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scripts.checks import drill
from scripts.checks.drill import Scenario, ScenarioResult, Write, compare
from scripts.cli import app


def writes(*spec: tuple[str, str, float]) -> list[Write]:
    return [Write(k, c, t) for k, c, t in spec]


def test_compare_everything_back_means_no_loss_and_equal_checksums():
    expected = writes(("1", "a", 10.0), ("2", "b", 11.0))
    check = compare(expected, {"1": "a", "2": "b"})
    assert check.verified and check.lost == 0 and check.loss_window_s == 0
    assert check.expected_checksum == check.recovered_checksum


def test_compare_measures_the_window_of_lost_acknowledged_writes():
    expected = writes(("1", "a", 10.0), ("2", "b", 11.0), ("3", "c", 12.5), ("4", "d", 13.0))
    check = compare(expected, {"1": "a", "2": "b"})
    assert check.lost == 2
    # From the newest surviving write (11.0) to the newest lost one (13.0).
    assert check.loss_window_s == pytest.approx(2.0)
    assert check.verified  # what is back matches the acknowledged writes up to the loss
    assert check.expected_checksum != check.recovered_checksum


def test_compare_only_the_newest_version_of_a_key_counts():
    expected = writes(("k", "v1", 1.0), ("k", "v2", 2.0))
    assert compare(expected, {"k": "v2"}).verified
    stale = compare(expected, {"k": "v1"})
    assert not stale.verified and stale.wrong == 1


def test_compare_wrong_content_is_never_verified():
    check = compare(writes(("1", "a", 1.0), ("2", "b", 2.0)), {"1": "a", "2": "tampered"})
    assert check.wrong == 1 and not check.verified


def test_compare_can_forbid_any_loss():
    assert not compare(writes(("1", "a", 1.0)), {}, loss_allowed=False).verified


def _result(**over) -> ScenarioResult:
    base = dict(
        name="x",
        title="X",
        data_class="critical",
        dataset="database",
        incident="",
        recovery="",
        rpo_objective_s=900,
        rto_objective_s=3600,
        rpo_measured_s=1.0,
        rto_measured_s=10.0,
        data=compare(writes(("1", "a", 1.0)), {"1": "a"}),
    )
    return ScenarioResult(**{**base, **over})


@pytest.mark.parametrize(
    "over, met",
    [
        ({}, True),
        ({"rpo_measured_s": 901.0}, False),
        ({"rto_measured_s": 3600.5}, False),
        ({"rto_measured_s": None}, False),
        ({"error": "boom"}, False),
        ({"data": compare(writes(("1", "a", 1.0)), {"1": "b"})}, False),
        ({"data": None}, False),
    ],
)
def test_a_scenario_is_met_only_with_verified_data_within_both_objectives(over, met):
    result = _result(**over)
    result.finish()
    assert result.met is met


def _fake(name: str, run) -> Scenario:
    return Scenario(name, name.title(), "critical", "creator-audio", "i", "r", False, False, run)


def test_a_failing_scenario_is_reported_not_met_and_the_rest_still_run(monkeypatch, tmp_path):
    def boom(ctx, result):
        raise RuntimeError("restore failed")

    def fine(ctx, result):
        result.data = compare(writes(("k", "v", 1.0)), {"k": "v"})
        result.rpo_measured_s, result.rto_measured_s = 0.0, 1.0

    monkeypatch.setattr(drill, "SCENARIOS", (_fake("first", boom), _fake("second", fine)))
    monkeypatch.setattr(drill, "SCENARIO_NAMES", ("first", "second"))
    result = CliRunner().invoke(app, ["drill", "--local", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    record = json.loads(result.stdout)
    assert record["all_met"] is False
    first, second = record["scenarios"]
    assert first["met"] is False and "restore failed" in first["error"]
    assert second["met"] is True
    assert "**NO**" in (tmp_path / "report.md").read_text()


def test_unknown_scenario_is_refused_naming_it(tmp_path):
    result = CliRunner().invoke(
        app, ["drill", "--local", "--scenario", "meteor", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--scenario 'meteor'" in result.output and "human-error" in result.output
    assert not (tmp_path / "report.md").exists()


def test_drill_without_local_is_refused():
    result = CliRunner().invoke(app, ["drill"])
    assert result.exit_code == 2
    assert "--local" in result.output


def test_missing_server_binaries_stop_the_drill_before_anything_starts(monkeypatch, tmp_path):
    from pathlib import Path

    from scripts.dataops import pgbackrest

    monkeypatch.setattr(pgbackrest, "PG_BIN", Path("/nonexistent/pg15/bin"))
    result = CliRunner().invoke(
        app, ["drill", "--local", "--scenario", "human-error", "--out", str(tmp_path)]
    )
    assert result.exit_code == 4
    assert "/nonexistent/pg15/bin/postgres" in result.output
    assert not (tmp_path / "report.json").exists()
