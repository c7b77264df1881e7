"""`drctl drill --local` end to end: real PostgreSQL 15, real pgBackRest, moto's server.

This is `make demo` under test. It runs the whole drill once (about a minute) through the real
entry point and checks the result as an operator would read it: the JSON on stdout, the exit
code, and the evidence files on disk. Nothing is skipped when a binary is missing: the drill
fails loudly instead (CI installs them with `make sysdeps`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.checks.drill import SCENARIO_NAMES, _fmt_s

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = (
    "name",
    "rpo_measured_s",
    "rto_measured_s",
    "rpo_objective_s",
    "rto_objective_s",
    "data_verified",
    "met",
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("evidence") / "drill"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "drill", "--local", "--json", "--out", str(out_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, out_dir


def test_every_scenario_is_met_and_the_exit_code_says_so(drill_run):
    proc, _ = drill_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert record["all_met"] is True
    assert [s["name"] for s in record["scenarios"]] == list(SCENARIO_NAMES)
    for scenario in record["scenarios"]:
        assert list(scenario)[: len(HEADLINE)] == list(HEADLINE)
        assert scenario["met"] is True, scenario
        assert scenario["data_verified"] is True
        assert scenario["error"] is None
        # prod's critical class (Pulumi.prod.yaml): 15 min RPO, 1 h RTO.
        assert (scenario["rpo_objective_s"], scenario["rto_objective_s"]) == (900, 3600)
        assert 0 <= scenario["rpo_measured_s"] <= scenario["rpo_objective_s"]
        assert 0 < scenario["rto_measured_s"] <= scenario["rto_objective_s"]
        data = scenario["data"]
        assert data["wrong"] == 0
        assert data["expected_count"] == data["recovered_count"] + data["lost"]
        if data["lost"] == 0:
            assert data["expected_checksum"] == data["recovered_checksum"]
            assert scenario["rpo_measured_s"] == 0


def test_scenarios_record_what_actually_happened(drill_run):
    proc, _ = drill_run
    by_name = {s["name"]: s for s in json.loads(proc.stdout)["scenarios"]}
    breach = by_name["security-breach"]["evidence"]
    assert breach["locked_version_deletes_refused"] == breach["locked_version_deletes_attempted"]
    assert breach["locked_version_deletes_attempted"] > 0
    assert breach["audio_plan"]["restore-version"] == breach["tracks_overwritten"] > 0
    deletion = by_name["accidental-file-deletion"]["evidence"]
    assert (
        deletion["objects_visible_after_incident"]
        < by_name["accidental-file-deletion"]["data"]["expected_count"]
    )
    assert deletion["delete_markers_removed"] > deletion["objects_deleted"] > 0
    human = by_name["human-error"]["evidence"]
    assert human["recovery"]["reached_target"] is True
    assert human["recovery"]["target_time"] != "latest"
    corruption = by_name["database-corruption"]["evidence"]
    assert corruption["damaged_primary_refused_to_start"]
    assert corruption["restored_from"].startswith("repo2")
    outage = by_name["data-centre-outage"]["evidence"]
    assert outage["dns_before"] != outage["dns_after"]
    assert outage["writes_accepted_after_failover"] > 0


def test_evidence_files_show_each_figure_beside_its_objective(drill_run):
    proc, out_dir = drill_run
    printed = json.loads(proc.stdout)
    markdown = (out_dir / "report.md").read_text()
    on_disk = json.loads((out_dir / "report.json").read_text())
    assert on_disk["scenarios"] == printed["scenarios"]
    assert on_disk["all_met"] is True
    for s in printed["scenarios"]:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {s['title']} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        rpo, rpo_objective, rto, rto_objective, met = cells[5:10]
        assert rpo == _fmt_s(s["rpo_measured_s"])
        assert rpo_objective.startswith(f"{s['rpo_objective_s']} s")
        assert rto == _fmt_s(s["rto_measured_s"])
        assert rto_objective.startswith(f"{s['rto_objective_s']} s")
        assert met == "yes"
        assert s["data"]["recovered_checksum"] in markdown


def test_the_drill_prints_its_own_duration(drill_run):
    proc, _ = drill_run
    durations = json.loads(proc.stdout)["durations_s"]
    assert durations["drill"] > 0
    match = re.search(r"drill took ([0-9.]+) s", proc.stderr)
    assert match and float(match.group(1)) == pytest.approx(durations["drill"], abs=0.1)
