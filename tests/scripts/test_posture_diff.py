"""`drctl posture --diff REV`: a throwaway git repository holding a copy of this project.

Each side is evaluated by the real ``drctl posture --json`` in its own tree and process (Pulumi
mocks, no cloud), so these tests take a few seconds per evaluation.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scripts.checks import posture_diff
from scripts.cli import app
from scripts.common import DrctlError, ExitCode

ROOT = Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The project as it is in the working tree (tracked and new files), committed once."""
    listed = _git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    dest = tmp_path / "project"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "snapshot")
    return dest


def test_unchanged_tree_reports_no_posture_change(repo):
    result = CliRunner().invoke(
        app, ["posture", "--diff", "HEAD", "--stack", "prod", "--project-dir", str(repo)]
    )
    assert result.exit_code == 0, result.output
    assert "No posture change for `prod`" in result.stdout
    assert "Resources: " in result.stdout and "(±0)" in result.stdout


def test_relaxed_critical_rpo_moves_the_rendered_bounds_and_is_named(repo):
    stack_file = repo / "Pulumi.prod.yaml"
    text = stack_file.read_text()
    assert "platform-dr:criticalRpo: 15m" in text
    stack_file.write_text(text.replace("criticalRpo: 15m", "criticalRpo: 2h"))

    [diff] = posture_diff.posture_diff("HEAD", ["prod"], repo)

    changed = {c["name"]: c for c in diff["classes"]}
    assert set(changed) == {"critical"}, diff["classes"]
    critical = changed["critical"]
    assert critical["rpo_objective_s"] == {"before": 900, "after": 7200}
    assert {"rpo_objective_s", "bounds"} <= set(critical["changes"])
    # archive_timeout is rendered from the RPO (2h / 3 = 40 min): the archive bound the host's
    # postgresql.conf now gives, and the failover refusal at the new RPO.
    [removed] = [b for b in critical["bounds"]["removed"] if "(archive)" in b]
    [added] = [b for b in critical["bounds"]["added"] if "(archive)" in b]
    assert "loss at most 6 min" in removed and "loss at most 41 min" in added
    assert any("critical RPO 2 h" in b for b in critical["bounds"]["added"])
    assert diff["changed"] and diff["met"] == {"before": True, "after": True}

    markdown = posture_diff.render_markdown(diff, "HEAD")
    assert "| critical | met |" in markdown
    assert "15 min → 2 h" in markdown and "RPO objective" in markdown and "bounds" in markdown
    assert f"- bound removed: {removed}" in markdown
    assert f"- bound added: {added}" in markdown
    assert "important" not in markdown and "No posture change" not in markdown


def test_unknown_revision_is_a_clear_error(repo):
    with pytest.raises(DrctlError) as err:
        posture_diff.export_revision(repo, "no-such-branch", repo)
    assert err.value.code == ExitCode.INVALID_CONFIG
    assert "'no-such-branch' is not a commit" in str(err.value)


# ---------------------------------------------------------------------------------------------
# The comparison itself, on hand-made posture documents.


def _doc(resources=10, met=True, declared=900, mechanisms=("a: RTC 15 min",), problems=()):
    return {
        "stack": "prod",
        "resources": resources,
        "met": met,
        "classes": [
            {
                "name": "critical",
                "rpo_objective_s": 900,
                "rto_objective_s": 3600,
                "rpo_declared_s": declared,
                "met": met,
                "mechanisms": list(mechanisms),
                "problems": list(problems),
                "datasets": {"a": declared},
            }
        ],
        "violations": [],
    }


def test_identical_documents_do_not_change():
    diff = posture_diff.diff_postures(_doc(), _doc())
    assert diff["changed"] is False and diff["classes"] == []
    assert "No posture change" in posture_diff.render_markdown(diff, "main")


def test_verdict_change_is_shown_with_its_problem():
    new = _doc(met=False, declared=None, mechanisms=("a: CRR",), problems=("a: unbounded",))
    diff = posture_diff.diff_postures(_doc(resources=10), new)
    markdown = posture_diff.render_markdown(diff, "main")
    assert "| critical | met → **NOT MET** | 15 min → - | 15 min |" in markdown
    assert "- new problem: a: unbounded" in markdown
    assert "- mechanism removed: a: RTC 15 min" in markdown


def test_resource_count_alone_is_a_change_but_no_class_change():
    diff = posture_diff.diff_postures(_doc(resources=10), _doc(resources=13))
    assert diff["changed"] and diff["resources"]["delta"] == 3
    markdown = posture_diff.render_markdown(diff, "main")
    assert "Resources: 10 → 13 (+3)" in markdown
    assert "No class changed its verdict, mechanisms or declared RPO." in markdown


def test_new_stack_has_no_before():
    diff = posture_diff.diff_postures(None, _doc())
    assert diff["stack_is_new"] and diff["classes"][0]["changes"][0] == "new class"
    assert "is new" in posture_diff.render_markdown(diff, "main")


def test_each_side_is_judged_by_its_own_code(repo):
    """Only the working tree's rules change (critical now needs 4 copies). If the revision were
    evaluated with the working tree's code, both sides would fail alike and nothing would differ."""
    rules_file = repo / "policy" / "rules.py"
    text = rules_file.read_text()
    old = 'MIN_COPIES = {"critical": 3,'
    assert old in text
    rules_file.write_text(text.replace(old, 'MIN_COPIES = {"critical": 4,'))

    [diff] = posture_diff.posture_diff("HEAD", ["prod"], repo)

    [critical] = [c for c in diff["classes"] if c["name"] == "critical"]
    assert critical["met"] == {"before": True, "after": False}
    assert any("critical needs 4" in p for p in critical["problems"]["added"])
    assert diff["met"] == {"before": True, "after": False}
    assert "met → **NOT MET**" in posture_diff.render_markdown(diff, "HEAD")
