"""Throwaway PostgreSQL 15 clusters for tests, `drctl drill --local` and the benchmarks.

One ``LocalCluster`` is one data directory plus one postmaster on a free port on 127.0.0.1. The
helper exists because every real-database path in this repository (pgBackRest backup and restore,
streaming standbys, failover) needs the same few moves, done the same careful way:

- ``initdb`` refuses to run as root, so when this process is root every server-side command runs
  as the ``postgres`` OS user through ``runuser -u postgres --``, in a temp dir that user owns;
- the server listens on 127.0.0.1 only, on a port picked free at start, with its unix socket in
  its own directory (pgBackRest talks to Postgres through that socket, never over TCP);
- settings that this helper owns (port, listen address, socket dir, the caller's extras) live in
  ``localpg.conf``, included from ``postgresql.conf``. A base backup or a pgBackRest restore copies
  that file along with the data, so a copy started elsewhere only needs that one file rewritten.

Typical use::

    with LocalCluster("primary", settings={"wal_level": "replica"}) as pg:
        pg.execute("create table t (id int)")
        standby = pg.create_standby("standby", slot="dr_standby")
        ...
        standby.promote()
    # every server started through ``pg`` (standbys and adopted copies too) is stopped here

Clusters are stopped in ``__exit__`` and, as a last resort, at interpreter exit, so a failing
test never leaves a postmaster running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
INCLUDE_FILE = "localpg.conf"

_LIVE: weakref.WeakSet[LocalCluster] = weakref.WeakSet()


class LocalPgError(RuntimeError):
    """A local cluster could not be created, started or stopped; the message says which and why."""


def is_root() -> bool:
    return os.geteuid() == 0


def as_postgres(argv: Sequence[str]) -> list[str]:
    """argv run as the postgres OS user when we are root, unchanged otherwise."""
    argv = [str(a) for a in argv]
    return ["runuser", "-u", OS_USER, "--", *argv] if is_root() else argv


def run_as_postgres(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 300,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a server-side command as the postgres user, capturing output for error messages."""
    full_env = {**os.environ, **(env or {})}
    # runuser keeps the caller's cwd; root's may be unreadable for postgres.
    proc = subprocess.run(
        as_postgres(argv),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=str(cwd) if cwd else "/",
    )
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise LocalPgError(
            f"{Path(str(argv[0])).name} exited {proc.returncode}: " + " | ".join(tail)
        )
    return proc


def chown_to_postgres(path: str | Path) -> None:
    """Hand a directory we created to the postgres user (no-op unless we are root)."""
    if is_root():
        shutil.chown(path, user=OS_USER, group=OS_USER)


def make_postgres_dir(path: str | Path, mode: int = 0o700) -> Path:
    """mkdir -p owned by postgres, so server-side tools can write into it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    chown_to_postgres(path)
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quote_conf(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class LocalCluster:
    """A PostgreSQL 15 cluster in a temp dir, owned by the postgres OS user, on 127.0.0.1.

    Arguments:
        name: label used in the temp dir name and in error messages.
        settings: extra postgresql.conf settings (e.g. ``{"archive_mode": "on"}``); default none.
        base_dir: parent directory to create the cluster's dir in; default the system temp dir.
        data_dir: adopt an existing data directory instead of running initdb (see ``adopt``).
        keep: leave the files behind on exit (for post-mortems); default False.
    """

    def __init__(
        self,
        name: str = "pg",
        *,
        settings: Mapping[str, Any] | None = None,
        base_dir: str | Path | None = None,
        data_dir: str | Path | None = None,
        keep: bool = False,
    ):
        self.name = name
        self.settings: dict[str, Any] = dict(settings or {})
        self.keep = keep
        self.port: int | None = None
        self.children: list[LocalCluster] = []
        self._owns_root = data_dir is None
        if data_dir is None:
            parent = Path(base_dir) if base_dir else Path(tempfile.gettempdir())
            self.root = Path(tempfile.mkdtemp(prefix=f"localpg-{name}-", dir=parent))
            chown_to_postgres(self.root)
            self.data_dir = self.root / "data"
        else:
            self.data_dir = Path(data_dir)
            self.root = Path(tempfile.mkdtemp(prefix=f"localpg-{name}-run-"))
            chown_to_postgres(self.root)
        self.socket_dir = make_postgres_dir(self.root / "run", 0o755)
        self.log_file = self.root / "postgres.log"
        _LIVE.add(self)

    # -- lifecycle ---------------------------------------------------------------------------

    def init(self, *, checksums: bool = True, fresh: bool = False) -> LocalCluster:
        """initdb with trust auth (127.0.0.1 and the socket only) and data checksums.

        initdb takes seconds on a small VM, so by default the cluster is a copy of one initdb
        per process (same settings, same system identifier). ``fresh=True`` runs initdb anew,
        for a cluster that must not share a system identifier with another.
        """
        if (self.data_dir / "PG_VERSION").exists():
            raise LocalPgError(f"{self.data_dir} already holds a cluster; refusing to initdb")
        if fresh:
            _initdb(self.data_dir, checksums)
        else:
            template = _template(checksums)
            self.data_dir.mkdir(mode=0o700)
            chown_to_postgres(self.data_dir)
            run_as_postgres(["cp", "-a", f"{template}/.", self.data_dir])
        return self

    def _write_include(self) -> None:
        values = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": str(self.socket_dir),
            "logging_collector": False,
            **self.settings,
        }
        text = "# written by scripts/local/postgres.py for this copy of the cluster\n" + "".join(
            f"{k} = {_quote_conf(v)}\n" for k, v in values.items()
        )
        path = self.data_dir / INCLUDE_FILE
        path.write_text(text)
        chown_to_postgres(path)

    def configure(self, **settings: Any) -> None:
        """Add or change settings; they take effect at the next start (or reload)."""
        self.settings.update(settings)
        if self.port is not None:
            self._write_include()

    def start(self, timeout: float = 60) -> LocalCluster:
        """Start (on a free port the first time) and wait until it accepts connections."""
        if self.is_running():
            return self
        # A restart keeps the port: pgBackRest configs and standbys' primary_conninfo name it.
        if self.port is None:
            self.port = free_port()
        self._write_include()
        try:
            run_as_postgres(
                [
                    PG_BIN / "pg_ctl",
                    "-D",
                    self.data_dir,
                    "-l",
                    self.log_file,
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ],
                timeout=timeout + 10,
            )
        except LocalPgError as exc:
            raise LocalPgError(f"{self.name}: {exc}; log tail: {self.log_tail()}") from None
        return self

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """pg_ctl stop (mode smart|fast|immediate); no-op when it is not running."""
        if not self.is_running():
            return
        run_as_postgres(
            [
                PG_BIN / "pg_ctl",
                "-D",
                self.data_dir,
                "-m",
                mode,
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ],
            check=False,
            timeout=timeout + 10,
        )
        if self.is_running():
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a lost host would.

        Killing only the postmaster leaves backends holding shared memory until they notice,
        and a restart of the same data dir could then fail; a dead host leaves nothing behind.
        """
        pid = self.postmaster_pid()
        if pid is None:
            return
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(victim, signal.SIGKILL)
        # Wait until the pids are reaped, not merely dead: Postgres' lock-file check treats a
        # zombie postmaster (orphans are reaped by pid 1, which can take a second or two) as a
        # running server and would refuse to start the data dir again.
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{v}").exists() for v in victims) and time.monotonic() < deadline:
            time.sleep(0.02)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def promote(self, timeout: float = 60) -> None:
        """Promote a standby to primary and wait until it accepts writes."""
        run_as_postgres(
            [PG_BIN / "pg_ctl", "-D", self.data_dir, "-w", "-t", str(int(timeout)), "promote"],
            timeout=timeout + 10,
        )

    def cleanup(self) -> None:
        """Stop every server this cluster started, then delete its files unless ``keep``."""
        for child in self.children:
            child.cleanup()
        self.stop("immediate")
        if not self.keep:
            # An adopted data dir lives outside root and belongs to the caller: only our run
            # dir (socket, log) goes.
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        if not (self.data_dir / "PG_VERSION").exists():
            self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- connections -------------------------------------------------------------------------

    def _require_port(self) -> int:
        if self.port is None:
            raise LocalPgError(f"{self.name} has not been started")
        return self.port

    def conninfo(self, dbname: str = "postgres", **extra: Any) -> str:
        """libpq key/value conninfo over TCP on 127.0.0.1."""
        parts = {
            "host": "127.0.0.1",
            "port": self._require_port(),
            "user": "postgres",
            "dbname": dbname,
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def dsn(self, dbname: str = "postgres") -> str:
        """postgresql:// URL form of ``conninfo``."""
        return f"postgresql://postgres@127.0.0.1:{self._require_port()}/{dbname}"

    @contextlib.contextmanager
    def connect(self, dbname: str = "postgres") -> Iterator[psycopg.Connection]:
        conn = psycopg.connect(self.conninfo(dbname), autocommit=True, connect_timeout=10)
        try:
            yield conn
        finally:
            conn.close()

    def execute(self, sql: str, params: Sequence[Any] | None = None, dbname: str = "postgres"):
        """Run one statement in autocommit mode; returns nothing."""
        with self.connect(dbname) as conn:
            conn.execute(sql, params)

    def query(
        self, sql: str, params: Sequence[Any] | None = None, dbname: str = "postgres"
    ) -> list[tuple]:
        """Run one statement and return all rows as tuples."""
        with self.connect(dbname) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | None = None, dbname: str = "postgres"):
        rows = self.query(sql, params, dbname)
        return rows[0][0] if rows else None

    def wait_for(self, sql: str, *, timeout: float = 30, dbname: str = "postgres") -> Any:
        """Poll until ``sql`` returns a truthy first column (e.g. a standby catching up)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                last = self.scalar(sql, dbname=dbname)
                if last:
                    return last
            time.sleep(0.05)
        raise LocalPgError(f"{self.name}: timed out after {timeout}s waiting for: {sql} ({last!r})")

    # -- replication and copies --------------------------------------------------------------

    def create_standby(
        self,
        name: str = "standby",
        *,
        slot: str | None = "standby",
        settings: Mapping[str, Any] | None = None,
        start: bool = True,
    ) -> LocalCluster:
        """A streaming standby of this (running) cluster, through pg_basebackup.

        ``slot`` names a physical replication slot created on this cluster so WAL the standby
        still needs is never recycled (None streams without a slot). The standby gets
        ``standby.signal`` and ``primary_conninfo`` (pg_basebackup -R). It is stopped with this
        cluster on cleanup.
        """
        standby = LocalCluster(name, settings={**self.settings, **(settings or {})})
        argv = [
            PG_BIN / "pg_basebackup",
            "-D",
            standby.data_dir,
            "-d",
            self.conninfo(application_name=name),
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            # A throwaway copy: the final fsync of every file costs seconds and buys nothing.
            "--no-sync",
        ]
        if slot:
            if not self.scalar(
                "select count(*) from pg_replication_slots where slot_name = %s", [slot]
            ):
                self.execute("select pg_create_physical_replication_slot(%s)", [slot])
            argv += ["-S", slot]
        run_as_postgres(argv)
        self.children.append(standby)
        if start:
            standby.start()
        return standby

    def adopt(
        self,
        data_dir: str | Path,
        name: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> LocalCluster:
        """A cluster over an existing data dir (a restore, a copy), stopped with this one.

        The copy keeps its own postgresql.conf; only ``localpg.conf`` (port, socket, extras) is
        rewritten, so it never collides with the cluster it was copied from.
        """
        data_dir = Path(data_dir)
        conf = data_dir / "postgresql.conf"
        if conf.exists() and INCLUDE_FILE not in conf.read_text():
            with conf.open("a") as fh:
                fh.write(f"\ninclude_if_exists '{INCLUDE_FILE}'\n")
        copy = LocalCluster(name or f"{self.name}-copy", data_dir=data_dir, settings=settings)
        self.children.append(copy)
        return copy

    def is_in_recovery(self) -> bool:
        return bool(self.scalar("select pg_is_in_recovery()"))

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __repr__(self) -> str:
        return f"LocalCluster({self.name!r}, data_dir={str(self.data_dir)!r}, port={self.port})"


_TEMPLATES: dict[bool, Path] = {}


def _initdb(data_dir: Path, checksums: bool) -> None:
    argv = [
        PG_BIN / "initdb",
        "-D",
        data_dir,
        "-U",
        "postgres",
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-instructions",
        # Throwaway clusters: skipping initdb's final fsync saves seconds.
        "--no-sync",
    ]
    if checksums:
        argv.append("--data-checksums")
    run_as_postgres(argv)
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write(f"\ninclude_if_exists '{INCLUDE_FILE}'\n")
    with (data_dir / "pg_hba.conf").open("a") as hba:
        # Standbys and pg_basebackup connect over TCP with the replication pseudo-database.
        hba.write("host replication all 127.0.0.1/32 trust\n")


def _template(checksums: bool) -> Path:
    """The process-wide initdb'd data dir clusters are copied from (removed at exit)."""
    if checksums not in _TEMPLATES:
        root = Path(tempfile.mkdtemp(prefix="localpg-template-"))
        chown_to_postgres(root)
        _initdb(root / "data", checksums)
        _TEMPLATES[checksums] = root / "data"
    return _TEMPLATES[checksums]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the postmaster's backends and auxiliary processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@atexit.register
def _stop_leftovers() -> None:
    for cluster in list(_LIVE):
        with contextlib.suppress(Exception):
            cluster.stop("immediate", timeout=10)
    for template in _TEMPLATES.values():
        shutil.rmtree(template.parent, ignore_errors=True)
