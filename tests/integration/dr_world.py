"""What the failover integration tests share: the rendered host agents run as the hosts run them.

- ``aws_shim``: an ``aws`` command the postgres OS user can run (the project's awscli package
  under the system python3; root's venv interpreter is not readable by other users), pointed at
  moto's server through ``AWS_ENDPOINT_URL``.
- ``Guard``: the rendered fence guard (components/agents/fence_guard.py, its JSON config from
  ``pg_host_agents.guard_config``) run as the cluster's OS user, every ``interval_s``, the way
  its systemd timer runs it; ``cut_off`` points it at a dead endpoint (the primary region losing
  its path to the DR region).
- ``Heartbeat``: the rendered heartbeat unit's ExecStart, run by bash in a loop.

Timing is scaled down (``TEST_TIMING``) so a lease runs out in seconds; the formula is the
production one (pg_host_agents.fence_wait_s).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import psycopg

from components.objectives import parse_objectives
from components.pg_host_agents import (
    HostPg,
    LeaseTiming,
    agent_source,
    guard_config,
    render_heartbeat,
)
from scripts.local.evaluate import read_stack_config
from scripts.local.postgres import PG_BIN, LocalCluster, free_port, make_postgres_dir
from scripts.runbooks import failover as fo

# A shared 2-core machine under load: an aws CLI call can take seconds, so the TTL leaves room
# for a slow tick; the cut-off test waits the whole fence_wait_s (about 34 s).
TEST_TIMING = LeaseTiming(ttl_s=8.0, interval_s=0.5, stop_grace_s=2.0, call_timeout_s=8.0)
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))


def exec_start(unit: str) -> list[str]:
    """A unit's ExecStart as systemd runs it: split, then $$ -> $ and %% -> %."""
    (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
    return [a.replace("$$", "$").replace("%%", "%") for a in shlex.split(line[len("ExecStart=") :])]


def objectives():
    return parse_objectives(read_stack_config("prod"), "prod")


def scaled(plan: fo.FailoverPlan, timing: LeaseTiming = TEST_TIMING) -> fo.FailoverPlan:
    return replace(
        plan,
        lease_ttl_s=timing.ttl_s,
        guard_interval_s=timing.interval_s,
        stop_grace_s=timing.stop_grace_s,
        guard_call_timeout_s=timing.call_timeout_s,
    )


def shared_dir(prefix: str) -> Path:
    """A temp dir the postgres user owns (pytest's tmp_path is root-only)."""
    return make_postgres_dir(tempfile.mkdtemp(prefix=prefix), 0o755)


def aws_shim(directory: Path) -> Path:
    shim = directory / "aws"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={SITE_PACKAGES} exec /usr/bin/python3 -m awscli "$@"\n')
    shim.chmod(0o755)
    return shim


def agent_env(endpoint_url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": f"{PG_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
    }


def host_pg(cluster: LocalCluster) -> HostPg:
    return HostPg(
        data_dir=str(cluster.data_dir),
        port=int(cluster.port),
        socket_dir=str(cluster.socket_dir),
        bin=str(PG_BIN),
    )


def as_user(user: str, argv: list[str], env: dict[str, str], timeout: float = 60):
    words = [f"{k}={v}" for k, v in env.items()]
    return subprocess.run(
        ["runuser", "-u", user, "--", "env", *words, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )


class Guard:
    """The rendered fence guard of one host (module docstring)."""

    def __init__(
        self,
        cluster: LocalCluster | None,
        role: str,
        *,
        lease_bucket: str,
        endpoint_url: str,
        pgbackrest_argv: list[str] | None = None,
        timing: LeaseTiming = TEST_TIMING,
        os_user: str = "postgres",
        pg: HostPg | None = None,
    ):
        self.dir = shared_dir(f"guard-{role}-")
        self.shim = aws_shim(self.dir)
        self.os_user, self.timing = os_user, timing
        self.env = agent_env(endpoint_url)
        config = guard_config(
            objectives(),
            role,
            lease_bucket=lease_bucket,
            pg=pg or host_pg(cluster),
            pgbackrest_argv=pgbackrest_argv or [],
            timing=timing,
            aws=str(self.shim),
        )
        config.update(
            state_file=str(self.dir / "state.json"),
            override_file=str(self.dir / "fence-override"),
        )
        self.script = self.dir / "fence_guard.py"
        self.script.write_text(agent_source("fence_guard"))  # the shipped text, verbatim
        self.config = self.dir / "fence_guard.json"
        self.config.write_text(json.dumps(config, indent=2))
        for path in (self.dir, self.script, self.config, self.shim):
            os.chown(path, *_ids(os_user))
        self.log: list[subprocess.CompletedProcess] = []
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, command: str) -> subprocess.CompletedProcess:
        argv = ["/usr/bin/python3", str(self.script), "--config", str(self.config), command]
        done = as_user(self.os_user, argv, self.env, timeout=120)
        self.log.append(done)
        return done

    def state(self) -> dict:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self) -> Guard:
        def loop():
            while not self._halt.is_set():
                self.run("check")
                self._halt.wait(self.timing.interval_s)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread:
            self._thread.join(60)

    def remove(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cut_off(self) -> None:
        """From now on the guard cannot reach the DR region (a port nobody listens on)."""
        self.env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"

    def stderr(self) -> str:
        return "\n".join(d.stderr for d in self.log)


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


class Heartbeat:
    """The rendered heartbeat unit (ExecStart, unquoted as systemd does) run every ``every_s``."""

    def __init__(self, cluster: LocalCluster, every_s: float = 0.5, pg: HostPg | None = None):
        service = render_heartbeat(pg or host_pg(cluster))["systemd/platform-dr-heartbeat.service"]
        self.argv = exec_start(service)
        self.every_s = every_s
        self.env = {"PATH": f"{PG_BIN}:/usr/bin:/bin"}
        self.results: list[subprocess.CompletedProcess] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def beat(self) -> subprocess.CompletedProcess:
        done = as_user("postgres", self.argv, self.env)
        self.results.append(done)
        return done

    def _loop(self) -> None:
        while not self._halt.is_set():
            self.beat()
            self._halt.wait(self.every_s)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(30)


def app_role(cluster: LocalCluster, name: str = "app_writer") -> None:
    """The application's own role: login, no superuser, writes the tables it needs."""
    cluster.execute(f"create role {name} login password 'app-secret' nosuperuser")
    cluster.execute(f"grant all on all tables in schema public to {name}")
    cluster.execute(f"grant all on all sequences in schema public to {name}")


def app_dsn(cluster: LocalCluster, name: str = "app_writer") -> str:
    return f"postgresql://{name}:app-secret@127.0.0.1:{cluster.port}/postgres"


def app_write(dsn: str, payload: str = "app write") -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
        conn.execute("insert into events (payload) values (%s)", [payload])


# -- hosts as separate service instances ---------------------------------------------------------


def os_user(name: str) -> str:
    """A system user standing for one database host's service account (created if missing)."""
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
    return name


class HostCluster:
    """A PostgreSQL 15 cluster run by its own OS user in its own directory: one "host".

    Managed only through that user's LocalHost (initdb, pg_ctl, files), the way a runbook reaches
    a real host. Host-level config lives in ``local.conf`` (port, socket, TLS) and
    ``pgbackrest-archiving.conf`` (the rendered archiving settings) at the top of the data
    directory, so a copy keeps its own after pg_rewind or pg_basebackup brought the source's.
    """

    def __init__(self, name: str, user: str, base: Path, env: dict[str, str] | None = None):
        from scripts.dataops.hosts import LocalHost

        self.name, self.user = name, user
        self.host = LocalHost(name=name, os_user=user, base_env=env or {})
        self.root = base / name
        self.root.mkdir(mode=0o755)
        for sub in ("run", "etc", "etc/conf.d", "spool", "lock", "log", "units"):
            (self.root / sub).mkdir(mode=0o755)
        subprocess.run(["chown", "-R", f"{user}:{user}", str(self.root)], check=True)
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "run"
        self.port = free_port()

    def initdb(self, checksums: bool = False) -> None:
        argv = [f"{PG_BIN}/initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust"]
        argv += ["--encoding=UTF8", "--locale=C", "--no-instructions", "--no-sync"]
        if checksums:
            argv.append("--data-checksums")
        self.host.run(argv)
        conf = self.data_dir / "postgresql.conf"
        self.host.run(
            [
                "sh",
                "-c",
                "printf \"\\ninclude_if_exists 'local.conf'\\ninclude_if_exists "
                '\'pgbackrest-archiving.conf\'\\n" >> "$1"',
                "sh",
                str(conf),
            ]
        )

    def write(self, name: str, text: str, mode: str = "0600") -> Path:
        from scripts.dataops.hosts import write_text

        path = self.data_dir / name if not name.startswith("/") else Path(name)
        write_text(self.host, str(path), text, mode)
        return path

    def local_conf(self, **extra: object) -> None:
        values = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": str(self.socket_dir),
            "logging_collector": False,
            "fsync": False,
            **extra,
        }
        text = "".join(f"{k} = {_conf(v)}\n" for k, v in values.items())
        self.write("local.conf", text)

    def pg_ctl(self, *args: str, check: bool = True):
        return self.host.run([f"{PG_BIN}/pg_ctl", "-D", str(self.data_dir), *args], check=check)

    def start(self) -> None:
        self.pg_ctl("-l", str(self.root / "postgres.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "-t", "60", "stop", check=False)

    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        import signal as sig

        pid = self.pid()
        if pid is not None:
            os.kill(pid, sig.SIGKILL)
            import time as _t

            deadline = _t.monotonic() + 15
            while self.pid() is not None and _t.monotonic() < deadline:
                _t.sleep(0.05)

    def dsn(self, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/postgres"

    def query(self, sql: str, params=None) -> list[tuple]:
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def log(self) -> str:
        try:
            return (self.root / "postgres.log").read_text(errors="replace")
        except OSError:
            return ""

    def pg(self, data_dir: str | None = None) -> HostPg:
        return HostPg(
            data_dir=data_dir or str(self.data_dir),
            port=self.port,
            socket_dir=str(self.socket_dir),
            bin=str(PG_BIN),
        )

    def cleanup(self) -> None:
        import contextlib
        import signal as sig

        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, sig.SIGCONT)
        with contextlib.suppress(Exception):
            self.stop("immediate")
        self.kill()


def _conf(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """(CA cert, server cert, server key) for 127.0.0.1: what sslmode=verify-full checks."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "platform-dr test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


class Stunnel:
    """TLS in front of moto's plain server: pgBackRest (OpenSSL 3) talks S3 over TLS only."""

    def __init__(self, target_port: int):
        import shutil
        import socket
        import time as _t

        from tests.integration.test_pgbackrest_s3 import _self_signed

        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        assert binary, "stunnel4 is not installed: run `make sysdeps`"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="drctl-stunnel-"))
        cert, key = _self_signed(self.dir)
        conf = self.dir / "stunnel.conf"
        conf.write_text(
            "foreground = yes\npid =\n"
            f"[s3]\naccept = 127.0.0.1:{self.port}\nconnect = 127.0.0.1:{target_port}\n"
            f"cert = {cert}\nkey = {key}\n"
        )
        # Its log goes to a file: a pipe nobody reads fills up after some hundred connections
        # and stunnel then blocks on it, every TLS handshake with it.
        self.log = (self.dir / "stunnel.log").open("w")
        self.proc = subprocess.Popen([binary, str(conf)], stderr=self.log, stdout=self.log)
        deadline = _t.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or _t.monotonic() > deadline:
                    text = (self.dir / "stunnel.log").read_text()
                    raise AssertionError(f"stunnel did not start: {text[-500:]}") from None
                _t.sleep(0.05)

    def stop(self) -> None:
        import shutil

        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # connections still open: it must go anyway
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
