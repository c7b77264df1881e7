"""`drctl verdict`: posture and drill in one final line (what `make demo` ends with).

Both inputs are real: posture documents from ``posture_of`` on stack files (prod as shipped; a
copy with a 5-minute critical RPO that S3 RTC cannot meet; prod with no restore evidence), and
drill records from the drill's model with the verdict computed by ``finish()`` (one scenario
misses its RTO). Every NOT MET comes from a fault in the config or the measured figures.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scripts.checks.drill.report import write_evidence
from scripts.checks.posture import EVIDENCE_PATH, posture_of
from scripts.cli import app
from scripts.local.evaluate import ROOT
from tests.scripts.drill_evidence import drill_report, scenario


@pytest.fixture(scope="module")
def postures(tmp_path_factory) -> dict[str, Path]:
    """posture --json files: prod met; prod + 'tight' (critical RPO 5 min) with one class NOT MET;
    prod with its restore evidence missing (UNKNOWN)."""
    project = tmp_path_factory.mktemp("project")
    for name in ("Pulumi.yaml", "__main__.py", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, project / name)
    config = yaml.safe_load((project / "Pulumi.prod.yaml").read_text())["config"]
    config["platform-dr:criticalRpo"] = "5m"
    (project / "Pulumi.tight.yaml").write_text(yaml.safe_dump({"config": config}))
    evidence = ROOT / EVIDENCE_PATH
    fresh = dt.datetime.fromisoformat(json.loads(evidence.read_text())["measured_at"])
    fresh += dt.timedelta(minutes=1)  # whenever the suite runs, the evidence is a minute old
    prod = posture_of("prod", project, evidence, fresh)
    tight = posture_of("tight", project, evidence, fresh)
    unknown = posture_of("prod", project, project / "no-evidence.json", fresh)
    assert (prod["verdict"], tight["verdict"], unknown["verdict"]) == ("met", "not met", "unknown")
    files = {}
    # What posture --json prints: {"stacks": [...]} for one stack and several.
    for name, stacks in (("met", [prod]), ("not-met", [prod, tight]), ("unknown", [unknown])):
        files[name] = project / f"posture-{name}.json"
        files[name].write_text(json.dumps({"stacks": stacks}))
    # A file saved by an older drctl (an object for one stack, a list for several) still reads.
    files["older"] = project / "posture-older.json"
    files["older"].write_text(json.dumps(prod))
    return files


@pytest.fixture
def drills(tmp_path) -> dict[str, Path]:
    met = drill_report(scenario("human-error", rto_s=3.2), scenario("data-centre-outage", rto_s=4))
    not_met = drill_report(
        scenario("human-error", rto_s=3.2), scenario("data-centre-outage", rto_s=41.0)
    )
    return {
        "met": write_evidence(met, tmp_path / "drill-met")["json"],
        "not-met": write_evidence(not_met, tmp_path / "drill-not-met")["json"],
    }


def _verdict(posture: Path, drill: Path, *args: str):
    return CliRunner().invoke(
        app, ["verdict", "--posture", str(posture), "--drill", str(drill), *args]
    )


def test_met_only_when_posture_and_drill_are_both_met(postures, drills):
    result = _verdict(postures["met"], drills["met"])
    assert result.exit_code == 0
    assert _verdict(postures["older"], drills["met"]).stdout == result.stdout
    report = drills["met"].with_name("report.html")
    assert result.stdout == (
        "VERDICT: MET — posture: 3 of 3 classes met (prod); drill: 2 of 2 scenarios met — "
        f"report: {report}\n"
    )


def test_a_class_posture_cannot_meet_makes_the_whole_verdict_not_met(postures, drills):
    result = _verdict(postures["not-met"], drills["met"])
    assert result.exit_code == 1
    line = result.stdout.strip()
    assert line.startswith("VERDICT: NOT MET — posture: 5 of 6 classes met (tight/critical: ")
    assert "exceeds the RPO 5 min" in line and "; drill: 2 of 2 scenarios met — report: " in line
    assert "\n" not in line


def test_a_scenario_that_missed_its_rto_makes_the_whole_verdict_not_met(postures, drills):
    result = _verdict(postures["met"], drills["not-met"])
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "VERDICT: NOT MET — posture: 3 of 3 classes met (prod); drill: 1 of 2 scenarios met "
        "(data-centre-outage: RTO 41.000 s > 36 s) — report: "
    )


def test_both_not_met_names_both_and_the_json_says_the_same(postures, drills):
    result = _verdict(postures["not-met"], drills["not-met"], "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["verdict"] == "not met"
    assert document["posture"]["classes_met"] == 5 and document["posture"]["classes"] == 6
    assert document["drill"]["not_met_because"] == ["data-centre-outage: RTO 41.000 s > 36 s"]
    assert document["line"].startswith("VERDICT: NOT MET — posture: 5 of 6")


def test_unknown_fails_unless_allowed_and_never_hides_a_not_met(postures, drills):
    result = _verdict(postures["unknown"], drills["met"])
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "VERDICT: UNKNOWN — posture: 2 of 3 classes met, 1 UNKNOWN (prod/critical: RTO UNKNOWN"
    )
    assert _verdict(postures["unknown"], drills["met"], "--allow-unknown").exit_code == 0
    worse = _verdict(postures["unknown"], drills["not-met"], "--allow-unknown")
    assert worse.exit_code == 1 and worse.stdout.startswith("VERDICT: NOT MET")


def test_the_drill_evidence_directory_is_accepted_and_a_missing_report_is_said(postures, drills):
    assert _verdict(postures["met"], drills["met"].parent).exit_code == 0
    drills["met"].with_name("report.html").unlink()
    result = _verdict(postures["met"], drills["met"])
    assert result.stdout.rstrip().endswith("report.html (missing)")


@pytest.mark.parametrize(
    ("which", "content", "message"),
    [
        ("--posture", None, "cannot be read (No such file or directory)"),
        ("--posture", "", "is not JSON"),
        ("--posture", '{"scenarios": []}', "is not `drctl posture --json` output"),
        ("--drill", "[1, 2]", "is not a drill record"),
        ("--drill", None, "cannot be read"),
    ],
)
def test_unreadable_input_is_exit_2_naming_the_file(
    postures, drills, tmp_path, which, content, message
):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    posture, drill = (bad, drills["met"]) if which == "--posture" else (postures["met"], bad)
    result = _verdict(posture, drill)
    assert result.exit_code == 2
    assert f"{which} '{bad}' {message}" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
