"""Progress of a pgBackRest restore or backup and of the WAL replay after it, read from the tools
themselves, under a deadline and a Ctrl-C that leaves no process behind.

- **Files.** pgBackRest 2.45 has no progress API for a restore (``pgbackrest info`` reports a
  running *backup*'s progress only), but with ``--log-level-console=detail`` it prints one line
  per file with the share of the whole copy done so far:
  ``P01 DETAIL: restore file /data/base/5/16384 (8KB, 12.34%) checksum ...`` (a backup's lines
  read ``backup file ... (bundle 2/80, 8KB, 0.07%)``). Those lines drive
  the meter; nothing else of pgBackRest's output is echoed (its option line is long and noisy).
- **Replay.** Before the copy is consistent, Postgres logs each segment it restores from the
  archive; once it accepts read-only connections, ``pg_last_wal_replay_lsn()`` is exact. Both
  are measured against the target: the end of the newest archived segment (``pgbackrest info``),
  which a restore to ``latest`` must reach and a restore to a time cannot pass.
- **Stopping.** pgBackRest runs under ``runuser``, which starts it in a session of its own, so a
  terminal's Ctrl-C reaches drctl and runuser but never pgBackRest. On Ctrl-C or the deadline,
  drctl sends SIGTERM to runuser, which forwards it to the session ("Session terminated"), and
  waits for it, so no pgBackRest keeps writing into a directory marked partial.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from scripts.dataops.long_work import Deadline
from scripts.dataops.progress_meter import Meter, NullMeter
from scripts.dataops.recovery_log import segment_number
from scripts.local.postgres import PG_BIN, as_postgres, run_as_postgres

WAL_SEGMENT_BYTES = 16 * 1024 * 1024
POLL_S = 0.5
STOP_GRACE_S = 30.0

# "(8KB, 12.34%)", "(bundle 2/80, 8KB, 0.07%)": the last figure is the share of the whole copy.
FILE_PROGRESS = re.compile(
    r"\b(?:restore|backup) file (?P<path>\S+).*?\((?:[^()%]*, )?(?P<pct>[0-9.]+)%\)"
)
RESTORED_SEGMENT = re.compile(r'restored log file "(?P<seg>[0-9A-F]{24})" from archive')
READ_ONLY_READY = "database system is ready to accept read-only connections"
START_LSN = re.compile(r"^START WAL LOCATION: (?P<lsn>[0-9A-F]+/[0-9A-F]+)", re.M)


def parse_lsn(text: str) -> int:
    """'1/5000028' -> byte position in the WAL stream."""
    high, low = text.strip().split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def segment_start_lsn(segment: str) -> int:
    """Position of the first byte of a WAL segment (16 MiB segments, timeline ignored)."""
    return segment_number(segment) * WAL_SEGMENT_BYTES


def file_progress(line: str) -> tuple[float, str] | None:
    """(percent done, file) from one pgBackRest detail line, or None for any other line."""
    match = FILE_PROGRESS.search(line)
    if not match:
        return None
    return float(match.group("pct")), match.group("path")


def run_streaming(
    argv: Sequence[str],
    *,
    deadline: Deadline,
    on_line: Callable[[str], None],
    what: str,
) -> tuple[int, str]:
    """Run ``argv`` as the postgres user, handing each stdout line to ``on_line`` as it comes.

    Returns (exit code, stderr). Raises the deadline's timeout error when it runs out, and lets
    KeyboardInterrupt through; both only after the process is stopped.
    """
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(
            as_postgres(argv),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            errors="replace",
            cwd="/",
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            while True:
                if deadline.expired():
                    stop(proc, argv)
                    raise deadline.timeout_error(what)
                try:
                    line = lines.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if line is None:
                    break
                on_line(line)
            proc.wait()
        except BaseException:
            stop(proc, argv)
            raise
        reader.join(timeout=5)
        stderr.seek(0)
        return proc.returncode, stderr.read()


def stop(proc: subprocess.Popen, argv: Sequence[str]) -> None:
    """SIGTERM (runuser forwards it to pgBackRest's session), then SIGKILL if it lingers; then
    the same for any pgBackRest of this command that outlived runuser (a signal that reaches
    runuser before it installs its handler kills runuser alone, and pgBackRest would go on
    writing into the directory a resume is about to inspect)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _stop_stragglers(argv)


def _pgbackrest_processes(argv: Sequence[str]) -> list[int]:
    """Processes running ``argv`` (the main process, and its workers for the same --pg1-path)."""
    program = Path(str(argv[0])).name
    wanted = [str(a) for a in argv[1:] if str(a).startswith("--pg1-path=")] or [
        str(a) for a in argv[1:]
    ]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and Path(args[0]).name == program and all(w in args for w in wanted):
            found.append(int(entry.name))
    return found


def _stop_stragglers(argv: Sequence[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pgbackrest_processes(argv)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.05)
        if not pids:
            return


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class FileMeterFeed:
    """Turns pgBackRest's detail lines into meter updates (bytes when the size is known)."""

    def __init__(self, meter: Meter, total_bytes: int | None):
        self.meter, self.total_bytes = meter, total_bytes
        self.percent = 0.0

    def __call__(self, line: str) -> None:
        found = file_progress(line)
        if not found:
            return
        self.percent, path = found
        name = Path(path).name
        if self.total_bytes:
            self.meter.update(self.percent / 100 * self.total_bytes, self.total_bytes, name)
        else:
            self.meter.update(self.percent, 100, name)


class ReplayWatch:
    """WAL replay position of a copy in recovery, against the target, into a meter."""

    def __init__(
        self,
        meter: Meter | None,
        data_dir: Path,
        socket_dir: Path,
        port: int,
        target_segment: str | None,
    ):
        self.meter = meter or NullMeter()
        self.socket_dir, self.port = socket_dir, port
        self.start = _backup_start_lsn(data_dir)
        self.target = None
        if target_segment:  # the end of the newest archived segment
            self.target = segment_start_lsn(target_segment[:24]) + WAL_SEGMENT_BYTES
        self.position = self.start or 0

    def poll(self, log_text: str) -> None:
        position = None
        if READ_ONLY_READY in log_text:
            position = self._replay_lsn()
        if position is None:
            segments = RESTORED_SEGMENT.findall(log_text)
            if segments:
                position = segment_start_lsn(segments[-1])
        if position is None or position < self.position:
            return
        self.position = position
        start = self.start or 0
        total = (self.target - start) if self.target and self.target > start else None
        done = position - start
        note = f"at {format_lsn(position)}"
        if self.target:
            note += f" of {format_lsn(self.target)}"
        self.meter.update(max(done, 0), total, note)

    def finish(self) -> None:
        if self.target:
            start = self.start or 0
            self.meter.update(self.target - start, self.target - start, "replayed")

    def _replay_lsn(self) -> int | None:
        proc = run_as_postgres(
            [
                PG_BIN / "psql",
                "-X",
                "-h",
                self.socket_dir,
                "-p",
                str(self.port),
                "-d",
                "postgres",
                "-Atc",
                "select pg_last_wal_replay_lsn()",
            ],
            check=False,
            timeout=30,
        )
        text = (proc.stdout or "").strip()
        if proc.returncode != 0 or "/" not in text:
            return None
        return parse_lsn(text)


def _backup_start_lsn(data_dir: Path) -> int | None:
    """The base backup's start LSN from the backup_label pgBackRest restored."""
    try:
        match = START_LSN.search((data_dir / "backup_label").read_text())
    except OSError:
        return None
    return parse_lsn(match.group("lsn")) if match else None
