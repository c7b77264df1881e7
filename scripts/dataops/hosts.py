"""Database hosts: where a runbook step runs a command or touches a file.

Failover's re-arm, failback's re-seed and the archive lag probe act on the machines where the data
directories live, not on the operator's laptop. A ``Host`` is that machine, as one service
instance (OS user) on it:

- ``LocalHost(os_user)``: this machine, as ``os_user`` (``runuser -u`` when we are root). Tests
  give each cluster its own OS user, so two "hosts" really are two service instances that cannot
  read each other's files;
- ``SshHost(destination, become)``: another machine through ``ssh -o BatchMode=yes``, as
  ``become`` through ``sudo -n -u``. No password prompt can hang a 3 a.m. run.

Every file operation goes through ``run`` too (``cat``, ``install``), so it happens with the
service user's permissions on its own host. Secrets never go on a command line: they are passed
as environment (``env``) or on stdin (``write_text``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scripts.common import DrctlError, ExitCode

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


class Host(Protocol):
    name: str
    pg_bin: str

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 600,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]: ...


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return " | ".join(lines[-6:]) or "(no output)"


def _finish(
    host: str, argv: Sequence[str], proc: subprocess.CompletedProcess[str], check: bool
) -> subprocess.CompletedProcess[str]:
    if check and proc.returncode != 0:
        raise DrctlError(
            f"{host}: {os.path.basename(str(argv[0]))} exited {proc.returncode}: {_tail(proc)}",
            ExitCode.STEP_FAILED,
        )
    return proc


@dataclass
class LocalHost:
    """This machine, acting as ``os_user`` (default postgres)."""

    name: str = "localhost"
    os_user: str = "postgres"
    pg_bin: str = PG_BIN
    # Extra environment for every command (e.g. PATH with the aws CLI, AWS_ENDPOINT_URL in tests).
    base_env: Mapping[str, str] = field(default_factory=dict)

    def _prefix(self) -> list[str]:
        if os.geteuid() == 0 and self.os_user != "root":
            return [RUNUSER, "-u", self.os_user, "--"]
        return []

    def run(self, argv, *, env=None, input=None, timeout=600, check=True):
        full_env = {**os.environ, **self.base_env, **(env or {})}
        try:
            proc = subprocess.run(
                [*self._prefix(), *map(str, argv)],
                capture_output=True,
                text=True,
                env=full_env,
                input=input,
                timeout=timeout,
                cwd="/",
            )
        except subprocess.TimeoutExpired:
            raise DrctlError(
                f"{self.name}: {os.path.basename(str(argv[0]))} did not finish in {timeout:.0f}s",
                ExitCode.STEP_FAILED,
            ) from None
        except FileNotFoundError as exc:
            raise DrctlError(
                f"{self.name}: {exc.filename or argv[0]} is not installed here",
                ExitCode.PRECONDITION_FAILED,
            ) from None
        return _finish(self.name, argv, proc, check)


@dataclass
class SshHost:
    """Another machine: ``ssh destination -- sudo -n -u become argv...``."""

    destination: str
    become: str = "postgres"
    pg_bin: str = PG_BIN
    ssh_options: tuple[str, ...] = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")

    @property
    def name(self) -> str:
        return self.destination

    def run(self, argv, *, env=None, input=None, timeout=600, check=True):
        # The remote shell sees one string; environment goes in as `env K=V` words (values
        # quoted), and secrets should come on stdin instead (see write_text).
        words = ["sudo", "-n", "-u", self.become, "env"]
        words += [f"{k}={v}" for k, v in (env or {}).items()]
        words += [str(a) for a in argv]
        command = ["ssh", *self.ssh_options, self.destination, "--", shlex.join(words)]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, input=input, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise DrctlError(
                f"{self.name}: ssh did not finish in {timeout:.0f}s", ExitCode.STEP_FAILED
            ) from None
        return _finish(self.name, argv, proc, check)


def parse_host(spec: str | None, default_user: str = "postgres") -> Host:
    """``local``, ``local:USER``, or ``ssh://[login@]host[?become=USER]``; a clear error else."""
    if not spec or spec == "local":
        return LocalHost(os_user=default_user)
    if spec.startswith("local:"):
        return LocalHost(os_user=spec.split(":", 1)[1] or default_user)
    if spec.startswith("ssh://"):
        rest = spec[len("ssh://") :]
        target, _, query = rest.partition("?")
        become = default_user
        for part in filter(None, query.split("&")):
            key, _, value = part.partition("=")
            if key != "become" or not value:
                raise DrctlError(
                    f"host {spec!r}: unknown option {part!r}; allowed: become=USER",
                    ExitCode.INVALID_CONFIG,
                )
            become = value
        if not target:
            raise DrctlError(f"host {spec!r} names no machine", ExitCode.INVALID_CONFIG)
        return SshHost(target, become)
    raise DrctlError(
        f"host {spec!r} is not valid: use local, local:USER or ssh://[login@]host[?become=USER]",
        ExitCode.INVALID_CONFIG,
    )


# -- file operations through ``run`` -------------------------------------------------------------


def read_text(host: Host, path: str) -> str | None:
    """A file's text on the host, or None when it does not exist."""
    proc = host.run(["sh", "-c", 'test -f "$1" && cat "$1"', "sh", str(path)], check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout


def write_text(host: Host, path: str, text: str, mode: str = "0600") -> None:
    """Write ``text`` (from stdin, never argv) atomically: a temp file beside it, then rename."""
    script = 'umask 077; tmp="$1.drctl-tmp"; cat > "$tmp" && chmod "$2" "$tmp" && mv -f "$tmp" "$1"'
    host.run(["sh", "-c", script, "sh", str(path), mode], input=text)


def exists(host: Host, path: str) -> bool:
    return host.run(["test", "-e", str(path)], check=False).returncode == 0


def remove(host: Host, path: str) -> None:
    host.run(["rm", "-f", str(path)])


def pg(host: Host, tool: str) -> str:
    return f"{host.pg_bin}/{tool}"


@dataclass
class DbNode:
    """One database server: the host it lives on and where its files are.

    data_dir: the cluster's data directory on ``host``.
    dsn: how the runbook connects to it (None: not reachable by SQL from here).
    pgbackrest_config / pgbackrest_include / stanza: the host's pgBackRest files; default the
        rendered paths (components/pgbackrest_config.py).
    unit_dir: where rendered systemd units go; default /etc/systemd/system.
    systemd: enable units with ``systemctl``; False on hosts without systemd (tests): units are
        installed and the step reports which ones an operator must enable.
    start_argv / stop_argv: how to start and stop the server; default ``pg_ctl`` on data_dir
        (give ``systemctl start postgresql@15-main`` where systemd runs it).
    artefacts: the rendered host files for this host; default None: the stack's
        ``databaseArtefacts`` (every host of a stack gets the same files).
    """

    host: Host
    data_dir: str
    dsn: str | None = None
    pgbackrest_config: str = "/etc/pgbackrest/pgbackrest.conf"
    pgbackrest_include: str = "/etc/pgbackrest/conf.d"
    stanza: str = "main"
    unit_dir: str = "/etc/systemd/system"
    systemd: bool = True
    start_argv: tuple[str, ...] = ()
    stop_argv: tuple[str, ...] = ()
    artefacts: Mapping[str, str] | None = None

    @property
    def pgbackrest(self) -> list[str]:
        from components.pgbackrest_config import pgbackrest_command

        return pgbackrest_command(self.stanza, self.pgbackrest_config, self.pgbackrest_include)

    def file(self, name: str) -> str:
        return f"{self.data_dir.rstrip('/')}/{name}"
