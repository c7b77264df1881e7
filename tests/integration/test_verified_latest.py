"""A restore to ``latest`` is verified against the newest WAL ``pgbackrest info`` reports.

For ``latest``, running out of WAL is how recovery ends, so a gap in the archive used to end
recovery early, silently: the copy opened with the data before the gap and counted as restored.
Real PostgreSQL 15 and pgBackRest 2.45 with the rendered settings (tests/integration/conftest.py).
"""

from __future__ import annotations

import pytest

from scripts.common import DrctlError, ExitCode
from scripts.dataops import backup as backup_cli

pytestmark = pytest.mark.integration


def _three_archived_segments(env) -> list[str]:
    env.backrest.backup("full", repo=1)
    env.backrest.backup("full", repo=2)
    segments = []
    for i in range(3):
        env.cluster.execute(f"create table t{i} as select generate_series(1, 10) as x")
        segments.append(env.switch_and_wait_archived())
    return segments


def test_latest_replays_up_to_the_newest_archived_segment(backrest_env, tmp_path):
    env = backrest_env
    segments = _three_archived_segments(env)
    newest = env.backrest.newest_archived_wal()
    assert newest[:24] >= segments[-1]
    to = env.root / "restored"
    record = backup_cli.run_restore(env.backrest, None, to, 2, execute=True, yes=True)
    recovery = record["recovery"]
    assert recovery["reached_target"] and recovery["expected_wal"] == newest
    assert recovery["last_restored_segment"] >= newest[:24]


def test_a_gap_in_the_archive_fails_latest_instead_of_ending_it_early(backrest_env):
    env = backrest_env
    segments = _three_archived_segments(env)
    gap = segments[1]
    for repo in (env.repo1, env.repo2):  # archive-get falls back between repos: gone from both
        for path in env.wal_files(repo, gap):
            path.unlink()
    with pytest.raises(DrctlError) as raised:
        backup_cli.run_restore(env.backrest, None, env.root / "restored", 2, execute=True, yes=True)
    message = str(raised.value)
    assert raised.value.code == ExitCode.STEP_FAILED
    assert "stopped after segment" in message and "a gap in the archive" in message
    assert "must not be used" in message
