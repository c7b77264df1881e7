"""pgBackRest on a real PostgreSQL 15: backups, point-in-time restore, loss of the primary region,
and broken WAL. Config and archive_command are the rendered production ones with posix repos
standing for the two regions (see conftest.py)."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime

import pytest
import typer
from typer.testing import CliRunner

from scripts.common import DrctlError, ExitCode
from scripts.dataops import backup as backup_cli
from scripts.local.postgres import chown_to_postgres

pytestmark = pytest.mark.integration


def cli() -> typer.Typer:
    """Only this module's commands: the test does not depend on other modules importing."""
    app = typer.Typer()
    app.callback()(lambda: None)
    backup_cli.register(app)
    return app


def drctl(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli(), list(args))
    return result.exit_code, result.stdout, result.stderr


def write_history(env, table: str = "orders"):
    """rows 1..100 before T, 101..150 after it, then a table dropped; returns T.

    Every commit after T is archived, so recovery has to *stop* at T rather than run out of WAL.
    """
    pg = env.cluster
    # pgBackRest stamps backups in whole seconds; T must fall after the base backup's second.
    time.sleep(1.0)
    pg.execute(f"create table {table} (id int primary key, note text)")
    pg.execute("create table customers (id int primary key)")
    pg.execute("insert into customers select generate_series(1, 7)")
    pg.execute(f"insert into {table} select g, 'before' from generate_series(1, 100) g")
    env.switch_and_wait_archived()
    time.sleep(0.05)
    target: datetime = pg.scalar("select clock_timestamp()")
    time.sleep(0.05)
    pg.execute(f"insert into {table} select g, 'after' from generate_series(101, 150) g")
    pg.execute("drop table customers")
    env.switch_and_wait_archived()
    return target


def test_stanza_then_full_diff_incr_chain_in_both_repos(backrest_env):
    env = backrest_env
    env.backrest.check()
    env.cluster.execute("create table t as select generate_series(1, 1000) id")
    full = env.backrest.backup("full", repo=1)
    env.cluster.execute("insert into t select generate_series(1001, 2000)")
    diff = env.backrest.backup("diff", repo=1)
    env.cluster.execute("insert into t select generate_series(2001, 3000)")
    incr = env.backrest.backup("incr", repo=1)

    chain = env.backrest.backups(1)
    assert [b["type"] for b in chain] == ["full", "diff", "incr"]
    assert diff["prior"] == full["label"] and incr["prior"] == diff["label"]
    # A diff copies less than a full, an incr less than the diff.
    assert incr["info"]["delta"] <= diff["info"]["delta"] < full["info"]["delta"]

    # The CLI backs up to every repo in turn; repo2 has no full yet, so pgBackRest upgrades.
    code, stdout, stderr = drctl(
        "backup", "--type", "incr", "--config", env.settings.config_path, "--json"
    )
    assert code == 0, stderr
    record = json.loads(stdout)
    assert [(r["repo"], r["status"]) for r in record["repos"]] == [(1, "ok"), (2, "ok")]
    assert record["repos"][0]["type"] == "incr"
    assert record["repos"][1]["type"] == "full"
    assert [b["type"] for b in env.backrest.backups(2)] == ["full"]

    current = env.cluster.scalar("select pg_walfile_name(pg_current_wal_lsn())")
    status = env.backrest.archive_status(current)
    assert set(status) == {1, 2}
    assert all(s["lag_segments"] == 0 and s["status"] == "ok" for s in status.values())


def test_point_in_time_restore_brings_back_exactly_the_rows_before_t_and_the_dropped_table(
    backrest_env, new_dir
):
    env = backrest_env
    env.backrest.backup("full", repo=1)
    target = write_history(env)
    config = env.settings.config_path
    when = target.isoformat()

    # Dry run: a plan, nothing written.
    code, stdout, stderr = drctl(
        "restore", "--target-time", when, "--to", str(new_dir), "--config", config, "--json"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["status"] == "planned"
    assert not new_dir.exists()

    code, stdout, stderr = drctl(
        "restore", "--target-time", when, "--to", str(new_dir), "--config", config,
        "--execute", "--yes", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    record = json.loads(stdout)
    assert record["status"] == "restored" and record["recovery"]["reached_target"]
    assert "recovery stopping before commit" in record["recovery"]["stop"]

    restored = env.cluster.adopt(new_dir, "restored").start()
    assert not restored.is_in_recovery()  # promoted at the target
    assert restored.query("select note, count(*) from orders group by note") == [("before", 100)]
    assert restored.scalar("select count(*) from customers") == 7
    # The source is untouched: it still has everything written after T.
    assert env.cluster.scalar("select count(*) from orders") == 150
    assert env.cluster.scalar("select to_regclass('customers')") is None
    # The copy does not archive into the production repositories: pgBackRest wrote the override.
    assert "archive_mode = 'off'" in (new_dir / "postgresql.auto.conf").read_text()


def test_primary_region_lost_restore_from_dr_repo(backrest_env, new_dir):
    env = backrest_env
    env.backrest.backup("full", repo=1)
    env.backrest.backup("full", repo=2)
    target = write_history(env)
    shutil.rmtree(env.repo1)  # the primary region's repository is gone

    with pytest.raises(DrctlError) as from_lost:
        backup_cli.run_restore(env.backrest, target, new_dir, 1, execute=True, yes=True)
    assert from_lost.value.code == ExitCode.PRECONDITION_FAILED
    assert "repo1 holds no backup" in str(from_lost.value)
    assert "--from-repo 2" in str(from_lost.value)
    assert not new_dir.exists()

    record = backup_cli.run_restore(env.backrest, target, new_dir, 2, execute=True, yes=True)
    assert record["from_repo"] == 2 and record["recovery"]["reached_target"]
    restored = env.cluster.adopt(new_dir, "from-dr").start()
    assert restored.scalar("select count(*) from orders") == 100
    assert restored.scalar("select count(*) from customers") == 7


def test_missing_then_corrupt_wal_in_range_is_a_clear_error_not_a_short_restore(
    backrest_env, new_dir
):
    env = backrest_env
    env.backrest.backup("full", repo=1)
    env.backrest.backup("full", repo=2)
    env.cluster.execute("create table ledger (id int)")
    env.cluster.execute("insert into ledger select generate_series(1, 50)")
    broken = env.switch_and_wait_archived()
    target = write_history(env)
    copies = {
        p: p.read_bytes() for repo in (env.repo1, env.repo2) for p in env.wal_files(repo, broken)
    }
    assert len(copies) == 2, f"{broken} should be archived once per repo: {list(copies)}"

    def restore_fails(to) -> DrctlError:
        with pytest.raises(DrctlError) as err:
            backup_cli.run_restore(env.backrest, target, to, 1, execute=True, yes=True)
        return err.value

    # Missing from every repository (archive-get falls back from repo1 to repo2, so both).
    for path in copies:
        path.unlink()
    missing = restore_fails(new_dir)
    # Corrupt (bytes reversed, same size) in every repository.
    for path, data in copies.items():
        path.write_bytes(data[::-1])
        chown_to_postgres(path)
    corrupt = restore_fails(new_dir.with_name("restored-2"))

    for err in (missing, corrupt):
        message = str(err)
        assert err.code == ExitCode.STEP_FAILED
        assert "did not reach target" in message
        assert broken in message  # names the segment that could not be fetched
        assert "must not be used" in message


def test_restore_refuses_a_non_empty_dir_and_the_running_cluster(backrest_env, new_dir):
    env = backrest_env
    env.backrest.backup("full", repo=1)
    when = env.cluster.scalar("select clock_timestamp()")

    for to, why in ((env.cluster.data_dir, "pg1-path"), (env.repo1, "not empty")):
        with pytest.raises(DrctlError) as err:
            backup_cli.run_restore(env.backrest, when, to, 1, execute=True, yes=True)
        assert err.value.code == ExitCode.REFUSED and why in str(err.value)

    # A running cluster's data dir is refused even when pg1-path points elsewhere.
    standby = env.cluster.create_standby("standby", slot=None)
    with pytest.raises(DrctlError, match="running cluster"):
        env.backrest.check_restore_target(standby.data_dir)

    code, _, stderr = drctl(
        "restore", "--target-time", "latest", "--to", str(env.cluster.data_dir),
        "--config", env.settings.config_path, "--from-repo", "3",
    )  # fmt: skip
    assert code == ExitCode.INVALID_CONFIG and "--from-repo 3" in stderr

    code, _, stderr = drctl(
        "restore", "--target-time", "latest", "--to", str(new_dir),
        "--config", env.settings.config_path, "--execute",
    )  # fmt: skip
    assert code == ExitCode.REFUSED and "without --yes" in stderr
    assert not new_dir.exists()
