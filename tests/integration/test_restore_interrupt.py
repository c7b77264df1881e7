"""A restore that stops before it is done, on real PostgreSQL 15 and pgBackRest 2.45: Ctrl-C
(SIGINT to the drctl process group, as a terminal sends it) and a deadline that runs out. The
directory is left marked partial, a rerun says how to resume or remove it, and ``--resume``
finishes it with pgBackRest --delta into a copy that has every row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.common import ExitCode
from scripts.dataops import backup as backup_cli
from scripts.dataops.long_work import PARTIAL_MARKER, Deadline, WorkTimeout
from tests.integration.test_pgbackrest import drctl

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DRCTL = Path(sys.executable).with_name("drctl")


def _with_rows(env, rows: int = 300_000) -> None:
    """A full backup with enough files and bytes that the restore is caught in the middle."""
    env.cluster.execute(
        f"create table big as select g, repeat('x', 400) pad from generate_series(1, {rows}) g"
    )
    seen: list[float] = []

    class Meter:
        def update(self, completed, total=None, note=""):
            seen.append(completed / total)

    env.backrest.backup("full", repo=1, meter=Meter())
    # pgBackRest's own per-file progress reached the meter, up to the whole copy.
    assert len(seen) > 10 and seen == sorted(seen) and seen[-1] == 1.0
    env.cluster.execute("create table after_backup as select generate_series(1, 42) id")
    env.switch_and_wait_archived()


def _pgbackrest_processes(target: Path) -> list[int]:
    """pids of pgBackRest processes (main and workers) working on ``target``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pgbackrest") and f"--pg1-path={target}".encode() in argv:
            found.append(int(entry.name))
    return found


def _main_restore(target: Path) -> int | None:
    for pid in _pgbackrest_processes(target):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"restore" in argv:
            return pid
    return None


def _hold_mid_copy(target: Path, drctl_proc: subprocess.Popen) -> int:
    """Stop pgBackRest's main process once it has written backup.manifest into ``target`` (the
    point from which --delta can resume), single-stepping it with SIGSTOP/SIGCONT. Returns its
    pid, stopped. Only used to pin *where* Ctrl-C lands; nothing here is timed."""
    pid = None
    while pid is None:
        assert drctl_proc.poll() is None, drctl_proc.communicate()
        pid = _main_restore(target)
    os.kill(pid, signal.SIGSTOP)
    while not (target / "backup.manifest").exists():
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)
        os.kill(pid, signal.SIGSTOP)
    return pid


def test_ctrl_c_marks_the_directory_partial_and_resume_finishes_it(backrest_env, new_dir):
    env = backrest_env
    _with_rows(env)
    config = env.settings.config_path
    argv = [
        str(DRCTL), "restore", "--target-time", "latest", "--to", str(new_dir),
        "--config", config, "--execute", "--yes",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so killpg is what a terminal's ^C does
        env={**os.environ, "DRCTL_PROGRESS": "lines", "DRCTL_PROGRESS_INTERVAL": "0"},
    )
    try:
        held = _hold_mid_copy(new_dir, proc)
        os.killpg(proc.pid, signal.SIGINT)
        os.kill(held, signal.SIGCONT)  # let it take the SIGTERM runuser forwards
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert "Traceback" not in stderr
    assert "interrupted during restore" in stderr and "--resume" in stderr
    assert f"rm -rf {new_dir}" in stderr
    marker = json.loads((new_dir / PARTIAL_MARKER).read_text())
    assert (marker["phase"], marker["reason"]) == ("restore", "interrupted")
    assert "--resume" in marker["resume"] and marker["remove"] == f"rm -rf {new_dir}"
    # pgBackRest did not keep writing into a directory marked partial.
    for _ in range(600):
        if not _pgbackrest_processes(new_dir):
            break
        time.sleep(0.05)
    assert not _pgbackrest_processes(new_dir)
    # pgBackRest restores pg_control last: a partial directory cannot be started.
    assert not (new_dir / "global" / "pg_control").exists()

    # A rerun names the partial restore and the exact command, instead of a bare "not empty".
    code, _, rerun = drctl(
        "restore", "--target-time", "latest", "--to", str(new_dir), "--config", config,
        "--execute", "--yes",
    )  # fmt: skip
    assert code == ExitCode.REFUSED
    assert "holds a partial restore (interrupted during restore" in rerun
    assert f"--to {new_dir} --from-repo 1" in rerun and "--resume" in rerun
    # The dry run of the resume says how it resumes.
    code, stdout, _ = drctl(
        "restore", "--target-time", "latest", "--to", str(new_dir), "--config", config,
        "--resume", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(stdout)["resume"] == "delta"

    code, stdout, resumed = drctl(
        "restore", "--target-time", "latest", "--to", str(new_dir), "--config", config,
        "--resume", "--execute", "--yes", "--json",
    )  # fmt: skip
    assert code == 0, resumed
    assert json.loads(stdout)["status"] == "restored"
    assert "resuming backup" in resumed
    # Progress reached the log as plain lines (stderr is not a terminal here).
    assert "restore: 100.0%" in resumed and "replay: " in resumed
    assert not (new_dir / PARTIAL_MARKER).exists()
    copy = env.cluster.adopt(new_dir, "resumed").start()
    assert copy.scalar("select count(*) from big") == 300_000
    assert copy.scalar("select count(*) from after_backup") == 42


def test_restore_deadline_marks_partial_and_names_the_timeout_flag(backrest_env, new_dir):
    env = backrest_env
    _with_rows(env, rows=1000)
    with pytest.raises(Exception) as err:
        backup_cli.run_restore(
            env.backrest, None, new_dir, 1, execute=True, yes=True,
            deadline=Deadline(0, "test budget"),
        )  # fmt: skip
    message = str(err.value)
    assert err.value.code == ExitCode.STEP_FAILED
    assert "pgbackrest restore did not finish within 0s (test budget)" in message
    assert "--timeout 1m" in message and "--resume" in message
    marker = json.loads((new_dir / PARTIAL_MARKER).read_text())
    assert (marker["phase"], marker["reason"]) == ("restore", "timeout")
    # --resume works whatever pgBackRest had written when it was stopped.
    record = backup_cli.run_restore(
        env.backrest, None, new_dir, 1, execute=True, yes=True, resume=True
    )
    assert record["status"] == "restored"
    assert not (new_dir / PARTIAL_MARKER).exists()


def test_replay_deadline_stops_the_server_and_says_so(backrest_env, new_dir):
    env = backrest_env
    _with_rows(env, rows=1000)
    env.backrest.restore(new_dir, None, 1)
    with pytest.raises(WorkTimeout, match=r"WAL replay of .* did not finish within 0s"):
        env.backrest.recover(new_dir, None, deadline=Deadline(0, "test budget"))
    assert not (new_dir / "postmaster.pid").exists()  # the copy was stopped
