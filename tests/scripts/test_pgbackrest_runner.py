"""The parts of scripts/dataops/pgbackrest.py that need no server: WAL segment arithmetic, the
verdict on a recovery log, and the restore-target refusals. The same code runs against real
PostgreSQL and pgBackRest in tests/integration/test_pgbackrest.py; these cover the branches a
healthy real run cannot reach (a stop *before* the target, a log with no stop at all)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scripts.common import DrctlError, ExitCode
from scripts.dataops.pgbackrest import PgBackRest
from scripts.dataops.recovery_log import (
    analyse_recovery_log,
    recovery_failure_message,
    segment_name,
    segment_number,
)

T = datetime(2026, 11, 26, 18, 30, 0, tzinfo=UTC)
HEAD = """\
2026-11-26 18:40:00.1 UTC [1] LOG:  starting point-in-time recovery to 2026-11-26 18:30:00+00
2026-11-26 18:40:00.2 UTC [1] LOG:  restored log file "000000010000000000000003" from archive
2026-11-26 18:40:00.3 UTC [1] LOG:  restored log file "0000000100000000000000FF" from archive
"""


def test_segment_arithmetic_crosses_the_log_id_boundary():
    assert segment_number("0000000100000001000000FF") == 0x1FF
    assert segment_name(1, 0x200) == "000000010000000200000000"
    assert segment_name(2, segment_number("00000001000000000000002A")) == "00000002000000000000002A"


def test_stop_after_the_target_counts_as_reached():
    log = HEAD + (
        "... LOG:  recovery stopping before commit of transaction 900, "
        "time 2026-11-26 18:30:00.5+00\n... LOG:  database system is ready to accept connections\n"
    )
    result = analyse_recovery_log(log, Path("/d"), T, 1.0)
    assert result.reached_target
    assert result.last_restored_segment == "0000000100000000000000FF"


def test_stop_before_the_target_is_not_reached():
    log = HEAD + (
        "... LOG:  recovery stopping before commit of transaction 900, "
        "time 2026-11-26 18:29:59.9+00\n... LOG:  database system is ready to accept connections\n"
    )
    assert not analyse_recovery_log(log, Path("/d"), T, 1.0).reached_target


def test_ran_out_of_wal_names_the_next_segment_across_the_boundary():
    log = HEAD + "... FATAL:  recovery ended before configured recovery target was reached\n"
    result = analyse_recovery_log(log, Path("/d"), T, 1.0)
    assert not result.reached_target
    message = recovery_failure_message(result, 1)
    assert "000000010000000100000000" in message  # 0...0FF + 1
    assert "FATAL:  recovery ended before" in message


def test_latest_is_reached_when_the_copy_opens_without_error():
    log = HEAD + "... LOG:  database system is ready to accept connections\n"
    assert analyse_recovery_log(log, Path("/d"), None, 1.0).reached_target


def test_restore_target_refusals(tmp_path):
    conf = tmp_path / "pgbackrest.conf"
    data = tmp_path / "data"
    conf.write_text(f"[global]\nrepo1-type=posix\nrepo1-path=/r1\n\n[main]\npg1-path={data}\n")
    backrest = PgBackRest(conf)
    assert backrest.repo_indexes() == [1]
    with pytest.raises(DrctlError, match="pg1-path") as err:
        backrest.check_restore_target(data)
    assert err.value.code == ExitCode.REFUSED
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DrctlError, match="not empty"):
        backrest.check_restore_target(tmp_path / "full")
    assert backrest.check_restore_target(tmp_path / "new") == (tmp_path / "new").resolve()
    with pytest.raises(DrctlError, match="--repo 2 is not valid") as err:
        backrest.info(repo=2)
    assert err.value.code == ExitCode.INVALID_CONFIG


def test_missing_config_file_is_an_invalid_config_error(tmp_path):
    with pytest.raises(DrctlError, match="no such file") as err:
        PgBackRest(tmp_path / "nope.conf")
    assert err.value.code == ExitCode.INVALID_CONFIG
