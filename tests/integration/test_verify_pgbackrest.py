"""`drctl verify`'s database checks on a real PostgreSQL 15 archiving to a real pgBackRest
repository pair (repo1 and repo2 stand for the two regions; see conftest.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from components.objectives import DatabaseSchedule, parse_objectives
from scripts.checks import verify
from scripts.local.evaluate import read_stack_config

pytestmark = pytest.mark.integration


def test_archive_lag_and_last_backup_fresh_then_objective_tightened(backrest_env, objectives):
    env = backrest_env
    env.cluster.execute("create table payments (id int primary key, cents int)")
    env.cluster.execute("insert into payments select g, g * 100 from generate_series(1, 500) g")
    env.backrest.backup("full", repo=1)
    env.backrest.backup("full", repo=2)
    env.switch_and_wait_archived()
    source = verify.PgBackRestSource(env.backrest, env.cluster.conninfo())

    # Fresh: a backup in each repository, every closed segment archived in both.
    fresh = source.read()
    assert sorted(fresh.backups) == [1, 2] and all(fresh.backups.values())
    assert all(a["lag_segments"] == 0 for a in fresh.archive.values())
    checks = verify.pgbackrest_checks(objectives, fresh, dt.datetime.now(dt.UTC))
    assert [(c.check, c.target, c.ok) for c in checks] == [
        ("pgbackrest-last-backup", "repo1", True),
        ("pgbackrest-archive-lag", "repo1", True),
        ("pgbackrest-last-backup", "repo2", True),
        ("pgbackrest-archive-lag", "repo2", True),
    ]
    assert all(c.objective == 900 for c in checks if c.check == "pgbackrest-archive-lag")

    # New writes sit in the open segment: they are what a lost primary would take with it.
    env.cluster.execute("insert into payments select g, 1 from generate_series(501, 600) g")
    time.sleep(1.5)  # makes that exposure older than the 1 s objective below; not a timing
    exposed = source.read()
    assert exposed.unarchived_writes
    now = dt.datetime.now(dt.UTC)
    lag = [c for c in verify.pgbackrest_checks(objectives, exposed, now) if "lag" in c.check]
    assert all(c.ok and 1 < c.measured < 900 for c in lag), lag

    tight = parse_objectives({**read_stack_config("prod"), "platform-dr:criticalRpo": "1s"}, "prod")
    tight = dataclasses.replace(tight, schedule=DatabaseSchedule(log_backup_s=1))
    checks = verify.pgbackrest_checks(tight, exposed, now)
    assert [(c.check, c.ok) for c in checks] == [
        ("pgbackrest-last-backup", False),
        ("pgbackrest-archive-lag", False),
        ("pgbackrest-last-backup", False),
        ("pgbackrest-archive-lag", False),
    ]
    assert all(c.measured > c.objective == 1 for c in checks)
