"""`drctl posture`: the offline report, its JSON, and its exit codes."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from scripts.checks.posture import report
from scripts.cli import app
from scripts.local.evaluate import ROOT


@pytest.fixture
def project_copy(tmp_path):
    for name in ("Pulumi.yaml", "__main__.py", "Pulumi.prod.yaml", "Pulumi.dr.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


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
    assert critical["rpo_declared_s"] is not None and critical["rpo_declared_s"] <= 900
    audio = [m for m in critical["mechanisms"] if m.startswith("creator-audio:")][0]
    assert "3 copies in us-east-1/us-west-2/eu-west-1" in audio and "RTC 15 min" in audio
    assert document["met"] is True, document


def test_cli_json_and_exit_zero():
    result = CliRunner().invoke(app, ["posture", "--stack", "dr", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["stack"] == "dr"
    assert all(
        {"name", "rpo_objective_s", "rto_objective_s", "rpo_declared_s", "met", "mechanisms"}
        <= set(c)
        for c in document["classes"]
    )


def test_a_tighter_objective_than_the_mechanisms_can_meet_is_not_met(project_copy):
    """A 5-minute critical RPO: S3 RTC only promises 15 minutes, so posture must say no."""
    _stack_with(project_copy, "tight", criticalRpo="5m")
    result = CliRunner().invoke(
        app, ["posture", "-s", "tight", "--json", "--project-dir", str(project_copy)]
    )
    assert result.exit_code == 1
    critical = json.loads(result.stdout)["classes"][0]
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
