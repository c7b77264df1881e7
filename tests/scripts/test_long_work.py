"""Deadlines from the objectives, progress meters, and the partial-restore marker: the parts that
need no server. The real restore, replay, Ctrl-C and resume run in
tests/integration/test_restore_interrupt.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from components.objectives import parse_objectives
from scripts.common import DrctlError, ExitCode
from scripts.dataops.long_work import (
    PARTIAL_MARKER,
    Deadline,
    backup_deadline,
    mark_partial,
    parse_timeout,
    restore_deadline,
)
from scripts.dataops.pgbackrest import PgBackRest
from scripts.dataops.pgbackrest_progress import (
    FileMeterFeed,
    ReplayWatch,
    file_progress,
    format_lsn,
    parse_lsn,
)
from scripts.dataops.progress_meter import NullMeter, ProgressReport, progress_mode
from scripts.local.evaluate import read_stack_config

# Lines as pgBackRest 2.45 prints them with --log-level-console=detail.
RESTORE_LINE = (
    "2026-12-01 17:31:37.896 P02 DETAIL: restore file /tmp/x/restored/base/5/16384 "
    "(8KB, 12.34%) checksum 5390341532b89a04fc01307fd23056277f9b8809"
)
MATCHED_LINE = (
    "2026-12-01 17:31:37.810 P02 DETAIL: restore file /tmp/x/restored/backup_label - exists "
    "and matches backup (258B, 0.00%) checksum 5390341532b89a04fc01307fd23056277f9b8809"
)
BACKUP_LINE = (
    "2026-12-01 17:37:57.127 P02 DETAIL: backup file /var/lib/pg/base/1/1259 (bundle 2/80, 8KB, "
    "55.50%) checksum 57be3898d3a39d78f08d1b8b915d14e1e3e2af18"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[float, float | None, str]] = []

    def update(self, completed: float, total: float | None = None, note: str = "") -> None:
        self.updates.append((completed, total, note))


@pytest.fixture
def objectives():
    return parse_objectives(read_stack_config("prod"), "prod")


def test_pgbackrest_detail_lines_give_the_share_done():
    assert file_progress(RESTORE_LINE) == (12.34, "/tmp/x/restored/base/5/16384")
    assert file_progress(MATCHED_LINE) == (0.0, "/tmp/x/restored/backup_label")
    assert file_progress(BACKUP_LINE) == (55.5, "/var/lib/pg/base/1/1259")
    assert file_progress("P00   INFO: restore size = 126.1MB, file total = 968") is None
    assert file_progress("P00 DETAIL: create path '/tmp/x/restored/base'") is None
    meter = Recorder()
    FileMeterFeed(meter, 1000)(RESTORE_LINE)
    FileMeterFeed(meter, None)(BACKUP_LINE)
    assert meter.updates == [(pytest.approx(123.4), 1000, "16384"), (55.5, 100, "1259")]


def test_plain_lines_are_periodic_and_end_with_the_last_state():
    console = Console(file=io.StringIO(), width=200)
    clock = Clock()
    with ProgressReport("lines", console, interval_s=10, clock=clock) as report:
        meter = report.meter("restore", 126 * 1024 * 1024)
        for at, share in ((0, 0.1), (1, 0.2), (5, 0.3), (11, 0.5), (12, 1.0)):
            clock.now = 1000 + at
            meter.update(share * 126 * 1024 * 1024, note="16384")
    lines = console.file.getvalue().splitlines()
    assert lines == [
        "restore: 10.0% (12.6 MiB of 126.0 MiB) 16384",
        "restore: 50.0% (63.0 MiB of 126.0 MiB) 16384",
        "restore: 100.0% (126.0 MiB of 126.0 MiB) 16384",  # the close prints the last state
    ]


def test_bars_when_forced_on_a_non_terminal(monkeypatch):
    buffer = io.StringIO()
    console = Console(file=buffer, width=120)
    assert not console.is_terminal
    assert progress_mode(console) == "lines"
    monkeypatch.setenv("DRCTL_PROGRESS", "bars")
    assert progress_mode(console) == "bars"
    with ProgressReport(console=console) as report:
        meter = report.meter("replay", 100)
        meter.update(100, 100, "at 0/5000000 of 0/5000000")
    drawn = buffer.getvalue()
    assert "replay" in drawn and "100%" in drawn and "\x1b[" in drawn  # ANSI: a real bar
    monkeypatch.setenv("DRCTL_PROGRESS", "off")
    assert isinstance(ProgressReport(console=console).meter("x"), NullMeter)
    monkeypatch.setenv("DRCTL_PROGRESS", "loud")
    with pytest.raises(DrctlError, match="DRCTL_PROGRESS='loud' is not valid") as err:
        progress_mode(console)
    assert err.value.code == ExitCode.INVALID_CONFIG


def test_restore_deadline_follows_the_rto_and_the_flag(objectives):
    default = restore_deadline(objectives)
    assert objectives.of("critical").rto_s == 3600
    assert default.timeout_s == 7200
    assert "twice the critical RTO of 1h" in default.source
    # Derived, not fixed: a stack with a shorter RTO gets a shorter deadline.
    raw = {**read_stack_config("prod"), "platform-dr:criticalRto": "20m"}
    assert restore_deadline(parse_objectives(raw, "prod")).timeout_s == 2400
    flagged = restore_deadline(objectives, parse_timeout("5h"))
    assert flagged.timeout_s == 5 * 3600 and flagged.source == "--timeout 5h"
    for bad in ("0s", "soon", "-1h"):
        with pytest.raises(DrctlError, match=f"--timeout.*{bad}") as err:
            parse_timeout(bad)
        assert err.value.code == ExitCode.INVALID_CONFIG


def test_backup_deadline_is_the_schedule_interval(objectives):
    assert backup_deadline(objectives, "full").timeout_s == 7 * 86400
    assert backup_deadline(objectives, "diff").timeout_s == 86400
    assert backup_deadline(objectives, "incr").timeout_s == 3600
    assert backup_deadline(objectives, "full", 600).timeout_s == 600


def test_deadline_expires_names_the_flag_and_tells_once_when_the_rto_passes(capsys):
    clock = Clock()
    deadline = Deadline(7200, "default: twice the critical RTO of 1h", 3600, clock)
    clock.now += 3599
    assert not deadline.expired()
    clock.now += 2
    assert not deadline.expired()
    assert not deadline.expired()
    told = capsys.readouterr().err
    assert told.count("past the critical RTO of 1h") == 1
    clock.now += 3600
    assert deadline.expired()
    message = str(deadline.timeout_error("pgbackrest restore"))
    assert "did not finish within 2h (default: twice the critical RTO of 1h)" in message
    assert "--timeout 4h" in message


def test_replay_watch_measures_the_lsn_against_the_newest_archived_segment(tmp_path):
    (tmp_path / "backup_label").write_text(
        "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
    )
    meter = Recorder()
    watch = ReplayWatch(meter, tmp_path, tmp_path, 1, "000000010000000000000009")
    watch.poll('LOG:  restored log file "000000010000000000000005" from archive\n')
    start, target = parse_lsn("0/2000028"), parse_lsn("0/A000000")
    assert meter.updates == [
        (parse_lsn("0/5000000") - start, target - start, "at 0/5000000 of 0/A000000")
    ]
    watch.poll('LOG:  restored log file "000000010000000000000004" from archive\n')
    assert len(meter.updates) == 1  # never goes backwards
    assert format_lsn(parse_lsn("1/FF000000")) == "1/FF000000"


def test_a_partial_directory_is_named_on_rerun_and_accepted_with_resume(tmp_path):
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text("[global]\nrepo1-type=posix\nrepo1-path=/r1\n\n[main]\npg1-path=/pg\n")
    backrest = PgBackRest(conf)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "base").mkdir()
    mark_partial(partial, phase="replay", reason="interrupted", resume="R", details={})
    with pytest.raises(DrctlError) as err:
        backrest.check_restore_target(partial, resume_command="drctl restore ... --resume")
    message = str(err.value)
    assert err.value.code == ExitCode.REFUSED
    assert "holds a partial restore (interrupted during replay" in message
    assert "drctl restore ... --resume" in message and f"rm -rf {partial}" in message
    assert backrest.check_restore_target(partial, resume=True) == partial.resolve()
    # A non-empty directory drctl did not mark stays refused, resume or not.
    (partial / PARTIAL_MARKER).unlink()
    for resume in (False, True):
        with pytest.raises(DrctlError, match="holds no partial restore of drctl"):
            backrest.check_restore_target(partial, resume=resume)
    assert Path(partial / "base").is_dir()  # nothing was removed


def test_a_pgbackrest_that_outlived_runuser_is_stopped_too(tmp_path):
    """A signal that reaches runuser before its handler is set kills runuser alone: the
    pgBackRest it started (same argv) must not go on writing into the target directory."""
    import subprocess
    import sys
    import time

    from scripts.dataops.pgbackrest_progress import stop

    fake = tmp_path / "pgbackrest"  # a process whose argv[0] is named like pgBackRest's
    fake.symlink_to(sys.executable)
    argv = [str(fake), "-c", "import time; time.sleep(60)", f"--pg1-path={tmp_path}/restored"]
    orphan = subprocess.Popen(argv, start_new_session=True)
    other = subprocess.Popen(
        [str(fake), "-c", "import time; time.sleep(60)", f"--pg1-path={tmp_path}/other"],
        start_new_session=True,
    )
    try:
        runner = subprocess.Popen(["true"])
        runner.wait()
        stop(runner, argv)
        assert orphan.wait(timeout=10) is not None
        time.sleep(0.2)
        assert other.poll() is None  # another restore's pgBackRest is not touched
    finally:
        for proc in (orphan, other):
            proc.kill()
            proc.wait()
