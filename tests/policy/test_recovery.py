"""policy/recovery.py: each database recovery path's time against the critical RTO.

The paths are built from the evaluated prod program (health check, alarm, TTL, standby mode, the
rendered backup timers, the declared dbSize/dbWalRate) and from evidence documents made here, so
each test controls the measured throughput and the clock. Every NOT MET and UNKNOWN below comes
from a config value, a rendered file or the evidence, never from the verdict code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import pytest

from policy import recovery, rules
from scripts.local.evaluate import evaluate_stack

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
GIB, MIB = 2**30, 2**20
FIGURES = {
    "restore_bytes_per_s": 100 * MIB,
    "replay_bytes_per_s": 50 * MIB,
    "promotion_s": 0.5,
    "pg_restore_bytes_per_s": 50 * MIB,
}


def _document(measured_at="2026-03-01T12:00:00+00:00", **figures):
    return {
        "schema": recovery.EVIDENCE_SCHEMA,
        "command": "bench/restore.py --scale 30",
        "measured_at": measured_at,
        "host": {"cpus": 2},
        "setup": {"database_bytes": 500 * MIB},
        "figures": {**FIGURES, **figures},
    }


def _evidence(document=None, now=NOW, **figures):
    doc = _document(**figures) if document is None else document
    return recovery.read_evidence(doc, now, 37 * 86400)


@functools.cache
def _resources(**overrides):
    ev = evaluate_stack("prod", overrides=overrides)
    return tuple(rules.Resource(r.type, r.name, r.inputs) for r in ev.resources)


def _assess(resources, evidence=None):
    resources = list(resources)
    objectives = rules.objectives_of(resources)
    return recovery.assess_rto(resources, objectives, evidence or _evidence())


def _path(assessment, prefix):
    return next(p for p in assessment.paths if p.name.startswith(prefix))


def _steps(path):
    return {s.name: s.seconds for s in path.steps}


def test_prod_paths_from_the_declared_settings_and_the_measured_throughput():
    assessment = _assess(_resources())
    assert assessment.verdict == recovery.MET and assessment.rto_objective_s == 3600
    standby = _path(assessment, "promote the DR standby")
    # The health check follows the in-VPC probe's alarm, which pages: the probe's minute + 2
    # breaching minutes; TTL 60 s.
    assert _steps(standby) == {"detection": 180, "promotion": 0.5, "DNS switch": 60}
    assert standby.survives_region_loss and standby.verdict == recovery.MET
    repo1, repo2 = _path(assessment, "PITR from repo1"), _path(assessment, "PITR from repo2")
    assert not repo1.survives_region_loss and repo2.survives_region_loss
    # 100 GiB at 100 MiB/s; an hour of WAL at 2 GiB/h at 50 MiB/s (the hourly incr timer).
    assert _steps(repo2) == {
        "detection": 180,
        "restore": 1024,
        "WAL replay": pytest.approx(2 * 1024 / 50),
        "DNS switch": 60,
    }
    assert repo2.seconds == pytest.approx(180 + 1024 + 2048 / 50 + 60)
    assert "extrapolated" in repo2.steps[1].note  # 100 GiB from a 0.5 GiB measurement


def test_config_db_size_and_wal_rate_size_the_pitr():
    assessment = _assess(_resources(dbSize="1TB", dbWalRate="30GB/h"))
    steps = _steps(_path(assessment, "PITR from repo2"))
    assert steps["restore"] == pytest.approx(1024 * 1024 / 100)
    assert steps["WAL replay"] == pytest.approx(30 * 1024 / 50)
    assert _path(assessment, "PITR from repo2").verdict == recovery.NOT_MET  # 3.3 h > 1 h
    # The standby still survives a region loss inside the RTO, so the class is met.
    assert assessment.verdict == recovery.MET


def test_a_tight_rto_no_path_can_meet_is_not_met():
    assessment = _assess(_resources(criticalRto="2m"))
    assert assessment.verdict == recovery.NOT_MET
    assert "no path that survives a region loss fits the RTO" in assessment.why
    assert _path(assessment, "promote").seconds == 240.5  # detection alone takes 3 min


def _unsound_standby(resources):
    """The DR standby's replication slot is gone: no standby to promote, the rest stays."""
    return [r for r in resources if not r.type.endswith("PhysicalReplicationSlot")]


def _with_files(resources, *edits):
    out = []
    for r in resources:
        if r.type == rules.POSTGRES_BACKUP_TYPE:
            files = dict(r.props["artefacts"])
            for path, old, new in edits:
                assert old in files[path]
                files[path] = files[path].replace(old, new)
            r = dataclasses.replace(r, props={**r.props, "artefacts": files})
        out.append(r)
    return out


def test_without_a_standby_a_too_slow_restore_from_repo2_is_not_met():
    assessment = _assess(_unsound_standby(_resources(dbSize="2TB")))
    assert "no physical replication slot" in _path(assessment, "promote").blocked
    assert assessment.verdict == recovery.NOT_MET
    assert _path(assessment, "PITR from repo2").verdict == recovery.NOT_MET


def test_nothing_detecting_the_outage_is_unbounded_not_unknown():
    resources = [r for r in _resources() if r.name != "dr-standby-primary-unhealthy"]
    assessment = _assess(resources)
    assert all(p.verdict == recovery.NOT_MET for p in assessment.paths)
    assert assessment.verdict == recovery.NOT_MET


def test_an_in_region_path_that_fits_does_not_save_a_region_loss():
    """Backups only reach repo1 (both the timers and cron): repo1 fits the RTO, but it is lost
    with the region, and repo2 has nothing to restore."""
    resources = _with_files(
        _unsound_standby(_resources()),
        ("cron.d/pgbackrest", "for r in 1 2;", "for r in 1;"),
        *[
            (f"systemd/pgbackrest-{kind}.service", "for r in 1 2;", "for r in 1;")
            for kind in ("full", "diff", "incr")
        ],
    )
    assessment = _assess(resources)
    assert _path(assessment, "PITR from repo1").verdict == recovery.MET
    assert _path(assessment, "PITR from repo2").blocked == "no backup reaches repo2"
    assert assessment.verdict == recovery.NOT_MET


def test_the_incr_timer_sets_the_wal_to_replay():
    daily = _with_files(
        _resources(),
        ("systemd/pgbackrest-incr.timer", "OnCalendar=*-*-* *:30:00", "OnCalendar=daily"),
    )
    steps = _steps(_path(_assess(daily), "PITR from repo2"))
    # The timers now leave 23 h between backups (daily incr at 00:00, diff/full at 01:00); the
    # host may run either the timers or cron, so the worse of the two counts.
    assert steps["WAL replay"] == pytest.approx(2 * GIB / 3600 * 23 * 3600 / (50 * MIB))


def test_a_pilot_light_region_adds_its_scale_up():
    assessment = _assess(_resources(criticalRto="4h", importantRto="4h"))
    standby = _path(assessment, "promote")
    assert _steps(standby)["pilot-light scale-up"] == 3600
    assert standby.verdict == recovery.MET and assessment.rto_objective_s == 4 * 3600


def test_repo2_in_the_primary_region_does_not_survive():
    resources = _with_files(
        _resources(),
        ("pgbackrest/pgbackrest.conf", "repo2-s3-region=us-west-2", "repo2-s3-region=us-east-1"),
    )
    assert not _path(_assess(resources), "PITR from repo2").survives_region_loss


# -- evidence -------------------------------------------------------------------------------------


def test_missing_evidence_is_unknown_not_met():
    missing = recovery.read_evidence(None, NOW, 37 * 86400, source="bench/results/restore.json")
    assessment = _assess(_resources(), missing)
    assert missing.status == "missing" and assessment.verdict == recovery.UNKNOWN
    assert all(p.verdict == recovery.UNKNOWN for p in assessment.paths)
    [promotion] = [s for s in _path(assessment, "promote").steps if s.name == "promotion"]
    assert promotion.seconds is None and "no evidence file" in promotion.note


def test_stale_evidence_is_unknown():
    stale = _evidence(_document(measured_at="2026-01-01T12:00:00+00:00"))
    assert stale.status == "stale" and "68 d ago" in stale.why
    assert _assess(_resources(), stale).verdict == recovery.UNKNOWN


def test_the_age_of_evidence_is_judged_in_utc_whatever_its_offset():
    """measured_at 09:00 at UTC-3:30 is 12:30 UTC. 37 days later, at 12:00 UTC, it is still
    fresh; read as 09:00 UTC (the offset dropped) it would be stale."""
    document = _document(measured_at="2026-02-01T09:00:00-03:30")
    assert _evidence(document).status == "ok"
    assert _evidence(document, now=NOW + dt.timedelta(minutes=31)).status == "stale"
    assert _evidence(document, now=NOW).measured_at == dt.datetime(
        2026, 2, 1, 12, 30, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"measured_at": "2026-03-01T12:00:00"}, "no UTC offset"),
        ({"measured_at": "yesterday"}, "not an ISO 8601 time"),
        ({"measured_at": "2026-03-11T12:00:00+00:00"}, "in the future"),
        ({"schema": "something/else"}, "schema is 'something/else'"),
    ],
)
def test_unusable_evidence_is_invalid(change, why):
    evidence = _evidence({**_document(), **change})
    assert evidence.status == "invalid" and why in evidence.why
    assert evidence.figure("restore_bytes_per_s") is None


def test_a_missing_figure_leaves_its_step_unknown():
    document = _document()
    del document["figures"]["promotion_s"]
    assessment = _assess(_resources(), _evidence(document))
    assert _path(assessment, "promote").verdict == recovery.UNKNOWN
    # repo2 still fits, and it survives a region loss: the class is met through it.
    assert assessment.verdict == recovery.MET and "PITR from repo2" in assessment.why


def test_rds_needs_figures_from_an_aws_restore_test():
    resources = _resources(dbBackend="rds")
    assessment = _assess(resources)
    assert assessment.verdict == recovery.UNKNOWN
    assert {p.name for p in assessment.paths} == {
        "promote the DR standby",
        "RDS PITR in the primary region",
        "restore from the automated backups replicated to the DR region",
        "AWS Backup restore of the copy in the DR vault",
    }
    assert all(p.survives_region_loss for p in assessment.paths[2:])
    measured = _evidence(rds_restore_bytes_per_s=200 * MIB, rds_promotion_s=300)
    assert _assess(resources, measured).verdict == recovery.MET
    # Only the monthly AWS Backup restore test measured, and it is too slow for 1 h:
    slow = _evidence(aws_backup_restore_bytes_per_s=10 * MIB)
    assert _path(_assess(resources, slow), "AWS Backup").verdict == recovery.NOT_MET


def test_an_aws_backup_plan_without_a_dr_copy_blocks_that_path():
    resources = [
        dataclasses.replace(
            r, props={**r.props, "rules": [{**x, "copyActions": []} for x in r.props["rules"]]}
        )
        if r.name == "backup-critical"
        else r
        for r in _resources(dbBackend="rds")
    ]
    path = _path(_assess(resources, _evidence(aws_backup_restore_bytes_per_s=GIB)), "AWS Backup")
    assert path.blocked == "the critical backup plan copies nothing to a vault in us-west-2"
    assert path.verdict == recovery.NOT_MET


def test_supabase_restores_the_newest_dump_in_the_dr_region():
    assessment = _assess(_resources(dbBackend="supabase"))
    dump = _path(assessment, "pg_restore of the newest dump")
    assert dump.survives_region_loss and dump.verdict == recovery.MET
    assert _steps(dump)["pg_restore"] == pytest.approx(100 * 1024 / 50)
    assert _path(assessment, "promote").verdict == recovery.UNKNOWN  # no logical_promotion_s
    assert assessment.verdict == recovery.MET


def _fixed(name, survives, seconds, rto=3600):
    steps = [recovery.Step("all", seconds, "measured")]
    return recovery.RecoveryPath(name, survives, steps, rto)


@pytest.mark.parametrize(
    ("paths", "verdict"),
    [
        ([_fixed("a", True, 100), _fixed("b", True, None)], recovery.MET),
        ([_fixed("a", True, 4000), _fixed("b", True, None)], recovery.UNKNOWN),
        ([_fixed("a", True, 4000), _fixed("b", False, 10)], recovery.NOT_MET),
        ([_fixed("a", False, 10)], recovery.NOT_MET),
        ([_fixed("a", True, 3600)], recovery.MET),  # exactly the RTO is inside it
        ([_fixed("a", True, 3601)], recovery.NOT_MET),
        ([], recovery.NOT_MET),
    ],
)
def test_class_rto_verdict(paths, verdict):
    assert recovery.class_rto_verdict(paths)[0] == verdict


def test_detection_follows_whichever_health_check_the_record_has():
    """The stack's check watches the probe's alarm; an endpoint check counts interval x failures;
    a metric check whose probe alarm is gone cannot be timed, so the path is not met."""
    resources = list(_resources())
    endpoint = [
        rules.Resource(
            r.type, r.name, {"type": "TCP", "requestInterval": 10, "failureThreshold": 3}
        )
        if r.name == "dr-standby-primary-check"
        else r
        for r in resources
    ]
    assert _steps(_path(_assess(endpoint), "promote"))["detection"] == 150
    # A probe alarm that pages nobody: the HealthCheckStatus alarm (60 s x 1) after Route 53's
    # minute to publish is the page.
    silent = [
        rules.Resource(r.type, r.name, {**r.props, "alarmActions": []})
        if r.name == "dr-standby-primary-down"
        else r
        for r in resources
    ]
    assert _steps(_path(_assess(silent), "promote"))["detection"] == 180 + 60 + 60
    without_probe = [r for r in resources if r.name != "dr-standby-primary-down"]
    standby = _path(_assess(without_probe), "promote")
    assert _steps(standby)["detection"] is None and standby.verdict == recovery.NOT_MET
