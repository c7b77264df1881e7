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

TEST_TIMING = LeaseTiming(ttl_s=5.0, interval_s=0.3, stop_grace_s=2.0, call_timeout_s=3.0)
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
        "PATH": f"{PG_BIN}:/usr/bin:/bin",
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
        cluster: LocalCluster,
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
