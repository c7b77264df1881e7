"""`drctl drill --local` end to end: real PostgreSQL 15, real pgBackRest, moto's server.

This is `make demo` under test, plus every way it must say NOT MET. One fixture starts every run
at once (three at a time, each its own process through the real entry point): the whole drill at
the default time scale, one run per fault (only the scenario the fault targets, `--scenario X
--inject F`), and one whose rendered archive_timeout exceeds the RPO. The tests then read each
run as an operator would: the JSON on stdout, the exit code, the evidence files.

Nothing is skipped when a binary is missing: the drill fails loudly instead (CI installs them
with `make sysdeps`). Nothing here asserts a duration: figures are compared with the objectives
the drill itself reports, or ordered against each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.checks.drill.faults import FAULTS
from scripts.checks.drill.runner import SCENARIO_NAMES

ROOT = Path(__file__).resolve().parents[2]
PARALLEL = 3
PRIORITY_FAULT_SCALE = 600

pytestmark = pytest.mark.integration


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    out_dir: Path

    @property
    def record(self) -> dict:
        return json.loads(self.proc.stdout)

    def scenario(self, name: str) -> dict:
        return next(s for s in self.record["scenarios"] if s["name"] == name)


def _drill(out_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scripts.cli",
        "drill",
        "--local",
        "--json",
        "--out",
        str(out_dir),
        *args,
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("drill")
    commands = {"healthy": _drill(root / "healthy")}
    for fault in FAULTS:
        commands[fault.name] = _drill(
            root / fault.name, "--scenario", fault.scenario, "--inject", fault.name
        )
        if fault.scenario == "priority-rebuild":
            # Its faults make a tier wait for its deadline: at 1/600 that is the critical
            # tier's 6 s and the important tier's 24 s (144 s at the default 1/100).
            commands[fault.name] += ["--time-scale", str(PRIORITY_FAULT_SCALE)]
    commands["archive-timeout-beyond-rpo"] = [
        sys.executable,
        "-m",
        "tests.integration.drill_mechanism_case",
    ]

    def run(name: str) -> tuple[str, Run]:
        proc = subprocess.run(commands[name], cwd=ROOT, capture_output=True, text=True, timeout=900)
        return name, Run(proc, root / name)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(pool.map(run, commands))


# -- the healthy drill --------------------------------------------------------------------------


def test_every_scenario_is_met_on_the_stated_time_scale(runs):
    healthy = runs["healthy"]
    assert healthy.proc.returncode == 0, healthy.proc.stderr[-4000:]
    record = healthy.record
    assert record["all_met"] is True and record["time_scale"] == 100
    assert "time scale 100" in healthy.proc.stderr
    assert [s["name"] for s in record["scenarios"]] == list(SCENARIO_NAMES)
    for s in record["scenarios"]:
        assert list(s)[:5] == ["name", "met", "data_verified", "rpo_s", "rto_s"]
        assert s["met"] is True and s["data_verified"] is True and s["error"] is None, s
        # prod's critical class (15 min RPO, 1 h RTO) on a time scale of 100.
        assert s["objectives"] == {
            "rpo_s": 9.0,
            "rto_s": 36.0,
            "declared_rpo_s": 900,
            "declared_rto_s": 3600,
        }
        assert 0 <= s["rpo_s"] <= s["objectives"]["rpo_s"]
        assert 0 < s["rto_s"] <= s["objectives"]["rto_s"]
        data = s["data"]
        assert data["back"] == data["promised"] > 0
        assert data["expected_checksum"] == data["recovered_checksum"]
        assert s["recovery_point"]["value"] and s["recovery_point"]["how"]


def test_steps_are_timed_from_the_failure_instant(runs):
    for s in runs["healthy"].record["scenarios"]:
        steps = s["steps"]
        failures = [t for t in steps if t["phase"] == "failure"]
        assert failures[0]["start_s"] == 0 and failures[0]["name"].startswith("incident")
        assert all(t["end_s"] <= 0 for t in steps if t["phase"] in ("setup", "load")), steps
        assert all(t["end_s"] >= t["start_s"] for t in steps)
        recovery = [t["end_s"] for t in steps if t["phase"] not in ("setup", "load", "verify")]
        service = [t["end_s"] for t in steps if t["phase"] in ("service", "validate")]
        if s["tiers"]:
            # The region rebuild's RTO is its critical tier's: until that tier's last service
            # answered its health check, inside the tier's validate step.
            assert s["rto_s"] == s["tiers"][0]["elapsed_s"]
            critical = next(
                t for t in steps if t["name"].endswith("Tier critical: validate health")
            )
            assert critical["start_s"] <= s["rto_s"] <= critical["end_s"] + 0.001
            continue
        # RTO ends when the service is back (the app may get in while a tool is still exiting).
        assert s["rto_s"] == pytest.approx(max(service), abs=0.001)
        assert s["rto_s"] <= max(recovery) + 0.001


def test_database_host_loss_includes_detection_at_the_declared_cadence(runs):
    record = runs["healthy"].record
    assert record["mechanisms"]["declared"]["detection"]["poll_interval_s"] == 60
    assert record["mechanisms"]["scaled"]["detection"]["poll_interval_s"] == pytest.approx(0.6)
    for name in ("database-corruption", "data-centre-outage"):
        s = runs["healthy"].scenario(name)
        detection = s["detection"]
        assert detection["by"].startswith("Route 53 CLOUDWATCH_METRIC health check")
        assert detection["polls"] > detection["failure_threshold"] == 1
        assert detection["alarm_periods"] == 2
        assert 0 < detection["unhealthy_at_s"] <= detection["at_s"] < s["rto_s"]
        # Recovery starts when the alarm fires, not when the host dies.
        acting = [t for t in s["steps"] if t["phase"] in ("assess", "fence", "promote", "restore")]
        assert acting and min(t["start_s"] for t in acting) >= detection["at_s"]


def test_the_outage_runs_the_runbook_and_the_application_follows_dns(runs):
    s = runs["healthy"].scenario("data-centre-outage")
    phases = [t["phase"] for t in s["steps"]]
    for phase in (
        "detection",
        "assess",
        "fence",
        "promote",
        "config",
        "dns",
        "validate",
        "service",
    ):
        assert phase in phases, phases
    evidence = s["evidence"]
    assert evidence["runbook_refused"] is False
    assert evidence["dns_before"] == "db.us-east-1.drill.internal"
    assert evidence["dns_answers"][-1]["answer"] == "db.us-west-2.drill.internal"
    assert evidence["ttl_s"] == pytest.approx(0.6)
    assert evidence["acknowledged_by_promoted_database"] > 0
    assert s["recovery_point"]["kind"] == "lsn"


def test_point_in_time_recovery_stops_at_its_target_and_later_writes_stay(runs):
    s = runs["healthy"].scenario("human-error")
    assert s["recovery_point"]["kind"] == "time"
    # The suite runs outside UTC (tests/conftest.py): the target reaches pgBackRest with an offset.
    assert not s["recovery_point"]["value"].endswith("+00:00")
    recovery = s["evidence"]["recovery"]
    assert recovery["reached_target"] is True and recovery["target_time"] != "latest"
    assert s["evidence"]["writes_after_recovery"] > 0
    corruption = runs["healthy"].scenario("database-corruption")
    assert corruption["evidence"]["restored_from"].startswith("repo2")
    assert corruption["evidence"]["damaged_primary_refused_to_start"]
    assert corruption["evidence"]["archive_timeout_s"] == 3  # 300 s declared / 100


def test_object_scenarios_keep_uploads_made_during_the_incident(runs):
    breach = runs["healthy"].scenario("security-breach")["evidence"]
    assert (
        breach["locked_version_deletes_refused"] == breach["locked_version_deletes_attempted"] > 0
    )
    assert breach["audio_plan"]["restore-version"] == breach["tracks_overwritten"] > 0
    assert breach["uploads_during_the_incident"] > 0
    deletion = runs["healthy"].scenario("accidental-file-deletion")["evidence"]
    assert deletion["delete_markers_removed"] > deletion["objects_deleted"] > 0


def test_evidence_states_the_scale_what_is_simulated_and_each_figure(runs):
    healthy = runs["healthy"]
    printed = healthy.record
    on_disk = json.loads((healthy.out_dir / "report.json").read_text())
    markdown = (healthy.out_dir / "report.md").read_text()
    assert on_disk["scenarios"] == printed["scenarios"]
    assert "Time scale **100**" in markdown and "## What is simulated" in markdown
    assert any("moto" in line for line in printed["simulated"])
    assert any("directories" in line for line in printed["simulated"])
    assert any("resolver" in line for line in printed["simulated"])
    for s in printed["scenarios"]:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {s['title']} |"))
        assert row.rstrip().endswith("| yes |")
        assert s["data"]["recovered_checksum"] in markdown
    for text in (healthy.proc.stdout, healthy.proc.stderr, markdown):
        assert "cipher-pass" not in text and "password" not in text.lower()


def test_the_drill_prints_its_own_duration_and_scale(runs):
    healthy = runs["healthy"]
    durations = healthy.record["durations_s"]
    assert durations["drill"] > 0
    assert f"drill took {durations['drill']:.1f} s at time scale 100" in healthy.proc.stderr


# -- every way it must say NOT MET --------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_every_fault_turns_its_scenario_not_met(runs, fault):
    run = runs[fault.name]
    assert run.proc.returncode == 1, run.proc.stderr[-4000:]
    record = run.record
    assert record["all_met"] is False and record["faults"] == [fault.name]
    s = run.scenario(fault.scenario)
    assert s["met"] is False and s["faults"] == [fault.name]
    assert s["not_met_because"]


def test_archive_stalled_shows_as_lost_writes_beyond_the_rpo(runs):
    s = runs["archive-stalled"].scenario("database-corruption")
    assert s["data_verified"] is True  # repo2 gave back all it held ...
    assert s["rpo_s"] > s["objectives"]["rpo_s"]  # ... which was nothing since the backup


def test_a_restore_that_stops_short_is_refused_by_the_verified_latest(runs):
    """pgBackRest and Postgres end such a recovery normally; drctl's restore to latest checks it
    against the newest archived segment pgbackrest info lists and fails it (issue 11, item 9)."""
    s = runs["restore-short"].scenario("database-corruption")
    assert "a gap in the archive" in s["error"] and "must not be used" in s["error"]
    assert s["met"] is False


def test_a_paused_standby_is_refused_and_its_unreplayed_writes_are_missing(runs):
    s = runs["replay-paused"].scenario("data-centre-outage")
    assert s["evidence"]["runbook_refused"] is True and s["rto_s"] is None
    assert s["data"]["missing"] > 0


def test_stopped_replication_loses_writes_beyond_the_rpo(runs):
    s = runs["replication-stopped"].scenario("data-centre-outage")
    assert s["evidence"]["runbook_refused"] is True
    assert s["rpo_s"] > s["objectives"]["rpo_s"]


def test_a_lossy_copy_back_fails_the_data_check_whatever_the_rpo(runs):
    s = runs["copy-back-lossy"].scenario("human-error")
    assert s["rpo_s"] <= s["objectives"]["rpo_s"] and s["rto_s"] <= s["objectives"]["rto_s"]
    assert s["data_verified"] is False and s["data"]["missing"] > 0


def test_skipped_object_recovery_leaves_deleted_objects_missing(runs):
    s = runs["object-recovery-skipped"].scenario("accidental-file-deletion")
    assert s["data_verified"] is False and s["data"]["missing"] > 0


def test_unlocked_backups_are_deleted_by_the_attacker(runs):
    s = runs["backup-unlocked"].scenario("security-breach")
    assert s["evidence"]["locked_version_deletes_succeeded"] > 0
    assert any(k.startswith("pgbackrest/") for k in s["data"]["examples"]["missing"])


def test_an_archive_timeout_beyond_the_rpo_is_not_met(runs):
    run = runs["archive-timeout-beyond-rpo"]
    assert run.proc.returncode == 1, run.proc.stderr[-4000:]
    record = run.record
    assert record["mechanisms"]["declared"]["archive_timeout_s"] == 3600
    assert record["mechanisms"]["effective"]["archive_timeout_s"] == 36  # beyond the 9 s RPO
    s = run.scenario("database-corruption")
    assert s["met"] is False and s["data_verified"] is True
    assert s["rpo_s"] > s["objectives"]["rpo_s"]


# -- region rebuild in priority order -----------------------------------------------------------


def test_the_region_rebuild_reports_each_tier_against_its_own_rto(runs):
    s = runs["healthy"].scenario("priority-rebuild")
    assert [t["tier"] for t in s["tiers"]] == ["critical", "important", "enhanced", "optional"]
    # prod's tier RTOs (1 h, 4 h, 24 h, 24 h) on a time scale of 100.
    assert [t["rto_s"] for t in s["tiers"]] == [36, 144, 864, 864]
    assert [t["declared_rto_s"] for t in s["tiers"]] == [3600, 14400, 86400, 86400]
    elapsed = [t["elapsed_s"] for t in s["tiers"]]
    assert all(t["met"] for t in s["tiers"]) and elapsed == sorted(elapsed)  # in tier order
    assert sum(len(t["services"]) for t in s["tiers"]) >= 3
    checks = {c["name"]: c for c in s["checks"]}
    assert all(c["ok"] for c in checks.values()), checks
    for name in (
        "status page: incident opened with every service down",
        "status page: tiers started in order",
        "status page: final state matches the health checks",
        "notified: pager (level 0)",
        "notified: media",
        "no secret in any message, page or journal",
    ):
        assert name in checks
    phases = {t["phase"] for t in s["steps"]}
    assert {"assess", "restore", "dns", "validate", "verify"} <= phases
    markdown = (runs["healthy"].out_dir / "report.md").read_text()
    assert "| critical | 36 s (≙ 1h) |" in markdown


def _priority(run: Run) -> dict:
    s = run.scenario("priority-rebuild")
    assert s["met"] is False and run.record["time_scale"] == PRIORITY_FAULT_SCALE
    return s


def _tiers(s: dict) -> dict:
    return {t["tier"]: t for t in s["tiers"]}


def _failed_checks(s: dict) -> set[str]:
    return {c["name"] for c in s["checks"] if not c["ok"]}


def test_an_unhealthy_critical_service_fails_its_tier_and_the_next_waits_for_the_deadline(runs):
    s = _priority(runs["unhealthy-service"])
    tiers = _tiers(s)
    assert tiers["critical"]["met"] is False and tiers["critical"]["elapsed_s"] is None
    assert s["rto_s"] is None and tiers["important"]["met"] is True
    started = next(t for t in s["steps"] if t["name"].endswith("Tier important (RTO 4h): start"))
    assert started["end_s"] >= tiers["critical"]["rto_s"]  # it waited for the deadline


def test_a_slow_tier_misses_its_own_rto_while_the_critical_tier_is_met(runs):
    s = _priority(runs["slow-tier"])
    tiers = _tiers(s)
    assert tiers["critical"]["met"] is True and tiers["important"]["met"] is False
    assert any(r.startswith("tier important NOT met") for r in s["not_met_because"])


def test_a_lost_dataset_copy_stops_its_services_and_fails_the_data_check(runs):
    s = _priority(runs["missing-dependency"])
    assert _tiers(s)["important"]["met"] is False
    assert s["data_verified"] is False and s["data"]["missing"] > 0
    assert all(k.startswith("user-assets/") for k in s["data"]["examples"]["missing"])


def test_an_unwritable_status_page_fails_only_the_page_check(runs):
    s = _priority(runs["status-page-down"])
    assert all(t["met"] for t in s["tiers"]) and s["data_verified"]
    assert _failed_checks(s) == {"status page published"}


def test_a_receiver_that_is_down_fails_every_audience_check(runs):
    s = _priority(runs["receiver-down"])
    assert all(t["met"] for t in s["tiers"]) and s["data_verified"]
    failed = _failed_checks(s)
    assert {"notified: team chat", "notified: pager (level 0)", "notified: media"} <= failed
    assert "no secret in any message, page or journal" not in failed


def test_a_token_pasted_into_a_template_is_caught_as_a_leaked_secret(runs):
    s = _priority(runs["secret-in-template"])
    assert all(t["met"] for t in s["tiers"])
    leak = next(c for c in s["checks"] if c["name"] == "no secret in any message, page or journal")
    assert leak["ok"] is False and "level0" in leak["detail"]
    assert "drill-level0-" not in json.dumps(s["evidence"])  # named, never its value
