"""policy.database.postgres_backup_mechanisms: the database under the critical class.

The self-managed bound is read from the files the host receives, so these tests take the files
the real program renders (prod, evaluated under mocks) and change one rendered value at a time:
the verdict must follow the file, not the component's inputs. Synthetic resources give the rds
and supabase compliant and non-compliant cases.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

from components import pgbackrest_config as pgbr
from components.objectives import parse_objectives
from policy import database, rds_rules, rules
from scripts.local.evaluate import evaluate_stack, read_stack_config

OBJ = {"regions": {"primary": "us-east-1", "dr": "us-west-2", "third": "eu-west-1"}}
T = rules.POSTGRES_BACKUP_TYPE
CONF = "postgresql/conf.d/pgbackrest-archiving.conf"
PGBR = "pgbackrest/pgbackrest.conf"
GOVERNOR_CONF = "platform-dr/primary/rpo_governor.json"
GOVERNOR_UNIT = "systemd/platform-dr-rpo-governor.service"


def _r(type_, name, **props):
    return rules.Resource(type_, name, props)


@functools.cache
def _evaluated(backend="self-managed", rpo="15m"):
    ev = evaluate_stack("prod", overrides={"dbBackend": backend, "criticalRpo": rpo})
    return tuple(rules.Resource(r.type, r.name, r.inputs) for r in ev.resources)


def _with_file(resources, path, old, new):
    """The same stack, with one rendered file of the database host changed."""
    out = []
    for r in resources:
        if r.type == T:
            files = dict(r.props["artefacts"])
            assert old in files[path], (path, old)
            files[path] = files[path].replace(old, new)
            r = dataclasses.replace(r, props={**r.props, "artefacts": files})
        out.append(r)
    return out


def _without_governor(resources):
    """The host files without the RPO governor: WAL archiving is the only enforced bound."""
    out = []
    for r in resources:
        if r.type == T:
            files = {
                k: v
                for k, v in r.props["artefacts"].items()
                if k not in (GOVERNOR_CONF, GOVERNOR_UNIT)
            }
            r = dataclasses.replace(r, props={**r.props, "artefacts": files})
        out.append(r)
    return out


def _without_standby(resources):
    """No DR standby: the failover refusal is gone, WAL archiving is all that is left."""
    return [r for r in resources if r.type != rules.DR_STANDBY_TYPE]


def _database(resources):
    objectives = rules.objectives_of(resources)
    (mechanism,) = database.postgres_backup_mechanisms(resources, objectives)
    critical = next(v for v in rules.class_verdicts(resources, objectives) if v.name == "critical")
    return mechanism, critical


def test_self_managed_bound_comes_from_the_rendered_files():
    mechanism, critical = _database(_evaluated())
    assert mechanism.problems == [] and mechanism.rpo_s == 360
    archive, governor = mechanism.bounds
    assert archive.kind == "archive" and archive.enforced and archive.loss_s == 360
    # The RPO governor: synchronous commit to the DR standby past RPO/2 (+ one 1 s tick).
    assert governor.kind == "synchronous" and governor.enforced and governor.loss_s == 451
    assert "platform-dr-rpo-governor.service" in governor.via and "dr_standby" in governor.via
    assert "repo2 in us-west-2" in archive.via and "archive_timeout 5 min" in archive.via
    assert "object lock COMPLIANCE 14 d" in mechanism.description
    assert "after a failover: re-armed to repo1 us-west-2 (all in us-west-2: set rearmRegion" in (
        mechanism.description
    )
    assert critical.met and critical.datasets["database"] == 360


@pytest.mark.parametrize("rpo", ["15m", "3m", "1h"])
def test_rendered_bound_equals_the_pgbackrest_derivation(rpo):
    mechanism, _ = _database(_evaluated("self-managed", rpo))
    raw = read_stack_config("prod") | {"platform-dr:criticalRpo": rpo}
    assert mechanism.rpo_s == pgbr.worst_case_rpo_s(parse_objectives(raw, "prod"))


def test_archive_timeout_3600_in_the_rendered_conf_changes_the_verdict():
    """The review's case: only the host's postgresql.conf changes, not the component."""
    changed = _with_file(
        _without_governor(_evaluated()),
        CONF,
        "archive_timeout = '300s'",
        "archive_timeout = '3600s'",
    )
    mechanism, critical = _database(changed)
    assert mechanism.rpo_s == 3660
    # The DR standby's failover refusal is a guard, not a bound: the archive is what bounds a
    # region loss, so the class is NOT MET.
    assert not critical.met
    assert "database: worst case 61 min exceeds the RPO 15 min" in critical.problems
    mechanism, critical = _database(_evaluated())
    assert critical.met and critical.datasets["database"] == 360


def test_push_timeout_in_the_rendered_pgbackrest_conf_changes_the_bound():
    changed = _with_file(
        _evaluated(), PGBR, "[global:archive-push]", "[global:archive-push]\narchive-timeout=900"
    )
    mechanism, critical = _database(_without_governor(_without_standby(changed)))
    assert mechanism.rpo_s == 1200 and not critical.met


def test_the_rpo_governor_enforces_the_bound_the_archive_alone_would_miss():
    slow = _with_file(_evaluated(), CONF, "archive_timeout = '300s'", "archive_timeout = '3600s'")
    mechanism, critical = _database(slow)
    assert mechanism.rpo_s == 451 and critical.met and critical.datasets["database"] == 451
    # The governor's NOT-MET case: the same host without it.
    assert not _database(_without_governor(slow))[1].met


@pytest.mark.parametrize(
    ("path", "old", "new", "needle"),
    [
        (GOVERNOR_UNIT, "Restart=always", "Restart=no", "no Restart=always"),
        (GOVERNOR_CONF, '"sync_commit": "remote_apply"', '"sync_commit": "local"', "does not wait"),
        (
            GOVERNOR_CONF,
            '"application_name": "dr_standby"',
            '"application_name": "nearby"',
            "waits for 'nearby', not the DR standby",
        ),
        (GOVERNOR_CONF, '"engage_lag_s": 450.0', '"engage_lag_s": 0', "positive numbers"),
    ],
)
def test_a_broken_governor_is_a_problem_and_no_bound(path, old, new, needle):
    mechanism, critical = _database(_with_file(_evaluated(), path, old, new))
    assert any(needle in p for p in mechanism.problems), mechanism.problems
    assert [b.kind for b in mechanism.bounds] == ["archive"] and not critical.met


@pytest.mark.parametrize(
    ("path", "old", "new", "needle"),
    [
        (PGBR, "archive-async=y", "archive-async=y\narchive-push-queue-max=4GiB", "drops WAL"),
        (PGBR, "repo2-s3-region=us-west-2", "repo2-s3-region=us-east-1", "archives only to"),
        (CONF, "archive_mode = 'on'", "archive_mode = 'off'", "archive_mode is 'off'"),
        (CONF, "--stanza=main archive-push", "--stanza=db archive-push", "stanza 'db'"),
        (
            "systemd/pgbackrest-incr.timer",
            "OnCalendar=*-*-* *:30:00",
            "OnCalendar=*-*-* 0/6:30:00",
            "systemd/ backs repo2 up at incr level at most every 6 h",
        ),
        (
            "cron.d/pgbackrest",
            "0 1 * * 0 postgres",
            "0 1 1 * * postgres",
            "cron.d/ backs repo1 up at full level at most every 31 d",
        ),
        ("cron.d/pgbackrest", "for r in 1 2;", "for r in 1;", "no full backup reaches repo2"),
    ],
)
def test_each_rendered_fault_fails_the_class(path, old, new, needle):
    mechanism, critical = _database(_with_file(_evaluated(), path, old, new))
    assert any(needle in p for p in mechanism.problems), mechanism.problems
    assert not critical.met and any(needle in p for p in critical.problems)


def test_a_synchronous_dr_standby_is_an_enforced_bound_of_zero():
    changed = _with_file(
        _evaluated(),
        CONF,
        "max_wal_senders",
        "synchronous_standby_names = 'dr_standby'\nmax_wal_senders",
    )
    mechanism, _ = _database(_without_governor(changed))
    assert [b.kind for b in mechanism.bounds] == ["archive", "synchronous"]
    assert mechanism.rpo_s == 0 and "commits wait" in mechanism.bounds[1].holds_while
    # A quorum another standby can satisfy bounds nothing across regions.
    quorum = _with_file(
        _evaluated(),
        CONF,
        "max_wal_senders",
        "synchronous_standby_names = 'ANY 1 (dr_standby, local)'\nmax_wal_senders",
    )
    assert _database(_without_governor(quorum))[0].rpo_s == 360


def test_self_managed_object_lock_and_buckets():
    resources = _evaluated()
    unlocked = [r for r in resources if r.name != "database-repo2-us-west-2-object-lock"]
    assert _database(unlocked)[0].problems == ["database: repo2 bucket has no object lock"]
    missing = [r for r in resources if r.name != "database-repo1-us-east-1"]
    assert "database: no pgBackRest repo1 bucket" in _database(missing)[0].problems


def _rds(retention=7.0, encrypted=True, replicated=True):
    found = [
        _r(T, "db", backend="rds", dataset="database", pitrWindowDays=7.0),
        _r(
            "aws:rds/instance:Instance",
            "db-instance",
            backupRetentionPeriod=retention,
            storageEncrypted=encrypted,
        ),
    ]
    if replicated:
        found.append(
            _r(
                "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication",
                "db-backups-us-west-2",
                region="us-west-2",
            )
        )
    return found


def test_rds_compliant_claims_no_region_loss_bound_it_cannot_prove():
    (m,) = database.postgres_backup_mechanisms(_rds(), OBJ)
    assert m.problems == [] and m.rpo_s is None and m.bounds == [] and m.covers_region_loss
    assert "PITR 7 d" in m.description and "5 min" in m.description
    assert "replicated to us-west-2" in m.description


def test_rds_non_compliant():
    (m,) = database.postgres_backup_mechanisms(
        _rds(retention=3.0, encrypted=False, replicated=False), OBJ
    )
    assert "database: backup retention 3 d is under the PITR window 7 d" in m.problems
    assert "database: RDS storage not encrypted" in m.problems
    assert "database: automated backups are not replicated out of region" in m.problems


def test_supabase_dump_schedule_is_read_from_the_rendered_timers_and_cron():
    mechanism, critical = _database(_evaluated("supabase"))
    assert mechanism.problems == []
    schedule = next(b for b in mechanism.bounds if b.kind == "schedule")
    # A dump may still run when the region goes: two intervals, then RTC replicates it out.
    assert schedule.loss_s == 2 * 86400 + 900
    weekly = _with_file(
        _evaluated("supabase"), "cron.d/supabase-dump", "15 2 * * * postgres", "15 2 * * 0 postgres"
    )
    schedule = next(b for b in _database(weekly)[0].bounds if b.kind == "schedule")
    assert schedule.loss_s == 2 * 7 * 86400 + 900


def test_supabase_without_subscription_or_dumps():
    resources = _evaluated("supabase")
    no_sub = [r for r in resources if not r.type.endswith("/subscription:Subscription")]
    assert "database: no publication/subscription to a DR-region Postgres" in (
        _database(no_sub)[0].problems
    )
    no_dumps = []
    for r in resources:
        if r.type == T:
            files = {k: v for k, v in r.props["artefacts"].items() if "supabase-dump" not in k}
            r = dataclasses.replace(r, props={**r.props, "artefacts": files})
        no_dumps.append(r)
    mechanism, _ = _database(no_dumps)
    assert "database: no scheduled logical dump is rendered for the host" in mechanism.problems
    assert not any(b.kind == "schedule" for b in mechanism.bounds)


# -- RDS resource rules (compliant and non-compliant case each) -------------------------------

GOOD_RDS = {
    "storageEncrypted": True,
    "kmsKeyId": "arn:aws:kms:us-east-1:111122223333:key/mrk-1",
    "backupRetentionPeriod": 7.0,
    "deletionProtection": True,
    "publiclyAccessible": False,
    "skipFinalSnapshot": False,
}


@pytest.mark.parametrize(
    "check, bad, needle",
    [
        (rds_rules.rds_encrypted_with_cmk, {"storageEncrypted": False}, "not encrypted"),
        (rds_rules.rds_encrypted_with_cmk, {"kmsKeyId": None}, "AWS managed key"),
        (rds_rules.rds_keeps_pitr_window, {"backupRetentionPeriod": 1.0}, "under the spec's 7-day"),
        (rds_rules.rds_protected, {"deletionProtection": False}, "deletion protection is off"),
        (rds_rules.rds_protected, {"publiclyAccessible": True}, "publicly accessible"),
        (rds_rules.rds_protected, {"skipFinalSnapshot": True}, "no final snapshot"),
    ],
)
def test_rds_instance_rules(check, bad, needle):
    assert check(GOOD_RDS) == []
    problems = check({**GOOD_RDS, **bad})
    assert len(problems) == 1 and needle in problems[0]


def test_rds_force_ssl_and_backup_copy_rules():
    good = {"family": "postgres16", "parameters": [{"name": "rds.force_ssl", "value": "1"}]}
    assert rds_rules.rds_postgres_forces_tls(good) == []
    assert rds_rules.rds_postgres_forces_tls({**good, "parameters": []}) == [
        "rds.force_ssl is not 1"
    ]
    assert rds_rules.rds_postgres_forces_tls({"family": "mysql8.0", "parameters": []}) == []
    assert rds_rules.rds_backup_copy_encrypted({"kmsKeyId": "arn:..."}) == []
    assert rds_rules.rds_backup_copy_encrypted({}) == ["replicated backups have no customer key"]


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_declared_rds_backend_passes_every_resource_rule(stack):
    ev = evaluate_stack(stack, overrides={"dbBackend": "rds"})
    resources = [rules.Resource(r.type, r.name, r.inputs) for r in ev.resources]
    checked = {r.type for r in resources} & {rule.resource_type for rule in rules.RESOURCE_RULES}
    assert "aws:rds/parameterGroup:ParameterGroup" in checked
    assert rules.resource_violations(resources) == []
