"""A thin runner around the pgbackrest binary, driven by the config that
components/pgbackrest_config.py renders.

What it adds over calling pgbackrest by hand is the safety a 3 a.m. restore needs:

- ``restore`` only ever writes into a NEW, empty directory: it refuses a non-empty target, the
  stanza's own ``pg1-path`` and the data dir of any running cluster;
- restored WAL is not pushed back into the production repositories (``--archive-mode=off``);
- ``recover`` starts the restored copy on a private socket and port, lets Postgres replay to the
  target, and proves from the server log that recovery *stopped at the target*. A missing or
  corrupt WAL segment in the range makes Postgres end recovery early; that surfaces as a
  ``DrctlError`` naming the segment, never as a silently shorter database.

Every pgbackrest and server command runs as the postgres OS user (``runuser`` when root), like
the timers do on a database host.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from components.pgbackrest_config import (
    BACKUP_TYPES,
    SECRET_CONF_NAME,
    PgBackRestSettings,
    pgbackrest_command,
    render_pgbackrest_conf,
    render_secret_conf,
)
from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops.long_work import (
    PARTIAL_MARKER,
    Deadline,
    WorkTimeout,
    can_delta,
    clear_directory,
    partial_hint,
    partial_record,
)
from scripts.dataops.pgbackrest_progress import FileMeterFeed, ReplayWatch, run_streaming
from scripts.dataops.progress_meter import Meter, NullMeter
from scripts.dataops.recovery_log import (
    RecoveryResult,
    analyse_recovery_log,
    format_target,
    recovery_failure_message,
    segment_number,
)
from scripts.local.postgres import (
    PG_BIN,
    LocalPgError,
    chown_to_postgres,
    free_port,
    run_as_postgres,
)


def require_binaries() -> None:
    """Fail loudly (exit 4) when pgbackrest or the PostgreSQL 15 server binaries are missing."""
    missing = [b for b in ("pgbackrest", "runuser") if not shutil.which(b)]
    missing += [str(PG_BIN / b) for b in ("postgres", "pg_ctl") if not (PG_BIN / b).exists()]
    if missing:
        raise DrctlError(
            f"missing {', '.join(missing)}: run `make sysdeps` (apt: pgbackrest, postgresql-15)",
            ExitCode.PRECONDITION_FAILED,
        )


def write_config(
    settings: PgBackRestSettings,
    directory: str | Path,
    cipher_passes: dict[int, str],
    s3_keys: dict[int, tuple[str, str]] | None = None,
) -> PgBackRestSettings:
    """Write pgbackrest.conf plus the 0600 secret fragment under ``directory``.

    Returns the settings with ``config_path``/``config_include_path`` pointing there, so that
    ``postgres_settings`` renders an archive_command that reads these very files.
    """
    directory = Path(directory)
    include = directory / "conf.d"
    include.mkdir(parents=True, exist_ok=True)
    settings = replace(
        settings,
        config_path=str(directory / "pgbackrest.conf"),
        config_include_path=str(include),
    )
    conf = directory / "pgbackrest.conf"
    conf.write_text(render_pgbackrest_conf(settings))
    secret = include / SECRET_CONF_NAME
    secret.touch(mode=0o600)
    secret.chmod(0o600)
    secret.write_text(render_secret_conf(settings, cipher_passes, s3_keys))
    for path in (directory, include, conf, secret):
        chown_to_postgres(path)
    return settings


class PgBackRest:
    """pgbackrest for one stanza and one config file.

    ``config_path`` is the rendered pgbackrest.conf; ``include_path`` its secret fragment dir
    (default: ``conf.d`` beside it). Nothing here prints secrets: pgbackrest reads them itself.
    """

    def __init__(
        self,
        config_path: str | Path,
        stanza: str = "main",
        include_path: str | Path | None = None,
        timeout_s: float = 3600,
    ):
        self.config_path = Path(config_path)
        self.include_path = (
            Path(include_path) if include_path else self.config_path.parent / "conf.d"
        )
        self.stanza = stanza
        self.timeout_s = timeout_s
        if not self.config_path.exists():
            raise DrctlError(
                f"--config {self.config_path}: no such file; render it with `drctl render` "
                "or point --config at the host's pgbackrest.conf",
                ExitCode.INVALID_CONFIG,
            )

    @classmethod
    def from_settings(cls, settings: PgBackRestSettings, **kw: Any) -> PgBackRest:
        return cls(settings.config_path, settings.stanza, settings.config_include_path, **kw)

    # -- config introspection ------------------------------------------------------------------

    def _conf(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None, delimiters=("=",), strict=False)
        parser.optionxform = str
        parser.read(self.config_path)
        return parser

    def option(self, key: str) -> str | None:
        conf = self._conf()
        for section in (self.stanza, "global"):
            if conf.has_option(section, key):
                return conf.get(section, key)
        return None

    @property
    def pg_path(self) -> Path | None:
        value = self.option("pg1-path")
        return Path(value) if value else None

    def repo_indexes(self) -> list[int]:
        conf = self._conf()
        keys = {k for s in conf.sections() for k in conf[s]}
        found = sorted(
            {int(m.group(1)) for k in keys if (m := re.match(r"^repo(\d+)-(type|path)$", k))}
        )
        return found or [1]

    # -- commands ------------------------------------------------------------------------------

    def _argv(self, command: str, *options: str) -> list[str]:
        base = pgbackrest_command(self.stanza, str(self.config_path), str(self.include_path))
        return [*base, *options, command]

    def run(self, command: str, *options: str, timeout_s: float | None = None) -> str:
        """Run one pgbackrest command; a failure is a DrctlError carrying pgBackRest's message."""
        argv = self._argv(command, *options)
        timeout = timeout_s or self.timeout_s
        try:
            proc = run_as_postgres(argv, check=False, timeout=timeout)
        except FileNotFoundError:
            require_binaries()
            raise
        except subprocess.TimeoutExpired:
            raise DrctlError(
                f"pgbackrest {command} (stanza {self.stanza}) did not finish in {timeout:.0f}s"
            ) from None
        if proc.returncode != 0:
            message = _pgbackrest_error(proc.stderr or proc.stdout)
            raise DrctlError(
                f"pgbackrest {command} (stanza {self.stanza}) failed with exit "
                f"{proc.returncode}: {message}",
                ExitCode.STEP_FAILED,
            )
        return proc.stdout

    def run_long(
        self,
        command: str,
        *options: str,
        deadline: Deadline,
        meter: Meter | None = None,
        total_bytes: int | None = None,
    ) -> None:
        """Run a long pgbackrest command (backup, restore) under ``deadline``, feeding ``meter``
        from pgBackRest's per-file detail lines. Ctrl-C and the deadline stop pgBackRest first."""
        argv = self._argv(command, *options, "--log-level-console=detail")
        feed = FileMeterFeed(meter or NullMeter(), total_bytes)
        try:
            code, stderr = run_streaming(
                argv, deadline=deadline, on_line=feed, what=f"pgbackrest {command}"
            )
        except FileNotFoundError:
            require_binaries()
            raise
        if code != 0:
            raise DrctlError(
                f"pgbackrest {command} (stanza {self.stanza}) failed with exit {code}: "
                f"{_pgbackrest_error(stderr)}",
                ExitCode.STEP_FAILED,
            )

    def stanza_create(self) -> None:
        self.run("stanza-create")

    def check(self) -> None:
        self.run("check")

    def backup(
        self,
        backup_type: str = "full",
        repo: int | None = None,
        *,
        deadline: Deadline | None = None,
        meter: Meter | None = None,
    ) -> dict[str, Any]:
        """One backup to one repo (default repo1); returns that backup's info entry.

        Without ``deadline`` the runner's ``timeout_s`` bounds it."""
        if backup_type not in BACKUP_TYPES:
            raise DrctlError(
                f"--type {backup_type!r} is not valid: one of {', '.join(BACKUP_TYPES)}",
                ExitCode.INVALID_CONFIG,
            )
        repo = self._check_repo(repo or 1)
        deadline = deadline or Deadline(self.timeout_s, "the runner's timeout")
        self.run_long(
            "backup", f"--type={backup_type}", f"--repo={repo}", deadline=deadline, meter=meter
        )
        backups = self.backups(repo)
        if not backups:
            raise DrctlError(f"pgbackrest reported success but repo{repo} lists no backup")
        return backups[-1]

    def _check_repo(self, repo: int) -> int:
        indexes = self.repo_indexes()
        if repo not in indexes:
            raise DrctlError(
                f"--repo {repo} is not valid: {self.config_path.name} configures repo "
                f"{', '.join(map(str, indexes))}",
                ExitCode.INVALID_CONFIG,
            )
        return repo

    def info(self, repo: int | None = None) -> dict[str, Any]:
        """``pgbackrest info --output=json`` for this stanza (one repo or all)."""
        options = ["--output=json"]
        if repo:
            options.append(f"--repo={self._check_repo(repo)}")
        data = json.loads(self.run("info", *options) or "[]")
        for entry in data:
            if entry.get("name") == self.stanza:
                return entry
        raise DrctlError(f"pgbackrest info lists no stanza {self.stanza!r}")

    def backups(self, repo: int | None = None) -> list[dict[str, Any]]:
        """Backups oldest first; with ``repo``, only those in that repository."""
        found = self.info(repo).get("backup", [])
        if repo:
            found = [b for b in found if b.get("database", {}).get("repo-key") == repo]
        return sorted(found, key=lambda b: b["timestamp"]["stop"])

    def archive_status(self, current_wal: str | None = None) -> dict[int, dict[str, Any]]:
        """Per repo: newest archived WAL segment and, given the cluster's current segment
        (``pg_walfile_name(pg_current_wal_lsn())``), how many segments it lags behind."""
        info = self.info()
        status: dict[int, dict[str, Any]] = {}
        for archive in info.get("archive", []):
            repo = archive.get("database", {}).get("repo-key", 1)
            newest = archive.get("max")
            entry = status.setdefault(repo, {"max_wal": None, "lag_segments": None})
            if newest and (entry["max_wal"] is None or newest > entry["max_wal"]):
                entry["max_wal"] = newest
        for entry in status.values():
            if current_wal and entry["max_wal"]:
                # The current segment is still being written; everything before it should be
                # archived, so a healthy repo lags by 0 (or 1 right after a switch).
                lag = segment_number(current_wal) - 1 - segment_number(entry["max_wal"])
                entry["lag_segments"] = max(0, lag)
        for repo_status in info.get("repo", []):
            key = repo_status.get("key")
            status.setdefault(key, {"max_wal": None, "lag_segments": None})
            status[key]["status"] = repo_status.get("status", {}).get("message")
        return status

    def newest_archived_wal(self, repo: int | None = None) -> str | None:
        """The newest WAL segment ``pgbackrest info`` lists (over every reachable repository, or
        one): what a restore to ``latest`` must replay at least up to."""
        info = self.info(repo)
        newest = None
        for archive in info.get("archive", []):
            key = archive.get("database", {}).get("repo-key")
            if repo and key not in (None, repo):
                continue
            found = archive.get("max")
            if found and (newest is None or found > newest):
                newest = found
        return newest

    # -- restore -------------------------------------------------------------------------------

    def check_restore_target(
        self, to: str | Path, *, resume: bool = False, resume_command: str | None = None
    ) -> Path:
        """Refuse any target but a new or empty directory that no cluster runs from.

        A directory drctl marked partial is accepted with ``resume``; without it the refusal says
        how to resume (``resume_command``) or remove it, instead of a bare "not empty".
        """
        target = Path(to).resolve()
        if self.pg_path and target == self.pg_path.resolve():
            raise DrctlError(
                f"--to {target} is the stanza's own data directory (pg1-path); restore into a new "
                "directory, never over the cluster",
                ExitCode.REFUSED,
            )
        pid_file = target / "postmaster.pid"
        if pid_file.exists() and _pid_file_alive(pid_file):
            raise DrctlError(
                f"--to {target} is the data directory of a running cluster; refusing",
                ExitCode.REFUSED,
            )
        if target.exists() and not target.is_dir():
            raise DrctlError(f"--to {target} exists and is not a directory", ExitCode.REFUSED)
        partial = partial_record(target) if target.exists() else None
        if partial is not None and not resume:
            hint = resume_command or "rerun the same restore with --resume"
            raise DrctlError(partial_hint(target, partial, hint), ExitCode.REFUSED)
        if partial is None and target.exists() and any(target.iterdir()):
            raise DrctlError(
                f"--to {target} is not empty and holds no partial restore of drctl "
                f"({PARTIAL_MARKER}); restore only into a new or empty directory",
                ExitCode.REFUSED,
            )
        return target

    def restore(
        self,
        to: str | Path,
        target_time: datetime | None = None,
        repo: int | None = None,
        *,
        backup_set: str | None = None,
        archive_mode_off: bool = True,
        resume: bool = False,
        deadline: Deadline | None = None,
        meter: Meter | None = None,
        total_bytes: int | None = None,
    ) -> Path:
        """Restore into the new directory ``to`` (files only; ``recover`` replays and verifies).

        ``target_time`` None restores to the end of the archive. ``backup_set`` pins the base
        backup (a label from ``backups``); default pgBackRest's choice. The copy gets
        ``--target-action=promote`` so it opens read-write once the target is reached.
        ``resume`` continues a directory marked partial (pgBackRest ``--delta`` keeps the files
        that match the backup). A failed restore removes a directory it created; a timed-out or
        interrupted one is left for the caller to mark partial.
        """
        target = self.check_restore_target(to, resume=resume)
        options = [f"--pg1-path={target}"]
        if repo:
            options.append(f"--repo={self._check_repo(repo)}")
        if backup_set:
            options.append(f"--set={backup_set}")
        if target_time is not None:
            options += [
                "--type=time",
                f"--target={format_target(target_time)}",
                "--target-action=promote",
            ]
        if archive_mode_off:
            # The copy must not push its new timeline into the production repositories.
            options.append("--archive-mode=off")
        if partial_record(target) is not None:
            if can_delta(target):
                options.append("--delta")
            else:
                clear_directory(target)  # stopped before pgBackRest wrote anything checkable
        created = not target.exists()
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        chown_to_postgres(target)
        deadline = deadline or Deadline(self.timeout_s, "the runner's timeout")
        try:
            self.run_long(
                "restore", *options, deadline=deadline, meter=meter, total_bytes=total_bytes
            )
        except WorkTimeout:
            raise
        except DrctlError:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            raise
        (target / PARTIAL_MARKER).unlink(missing_ok=True)  # --delta removes it too
        return target

    def recover(
        self,
        data_dir: str | Path,
        target_time: datetime | None,
        timeout_s: float = 600,
        *,
        expect_wal: str | None = "info",
        deadline: Deadline | None = None,
        meter: Meter | None = None,
    ) -> RecoveryResult:
        """Start the restored copy privately, let it replay to the target, verify, stop it.

        Raises DrctlError when Postgres ends recovery before the target (missing or corrupt WAL)
        and WorkTimeout when recovery does not finish within ``deadline`` (default
        ``timeout_s``). For ``latest`` (no target time) running out of WAL is how recovery ends,
        so a gap in the archive would end it early without an error: the copy must have replayed
        at least ``expect_wal``, by default the newest archived segment ``pgbackrest info``
        reports before recovery starts (None: do not check). ``meter`` follows the replay LSN
        against the end of the newest archived segment.
        """
        data_dir = Path(data_dir)
        deadline = deadline or Deadline(timeout_s, "the runner's replay timeout")
        newest = None
        if expect_wal == "info":
            if target_time is None:
                newest = expect_wal = self.newest_archived_wal()
            elif meter is not None:
                with contextlib.suppress(DrctlError):  # only the meter's scale depends on it
                    newest = self.newest_archived_wal()
        run_dir = Path(tempfile.mkdtemp(prefix="drctl-recover-"))
        chown_to_postgres(run_dir)
        log = run_dir / "recovery.log"
        port = free_port()
        # Private port and socket, no log collector (the log must reach our file), no archiving.
        # hot_standby=on lets the replay LSN be read once the copy is consistent; pg_ctl does not
        # wait (-W), since it would return at that point, long before replay reaches the target.
        server_opts = (
            f"-c port={port} -c listen_addresses='' -c unix_socket_directories='{run_dir}' "
            "-c logging_collector=off -c archive_mode=off -c hot_standby=on"
        )
        watch = ReplayWatch(meter, data_dir, run_dir, port, newest)
        started = time.monotonic()
        try:
            proc = run_as_postgres(
                [PG_BIN / "pg_ctl", "-D", data_dir, "-l", log, "-o", server_opts, "-W", "start"],
                check=False,
                timeout=120,
            )
            text = _wait_for_end_of_recovery(log, data_dir, deadline, watch)
            if text is None:
                raise deadline.timeout_error(f"WAL replay of {data_dir}")
            elapsed = time.monotonic() - started
            result = analyse_recovery_log(text, data_dir, target_time, elapsed)
            if target_time is None and expect_wal:
                result.expected_wal = expect_wal
                last = result.last_restored_segment
                if result.reached_target and (not last or last[:24] < expect_wal[:24]):
                    result.reached_target, result.short_of_archive = False, True
            if proc.returncode != 0 or not result.reached_target:
                raise DrctlError(recovery_failure_message(result, proc.returncode))
            watch.finish()
            return result
        finally:
            with contextlib.suppress(LocalPgError, OSError, subprocess.SubprocessError):
                run_as_postgres(
                    [PG_BIN / "pg_ctl", "-D", data_dir, "-m", "fast", "-w", "stop"],
                    check=False,
                    timeout=120,
                )
            if os.environ.get("DRCTL_KEEP_RECOVERY_LOG"):
                progress_step(f"recovery log kept in {log}")
            else:
                shutil.rmtree(run_dir, ignore_errors=True)


def _wait_for_end_of_recovery(
    log: Path, data_dir: Path, deadline: Deadline, watch: ReplayWatch
) -> str | None:
    """Server log once recovery is over (promoted and open, or the server gave up and exited);
    None when the deadline came first."""
    pid_file = data_dir / "postmaster.pid"
    seen_running = False
    next_poll = 0.0
    while not deadline.expired():
        text = log.read_text(errors="replace") if log.exists() else ""
        if "database system is ready to accept connections" in text:
            return text
        alive = _pid_file_alive(pid_file)
        seen_running = seen_running or alive
        # pg_ctl -W returns before the postmaster writes its pid file: not running yet is not
        # "exited" unless the server said why it stopped.
        if not alive and (seen_running or "FATAL" in text or "PANIC" in text):
            time.sleep(0.1)  # let the last lines reach the file
            return log.read_text(errors="replace") if log.exists() else text
        if time.monotonic() >= next_poll:
            watch.poll(text)
            next_poll = time.monotonic() + 1.0
        time.sleep(0.05)
    return None


def _pgbackrest_error(text: str) -> str:
    """pgBackRest's own ERROR lines (the cause), else the last lines."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR:" in ln]
    return " | ".join(errors[-3:] or lines[-3:]) or "(no output)"


def _pid_file_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, OSError) as exc:
        return isinstance(exc, PermissionError)
    return True


def progress_step(message: str) -> None:
    progress.print(f"[dim]pgbackrest:[/] {message}", markup=True)
