"""scripts/checks/drill/ without the database platform: the exact data check, the measured RPO,
the verdict, the declared mechanisms and the time scale, detection and DNS, faults, and the CLI's
guards. The platform itself runs end to end in tests/integration/test_drill.py.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from policy.artefacts import parse_ini, pgbackrest_option
from scripts.checks.drill import command, runner
from scripts.checks.drill.datacheck import (
    AFTER_POINT,
    PROMISED,
    UNCERTAIN,
    check_data,
    measure_rpo,
)
from scripts.checks.drill.faults import FAULTS, ScenarioFaults, check_faults
from scripts.checks.drill.model import ScenarioResult, Write
from scripts.checks.drill.monitor import CachingResolver, FailoverAuthority, HealthMonitor
from scripts.checks.drill.pitr import drop_copy_rows
from scripts.checks.drill.platform import archived_until, parse_commits, scale_push_timeout
from scripts.checks.drill.restore import _unreadable_after
from scripts.checks.drill.timescale import (
    Detection,
    detection_from_declared,
    mechanisms_from_evaluation,
)
from scripts.cli import app
from scripts.common import DrctlError


def w(key: str, content: str, acked: float | None, sent: float | None = None) -> Write:
    return Write(key, content, sent if sent is not None else (acked or 0.0) - 0.001, acked)


# -- the exact data check -----------------------------------------------------------------------


def test_every_promised_write_back_exactly_is_verified():
    placed = [(w("1", "a", 1.0), PROMISED), (w("2", "b", 2.0), PROMISED)]
    check = check_data(placed, {"1": "a", "2": "b"}, "p")
    assert check.verified and check.back == check.promised == 2
    assert check.expected_checksum == check.recovered_checksum


def test_a_single_missing_promised_write_fails_whatever_the_rpo():
    placed = [(w(str(i), f"c{i}", float(i)), PROMISED) for i in range(100)]
    recovered = {str(i): f"c{i}" for i in range(99)}  # the oldest 99 are back, the newest not
    check = check_data(placed, recovered, "p")
    assert not check.verified
    assert check.missing == 1 and check.examples["missing"] == ["99"]
    assert check.expected_checksum != check.recovered_checksum


def test_an_empty_restore_is_never_verified():
    check = check_data([(w("1", "a", 1.0), PROMISED)], {}, "p")
    assert not check.verified and check.missing == 1 and check.back == 0


def test_a_write_after_the_recovery_point_must_not_be_back():
    placed = [(w("1", "a", 1.0), PROMISED), (w("2", "late", 3.0), AFTER_POINT)]
    assert check_data(placed, {"1": "a"}, "p").verified
    check = check_data(placed, {"1": "a", "2": "late"}, "p")
    assert not check.verified and check.after_point == 1


def test_an_overwritten_object_must_be_back_at_its_prior_version_not_an_older_one():
    placed = [
        (w("k", "v1", 1.0), PROMISED),
        (w("k", "v2", 2.0), PROMISED),
        (w("k", "ransom", 3.0), AFTER_POINT),
    ]
    assert check_data(placed, {"k": "v2"}, "p").verified
    assert check_data(placed, {"k": "v1"}, "p").stale == 1
    assert check_data(placed, {"k": "ransom"}, "p").after_point == 1
    assert check_data(placed, {"k": "garbage"}, "p").wrong == 1


def test_unknown_keys_fail_and_in_flight_writes_go_either_way():
    placed = [(w("1", "a", 1.0), PROMISED), (w("2", "maybe", None, sent=2.0), UNCERTAIN)]
    assert check_data(placed, {"1": "a"}, "p").verified
    assert check_data(placed, {"1": "a", "2": "maybe"}, "p").verified
    check = check_data(placed, {"1": "a", "999": "x"}, "p")
    assert not check.verified and check.unknown == 1 and check.examples["unknown"] == ["999"]


def test_a_newer_in_flight_write_may_supersede_the_promised_one_but_an_older_may_not():
    placed = [
        (w("k", "old", None, sent=0.5), UNCERTAIN),
        (w("k", "promised", 1.0), PROMISED),
        (w("k", "newer", None, sent=2.0), UNCERTAIN),
    ]
    assert check_data(placed, {"k": "newer"}, "p").verified
    assert check_data(placed, {"k": "old"}, "p").stale == 1


def test_an_unknown_expectation_is_refused():
    with pytest.raises(ValueError, match="expectation"):
        check_data([(w("1", "a", 1.0), "maybe")], {}, "p")


def test_rpo_is_failure_minus_the_newest_acknowledged_write_that_came_back():
    writes = [w("1", "a", 10.0), w("2", "b", 11.0), w("3", "c", 12.5), w("4", "d", 30.0)]
    # 3 was lost; 4 was acknowledged after the failure (by the recovered service).
    assert measure_rpo(writes, {"1": "a", "2": "b", "4": "d"}, 20.0) == pytest.approx(9.0)
    assert measure_rpo(writes, {"1": "a", "2": "b", "3": "c"}, 20.0) == pytest.approx(7.5)
    assert measure_rpo(writes, {"1": "a", "2": "stale"}, 20.0) == pytest.approx(10.0)
    assert measure_rpo(writes, {}, 20.0) is None


# -- the verdict --------------------------------------------------------------------------------


def _result(**over) -> ScenarioResult:
    base = dict(
        name="x",
        title="X",
        data_class="critical",
        dataset="database",
        incident="",
        recovery="",
        rpo_objective_s=9.0,
        rto_objective_s=36.0,
        declared_rpo_s=900,
        declared_rto_s=3600,
        rpo_s=1.0,
        rto_s=10.0,
        data=check_data([(w("1", "a", 1.0), PROMISED)], {"1": "a"}, "p"),
    )
    return ScenarioResult(**{**base, **over})


@pytest.mark.parametrize(
    "over, met",
    [
        ({}, True),
        ({"rpo_s": 9.001}, False),
        ({"rto_s": 36.5}, False),
        ({"rto_s": None}, False),
        ({"rpo_s": None}, False),
        ({"error": "boom"}, False),
        ({"data": check_data([(w("1", "a", 1.0), PROMISED)], {}, "p")}, False),
        ({"data": None}, False),
    ],
)
def test_met_needs_verified_data_within_both_scaled_objectives(over, met):
    result = _result(**over)
    result.finish()
    assert result.met is met
    assert bool(result.reasons()) is not met


def test_the_record_puts_the_verdict_first_and_both_objectives_beside_it():
    result = _result()
    result.finish()
    record = result.to_record()
    assert list(record)[:5] == ["name", "met", "data_verified", "rpo_s", "rto_s"]
    assert record["objectives"] == {
        "rpo_s": 9.0,
        "rto_s": 36.0,
        "declared_rpo_s": 900,
        "declared_rto_s": 3600,
    }


# -- declared mechanisms and the time scale -----------------------------------------------------


def test_mechanisms_are_read_from_what_prod_declares(prod):
    mech = mechanisms_from_evaluation(prod)
    assert mech.archive_timeout_s == 300  # critical RPO 15m / 3, rendered into postgresql.conf
    assert mech.push_timeout_s == 60
    # The PRIMARY record's CLOUDWATCH_METRIC check follows the in-VPC probe's alarm: the probe
    # runs every minute (one failed run breaches), the alarm pages after 2 periods of 60 s; as
    # posture states it.
    assert mech.detection.by.startswith("Route 53 CLOUDWATCH_METRIC health check")
    assert (mech.detection.poll_interval_s, mech.detection.failure_threshold) == (60, 1)
    assert (mech.detection.alarm_period_s, mech.detection.alarm_periods) == (60, 2)
    assert mech.detection.publication_s == 0 and mech.detection.worst_case_s == 180
    assert mech.dns_ttl_s == 60
    # Longest gaps between backups reaching repo2 that restore at least each level.
    assert mech.backup_interval_s == {"full": 7 * 86400, "diff": 86400, "incr": 3600}


def test_a_changed_rendered_archive_timeout_changes_what_the_drill_runs(prod):
    from scripts.checks.drill.timescale import POSTGRES_CONF

    artefacts = dict(prod.outputs["databaseArtefacts"])
    artefacts[POSTGRES_CONF] = artefacts[POSTGRES_CONF].replace(
        "archive_timeout = '300s'", "archive_timeout = '1h'"
    )
    patched = replace(prod, outputs={**prod.outputs, "databaseArtefacts": artefacts})
    assert mechanisms_from_evaluation(patched).archive_timeout_s == 3600


def test_scaling_divides_every_interval_and_never_runs_faster_than_scaled(prod):
    mech = mechanisms_from_evaluation(prod).scaled(100)
    assert mech.archive_timeout_s == 3 and mech.effective_archive_timeout_s == 3
    assert mech.push_timeout_s == pytest.approx(0.6) and mech.effective_push_timeout_s == 0.6
    assert mech.detection.poll_interval_s == pytest.approx(0.6)
    assert mech.detection.alarm_periods == 2  # a count does not scale
    assert mech.dns_ttl_s == pytest.approx(0.6)
    assert mech.backup_interval_s["incr"] == pytest.approx(36)
    odd = mechanisms_from_evaluation(prod).scaled(7)
    assert odd.archive_timeout_s == pytest.approx(42.857, abs=1e-3)
    assert odd.effective_archive_timeout_s == 43  # Postgres has whole seconds: rounded up


def _declared(type_, resource_name, rid, **inputs):
    return SimpleNamespace(type=type_, name=resource_name, id=rid, inputs=inputs)


def _records(check_id):
    return [
        _declared(
            "aws:route53/record:Record",
            "primary",
            "r1",
            failoverRoutingPolicies=[{"type": "PRIMARY"}],
            healthCheckId=check_id,
            ttl=30,
        ),
        _declared(
            "aws:route53/record:Record",
            "secondary",
            "r2",
            failoverRoutingPolicies=[{"type": "SECONDARY"}],
            ttl=60,
        ),
    ]


def test_detection_follows_a_cloudwatch_metric_health_check_to_its_alarm():
    resources = _records("hc") + [
        _declared(
            "aws:route53/healthCheck:HealthCheck",
            "probe-check",
            "hc",
            type="CLOUDWATCH_METRIC",
            cloudwatchAlarmName="db-probe-failed",
        ),
        _declared(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "probe-alarm",
            "a1",
            name="db-probe-failed",
            period=10,
            evaluationPeriods=3,
            datapointsToAlarm=2,
        ),
    ]
    detection = detection_from_declared(resources)
    # The probe runs every minute and one failed run is a breaching datapoint; the alarm needs
    # 2 of its 10 s periods.
    assert (detection.poll_interval_s, detection.failure_threshold) == (60, 1)
    assert (detection.alarm_period_s, detection.alarm_periods) == (10, 2)
    assert detection.worst_case_s == 80 and detection.alarm == "probe-alarm"
    assert detection.publication_s == 0  # the probe's alarm is the check: nothing to publish


def test_no_health_check_on_the_primary_record_is_a_precondition_error():
    with pytest.raises(DrctlError, match="no PRIMARY failover record with a health check") as exc:
        detection_from_declared(_records("missing"))
    assert exc.value.code == 4
    odd = _records("hc") + [
        _declared("aws:route53/healthCheck:HealthCheck", "c", "hc", type="CALCULATED")
    ]
    with pytest.raises(DrctlError, match="CALCULATED"):
        detection_from_declared(odd)


def test_endpoint_check_defaults_are_route53s_and_no_alarm_means_nobody_is_paged():
    resources = _records("hc") + [
        _declared("aws:route53/healthCheck:HealthCheck", "c", "hc", type="TCP")
    ]
    detection = detection_from_declared(resources)
    assert (detection.poll_interval_s, detection.failure_threshold) == (30, 3)
    assert detection.alarm_periods == 0 and "nobody is paged" in detection.alarm
    assert detection.worst_case_s == 90


def test_only_archive_push_gets_the_scaled_timeout(tmp_path, prod):
    from components.objectives import parse_objectives
    from components.pgbackrest_config import posix_settings, render_pgbackrest_conf
    from scripts.local.evaluate import read_stack_config

    objectives = parse_objectives(read_stack_config("prod"), "prod")
    settings = posix_settings(objectives, repo1_path="/r1", repo2_path="/r2", pg_path="/pg")
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text(render_pgbackrest_conf(settings))
    scale_push_timeout(conf, 0.6)
    text = conf.read_text()
    glob = text.split("[global:archive-push]")[0]
    push = text.split("[global:archive-push]")[1].split("\n[")[0]
    assert "archive-timeout=60" in glob  # archive-get (restores) keeps the declared patience
    assert "archive-timeout=0.6" in push
    conf_ini = parse_ini(text)
    assert pgbackrest_option(conf_ini, "main", "archive-push", "archive-timeout") == "0.6"
    assert pgbackrest_option(conf_ini, "main", "archive-get", "archive-timeout") == "60"
    conf.write_text("[global]\narchive-timeout=60\n")
    with pytest.raises(DrctlError, match="no \\[global:archive-push\\] section"):
        scale_push_timeout(conf, 0.6)


# -- the observer -------------------------------------------------------------------------------

_WALDUMP_HEAD = "rmgr: Transaction len (rec/tot):"
WALDUMP = "\n".join(
    [
        f"{_WALDUMP_HEAD}     34/    34, tx:        725, lsn: 0/01769C28, prev 0/01769BE8, "
        "desc: COMMIT 2026-12-01 14:23:59.471067 UTC",
        f"{_WALDUMP_HEAD}    405/   405, tx:        726, lsn: 0/0176A000, prev 0/01769C90, "
        "desc: COMMIT 2026-12-01 14:24:00 UTC; inval msgs: catcache 7",
        f"{_WALDUMP_HEAD}     34/    34, tx:        727, lsn: 0/0176B000, prev 0/01769D38, "
        "desc: ABORT 2026-12-01 14:24:01.000001 UTC",
    ]
)


def test_commits_are_placed_by_their_end_lsn_and_utc_time():
    commits = parse_commits(WALDUMP)
    assert set(commits) == {725, 726}  # an abort is not a commit
    end, when = commits[725]
    assert end == 0x01769C28 + 34
    assert when.isoformat() == "2026-12-01T14:23:59.471067+00:00"
    assert commits[726][0] == 0x0176A000 + 405


def _repo_with_segments(root: Path, names: list[str]) -> Path:
    where = root / "archive" / "main" / "15-1" / "0000000100000000"
    where.mkdir(parents=True)
    for name in names:
        (where / name).write_text("x")
    return root


def test_archived_until_is_the_end_of_the_newest_segment(tmp_path):
    repo = _repo_with_segments(
        tmp_path,
        [
            "000000010000000000000003-" + "a" * 40 + ".zst",
            "000000010000000000000005-" + "b" * 40 + ".zst",
            "000000010000000000000006.00000028.backup",
        ],
    )
    assert archived_until(repo) == 6 * 16 * 1024 * 1024
    assert archived_until(tmp_path / "empty") == 0


def test_restore_short_hides_segments_after_the_backup_and_puts_them_back(tmp_path):
    names = [f"00000001000000000000000{n}-" + "c" * 40 + ".zst" for n in (3, 4, 5)]
    repo = _repo_with_segments(tmp_path / "repo2", names)
    with _unreadable_after(repo, "000000010000000000000003", active=True) as hidden:
        assert hidden == ["000000010000000000000004", "000000010000000000000005"]
        assert archived_until(repo) == 4 * 16 * 1024 * 1024
    assert archived_until(repo) == 6 * 16 * 1024 * 1024
    with _unreadable_after(repo, "000000010000000000000003", active=False) as hidden:
        assert hidden == []


def test_copy_back_lossy_drops_only_data_rows():
    dump = (
        b"SET x;\nCOPY public.ledger (id, payload) FROM stdin;\n"
        + b"".join(f"{i}\tp{i}\n".encode() for i in range(1, 41))
        + b"\\.\n\nALTER TABLE x;\n"
    )
    lossy = drop_copy_rows(dump, 20)
    assert b"20\tp20\n" not in lossy and b"40\tp40\n" not in lossy
    assert b"19\tp19\n" in lossy and b"ALTER TABLE x;" in lossy and b"\\.\n" in lossy


# -- detection and DNS --------------------------------------------------------------------------


def test_the_monitor_turns_unhealthy_after_the_threshold_and_the_alarm_follows():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    detection = Detection("test", 0.02, 3, 0.05, 2, "alarm", publication_s=0.04)
    monitor = HealthMonitor(detection, "127.0.0.1", port)
    monitor.start()
    try:
        started = time.time()
        while monitor.polls < 5:
            assert monitor.wait_for_alarm(started, 0.01) is None
        assert monitor.healthy and not monitor.went_unhealthy
        server.close()
        closed = time.time()
        alarm = monitor.wait_for_alarm(closed, 10)
        assert alarm is not None and not monitor.healthy
        assert closed <= monitor.unhealthy_since(closed) <= alarm
        record = monitor.to_record(closed)
        assert record["polls"] > 3 and record["false_alarms_before_the_failure"] == 0
    finally:
        monitor.stop()
        server.close()


def test_a_late_poll_never_back_dates_the_alarm_before_the_failure_was_seen():
    """The monitor's clock, driven by hand: polls every 0.6 s, alarm on 2 periods of 0.6 s.
    The machine is busy and the poll after the failure comes 1.5 s late: the periods that ended
    meanwhile saw nothing wrong, so the alarm needs two periods after the failure was seen."""
    monitor = HealthMonitor(Detection("test", 0.6, 1, 0.6, 2, "alarm"), "127.0.0.1", 1)
    monitor.begin(100.0)  # period boundaries at 100.6, 101.2, 101.8, 102.4, 103.0, ...
    monitor.observe(True, 100.0)
    monitor.observe(True, 100.6)
    monitor.observe(False, 102.11)  # the host died at about 101.3; this poll is the first to see
    assert monitor.went_unhealthy == [102.11] and monitor.alarms == []
    for at in (102.7, 103.3):
        monitor.observe(False, at)
    assert monitor.alarms == [pytest.approx(103.0)]  # 102.4 (breaching 1), 103.0 (breaching 2)
    assert monitor.unhealthy_since(101.3) <= monitor.alarm_since(101.3)


def test_a_poll_just_after_a_boundary_counts_for_the_next_period():
    monitor = HealthMonitor(Detection("test", 0.6, 1, 0.6, 1, "alarm"), "127.0.0.1", 1)
    monitor.begin(100.0)
    monitor.observe(False, 100.61)  # after the period that ended at 100.6
    assert monitor.alarms == []
    monitor.observe(False, 101.21)
    assert monitor.alarms == [pytest.approx(101.2)]


def test_a_publication_is_what_was_known_at_its_instant():
    """Route 53 publishes HealthCheckStatus every publication_s: a poll after the publication
    instant is published at the next one, not the one before it."""
    monitor = HealthMonitor(
        Detection("test", 0.1, 1, 1.0, 1, "alarm", publication_s=0.5), "127.0.0.1", 1
    )
    monitor.begin(100.0)  # publications at 100.5, 101.0, ...; alarm periods end at 101.0, 102.0
    monitor.observe(False, 100.95)
    monitor.observe(False, 101.05)  # publication at 101.0 says unhealthy, after period 1 closed
    assert monitor.alarms == []
    monitor.observe(False, 102.05)
    assert monitor.alarms == [pytest.approx(102.0)]


def test_a_blip_before_the_failure_heals_and_is_not_taken_for_the_failure():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    monitor = HealthMonitor(Detection("test", 0.02, 2, 0.03, 1, "alarm"), "127.0.0.1", port)
    monitor.start()
    try:
        server.close()
        assert monitor.wait_for_alarm(0, 10) is not None  # the blip
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        deadline = time.monotonic() + 10
        while not monitor.healthy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor.healthy and len(monitor.went_unhealthy) == 1
        after_blip = time.time()
        assert monitor.alarm_since(after_blip) is None
        assert monitor.to_record(after_blip)["false_alarms_before_the_failure"] == 1
    finally:
        monitor.stop()
        server.close()


@mock_aws
def test_route53_answers_secondary_once_the_primary_check_fails_and_the_cache_honours_ttl():
    r53 = boto3.client("route53", region_name="us-east-1")
    zone = r53.create_hosted_zone(Name="t.internal", CallerReference="1")["HostedZone"]["Id"]
    check = r53.create_health_check(
        CallerReference="2",
        HealthCheckConfig={"Type": "TCP", "IPAddress": "127.0.0.1", "Port": 1},
    )["HealthCheck"]["Id"]
    changes = []
    for role, target in (("PRIMARY", "a"), ("SECONDARY", "b")):
        record = {
            "Name": "db.t.internal",
            "Type": "CNAME",
            "SetIdentifier": role,
            "Failover": role,
            "TTL": 60,
            "ResourceRecords": [{"Value": target}],
        }
        if role == "PRIMARY":
            record["HealthCheckId"] = check
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    state = {"healthy": True}
    now = [1000.0]
    authority = FailoverAuthority(r53, zone, lambda _c: state["healthy"])
    resolver = CachingResolver(authority, time_scale=100, clock=lambda: now[0])
    assert resolver.resolve("db.t.internal") == "a"
    state["healthy"] = False
    now[0] += 0.59  # TTL 60 s at time scale 100 is 0.6 s: still cached
    assert resolver.resolve("db.t.internal") == "a"
    now[0] += 0.02
    assert resolver.resolve("db.t.internal") == "b"
    assert resolver.first_answer("b", after=1000.0) == pytest.approx(1000.61)


def test_an_answer_is_timed_when_it_arrives_so_it_never_precedes_the_health_change_behind_it():
    """The health monitor and the resolver share one clock. The check turns unhealthy while a
    query is out (the authority reads the health after the query was sent): the application got
    the DR answer then, not when it asked, so the DNS step never ends before it starts."""
    now = [1000.0]
    went_unhealthy: list[float] = []

    class SlowAuthority:
        def answer(self, _name: str) -> tuple[str, float]:
            now[0] += 0.004  # the query is out for 4 ms; the monitor's poll fails meanwhile
            went_unhealthy.append(now[0])
            now[0] += 0.001
            return "b", 60.0

    resolver = CachingResolver(SlowAuthority(), time_scale=100, clock=lambda: now[0])
    assert resolver.resolve("db.t.internal") == "b"
    answered = resolver.first_answer("b", after=1000.0)
    assert answered == 1000.005 and answered >= went_unhealthy[0]
    # The TTL runs from the answer's arrival too: cached until 1000.605, not 1000.6.
    now[0] = 1000.602
    assert resolver.resolve("db.t.internal") == "b" and len(went_unhealthy) == 1


# -- faults and the CLI -------------------------------------------------------------------------


def test_every_fault_targets_a_real_scenario_and_scenarios_see_only_their_own():
    assert {f.scenario for f in FAULTS} <= set(runner.SCENARIO_NAMES)
    assert len({f.name for f in FAULTS}) == len(FAULTS) >= 6
    faults = ScenarioFaults("human-error", ["copy-back-lossy", "archive-stalled"])
    assert faults.active("copy-back-lossy") and not faults.active("archive-stalled")
    with pytest.raises(KeyError):
        faults.active("meteor")


def test_an_unknown_fault_or_one_whose_scenario_is_not_selected_is_refused():
    with pytest.raises(DrctlError, match="--inject 'meteor' is not valid") as exc:
        check_faults(["meteor"], runner.SCENARIO_NAMES)
    assert exc.value.code == 2
    with pytest.raises(DrctlError, match="add --scenario database-corruption"):
        check_faults(["archive-stalled"], ["human-error"])
    assert check_faults(["archive-stalled"] * 2, runner.SCENARIO_NAMES) == ["archive-stalled"]


def test_list_faults_names_each_fault_and_its_target():
    result = CliRunner().invoke(app, ["drill", "--list-faults", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)["faults"]
    assert [(f["name"], f["scenario"]) for f in listed] == [(f.name, f.scenario) for f in FAULTS]


def _fake(name: str, run) -> runner.Scenario:
    return runner.Scenario(
        name, name.title(), "critical", "creator-audio", "i", "r", False, False, run
    )


@pytest.fixture
def fake_platform(monkeypatch, prod):
    mechanisms = mechanisms_from_evaluation(prod)
    monkeypatch.setattr(runner, "declared_mechanisms", lambda: mechanisms)

    def install(*scenarios):
        monkeypatch.setattr(runner, "SCENARIOS", scenarios)
        monkeypatch.setattr(command, "SCENARIO_NAMES", tuple(s.name for s in scenarios))

    return install


def test_a_failing_scenario_is_reported_not_met_and_the_rest_still_run(fake_platform, tmp_path):
    def boom(ctx, result):
        raise RuntimeError("restore failed")

    def fine(ctx, result):
        failure = ctx.mark_failure("incident")
        result.data = check_data([(w("k", "v", failure - 1), PROMISED)], {"k": "v"}, "p")
        result.rpo_s = 1.0
        ctx.service_back(failure + 2)

    fake_platform(_fake("first", boom), _fake("second", fine))
    result = CliRunner().invoke(app, ["drill", "--local", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    record = json.loads(result.stdout)
    assert record["all_met"] is False and record["time_scale"] == 100
    first, second = record["scenarios"]
    assert first["met"] is False and "restore failed" in first["error"]
    assert second["met"] is True and second["rto_s"] == pytest.approx(2.0, abs=0.01)
    assert [s["phase"] for s in second["steps"]] == ["failure"]
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


@pytest.mark.parametrize("scale", ["0", "-3", "5000", "nan"])
def test_a_time_scale_out_of_range_is_refused_before_anything_starts(scale, tmp_path):
    result = CliRunner().invoke(
        app, ["drill", "--local", "--time-scale", scale, "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--time-scale" in result.output and "3600" in result.output
    assert not (tmp_path / "report.json").exists()


def test_an_unwritable_out_is_refused_before_anything_starts(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(app, ["drill", "--local", "--out", str(blocker / "evidence")])
    assert result.exit_code == 2
    assert "is not a writable directory" in result.output and "nothing was started" in result.output
    assert "moto" not in result.output and "evaluating" not in result.output


def test_an_unknown_fault_is_refused_on_the_command_line(tmp_path):
    result = CliRunner().invoke(
        app, ["drill", "--local", "--inject", "meteor", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--list-faults" in result.output


def test_missing_server_binaries_stop_the_drill_before_anything_starts(
    monkeypatch, tmp_path, fake_platform
):
    from scripts.dataops import pgbackrest

    monkeypatch.setattr(pgbackrest, "PG_BIN", Path("/nonexistent/pg15/bin"))
    result = CliRunner().invoke(
        app, ["drill", "--local", "--scenario", "human-error", "--out", str(tmp_path)]
    )
    assert result.exit_code == 4
    assert "/nonexistent/pg15/bin/postgres" in result.output
    assert not (tmp_path / "report.json").exists()
