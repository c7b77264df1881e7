"""`drctl posture`: the offline report, its JSON, and its exit codes."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from scripts.checks.posture import EVIDENCE_PATH, report
from scripts.cli import app
from scripts.local.evaluate import ROOT


@pytest.fixture
def project_copy(tmp_path):
    for name in ("Pulumi.yaml", "__main__.py", "Pulumi.prod.yaml", "Pulumi.dr.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / EVIDENCE_PATH).parent.mkdir(parents=True)
    evidence = json.loads((ROOT / EVIDENCE_PATH).read_text())
    evidence["measured_at"] = dt.datetime.now(dt.UTC).isoformat()  # fresh, whenever this runs
    (tmp_path / EVIDENCE_PATH).write_text(json.dumps(evidence))
    return tmp_path


def _posture(project, *args):
    return CliRunner().invoke(app, ["posture", "--json", "--project-dir", str(project), *args])


def _stack_with(project, name, **changes):
    config = yaml.safe_load((project / "Pulumi.prod.yaml").read_text())["config"]
    config.update({f"platform-dr:{k}": v for k, v in changes.items()})
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))


def test_json_for_prod_has_every_class_met(prod):
    document = report(prod)
    assert document["stack"] == "prod" and document["resources"] == prod.resource_count > 50
    assert [c["name"] for c in document["classes"]] == ["critical", "important", "operational"]
    critical = document["classes"][0]
    assert critical["rpo_objective_s"] == 900 and critical["rto_objective_s"] == 3600
    # The worst dataset (S3 RTC, 15 min), not the best (WAL archiving, 6 min).
    assert critical["rpo_declared_s"] == 900 and critical["datasets"]["database"] == 360
    assert critical["verdict"] == "met" and critical["rto"]["verdict"] == "met"
    audio = [m for m in critical["mechanisms"] if m.startswith("creator-audio:")][0]
    assert "3 copies in us-east-1/us-west-2/eu-west-1" in audio and "RTC 15 min" in audio
    assert document["met"] is True, document


def test_cli_json_and_exit_zero():
    result = CliRunner().invoke(app, ["posture", "--stack", "dr", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)["stacks"][0]
    assert document["stack"] == "dr"
    assert all(
        {
            "name",
            "rpo_objective_s",
            "rto_objective_s",
            "rpo_declared_s",
            "verdict",
            "met",
            "mechanisms",
            "bounds",
            "rto",
        }
        <= set(c)
        for c in document["classes"]
    )
    assert document["verdict"] == "met" and document["evidence"]["status"] == "ok"


def test_a_tighter_objective_than_the_mechanisms_can_meet_is_not_met(project_copy):
    """A 5-minute critical RPO: S3 RTC only promises 15 minutes, so posture must say no."""
    _stack_with(project_copy, "tight", criticalRpo="5m")
    result = CliRunner().invoke(
        app, ["posture", "-s", "tight", "--json", "--project-dir", str(project_copy)]
    )
    assert result.exit_code == 1
    critical = json.loads(result.stdout)["stacks"][0]["classes"][0]
    assert critical["met"] is False
    assert any("creator-audio" in p and "exceeds the RPO 5 min" in p for p in critical["problems"])


def test_unknown_stack_is_a_config_error():
    result = CliRunner().invoke(app, ["posture", "--stack", "staging"])
    assert result.exit_code == 2
    assert "no stack 'staging'" in result.output


def test_posture_shows_aws_backup_coverage_and_who_covers_the_whole_hour_gap(prod):
    classes = {c["name"]: c for c in report(prod)["classes"]}
    critical = classes["critical"]["aws_backup"]
    assert critical["rpo_hours_checked"] == 1
    assert "whole hours" in critical["gap_note"] and "continuous backup" in critical["gap_note"]
    assert "creator-audio (worst case 15 min)" in critical["gap_note"]
    assert any(m.startswith("AWS Backup plan backup-critical") for m in critical["mechanisms"])
    # Operational data is audited at 24 h, as coarse as its objective: no gap to explain.
    assert classes["operational"]["aws_backup"]["gap_note"] is None


def test_missing_evidence_is_unknown_and_fails_unless_allowed(project_copy):
    (project_copy / EVIDENCE_PATH).unlink()
    _stack_with(project_copy, "copy")
    result = _posture(project_copy, "-s", "copy")
    assert result.exit_code == 1
    document = json.loads(result.stdout)["stacks"][0]
    critical = document["classes"][0]
    assert document["verdict"] == "unknown" and critical["verdict"] == "unknown"
    assert critical["met"] is False and document["evidence"]["status"] == "missing"
    assert any(p.startswith("RTO UNKNOWN") for p in critical["problems"])
    allowed = _posture(project_copy, "-s", "copy", "--allow-unknown")
    assert (
        allowed.exit_code == 0 and json.loads(allowed.stdout)["stacks"][0]["verdict"] == "unknown"
    )
    human = CliRunner().invoke(
        app, ["posture", "-s", "copy", "--allow-unknown", "--project-dir", str(project_copy)]
    )
    assert "UNKNOWN" in human.stdout and "evidence missing: no evidence file" in human.stdout


def test_stale_evidence_is_unknown(project_copy):
    path = project_copy / EVIDENCE_PATH
    evidence = json.loads(path.read_text())
    evidence["measured_at"] = "2020-01-01T00:00:00-03:30"
    path.write_text(json.dumps(evidence))
    _stack_with(project_copy, "copy")
    document = json.loads(_posture(project_copy, "-s", "copy").stdout)["stacks"][0]
    assert document["evidence"]["status"] == "stale" and document["verdict"] == "unknown"


def test_an_rto_no_recovery_path_can_meet_is_not_met_even_with_allow_unknown(project_copy):
    """A 2-minute critical RTO: detecting the outage alone takes 2.5 minutes."""
    _stack_with(project_copy, "fast", criticalRto="2m")
    result = _posture(project_copy, "-s", "fast", "--allow-unknown")
    assert result.exit_code == 1
    critical = json.loads(result.stdout)["stacks"][0]["classes"][0]
    assert critical["verdict"] == "not met" and critical["rto"]["verdict"] == "not met"
    assert any(
        "no path that survives a region loss fits the RTO" in p for p in critical["problems"]
    )


@pytest.mark.parametrize(
    ("key", "value"), [("dbSize", "lots"), ("dbSize", "5PB"), ("dbWalRate", "2GB")]
)
def test_bad_sizing_config_is_a_config_error_naming_the_key(project_copy, key, value):
    _stack_with(project_copy, "bad", **{key: value})
    result = CliRunner().invoke(app, ["posture", "-s", "bad", "--project-dir", str(project_copy)])
    assert result.exit_code == 2
    assert f"platform-dr:{key} = {value!r} is not valid" in result.output


def test_human_report_shows_enforced_detected_and_the_paths(prod):
    from scripts.checks import posture

    document = report(prod)
    with posture.out.capture() as captured:
        posture.render(document)
    text = captured.get()
    assert "database enforced (archive)" in text and "loss at most 6 min" in text
    assert "database guarded at failover (not a bound on region loss)" in text
    assert "PITR from repo2 (us-west-2) (survives region loss): met" in text
    assert "evidence: " in text and "bench/restore.py" in text
