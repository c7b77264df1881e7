"""recover's database dependency against a real PostgreSQL 15: verified only for a primary that
takes writes. A streaming standby, a primary fenced read-only (what failover's isolate step
leaves behind) and a server that does not answer are each NOT verified, with a reason."""

from __future__ import annotations

import pytest

from components.services import Dependency
from scripts.dataops.services import DependencyChecker
from scripts.local.postgres import LocalCluster, free_port

DATABASE = Dependency("database")


@pytest.fixture(scope="module")
def pair():
    with LocalCluster("recover-primary") as primary:
        standby = primary.create_standby("recover-standby", slot="recover_standby")
        yield primary, standby


def _check(dsn: str):
    return DependencyChecker(None, "us-west-2", {}, database_dsn=dsn).check(DATABASE)


def test_a_primary_that_takes_writes_is_verified(pair):
    primary, _ = pair
    verdict = _check(primary.dsn())
    assert verdict.ok and verdict.detail == "primary, takes writes"


def test_a_standby_is_not_verified(pair):
    _, standby = pair
    verdict = _check(standby.dsn())
    assert not verdict.ok and "standby; promote it (drctl failover)" in verdict.detail


def test_a_fenced_primary_is_not_verified(pair):
    primary, _ = pair
    primary.execute("alter system set default_transaction_read_only = on")
    primary.execute("select pg_reload_conf()")
    try:
        verdict = _check(primary.dsn())
        assert not verdict.ok and "fenced read-only" in verdict.detail
    finally:
        primary.execute("alter system reset default_transaction_read_only")
        primary.execute("select pg_reload_conf()")
    assert _check(primary.dsn()).ok


def test_no_server_and_no_dsn_are_not_verified():
    verdict = _check(f"postgresql://app:pw-never-shown@127.0.0.1:{free_port()}/app")
    assert not verdict.ok and "OperationalError" in verdict.detail
    assert "pw-never-shown" not in verdict.detail
    missing = DependencyChecker(None, "us-west-2", {}).check(DATABASE)
    assert not missing.ok and "--database-dsn" in missing.detail
