"""Turning a database server into a standby of another, on the host where its files are.

Every step goes through the node's ``Host`` (scripts/dataops/hosts.py): the data directory is
inspected, shut down, rewound or copied, configured and started by the service user of *that*
host, never by reading its files from the operator's machine.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Mapping
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from components.pg_host_agents import STANDBY_APPLICATION_NAME
from scripts.common import DrctlError, ExitCode
from scripts.dataops.database import FENCE_SETTINGS, opened, split_password
from scripts.dataops.hosts import DbNode, exists, pg, read_text, remove, write_text

REPLICATION_SETTINGS = ("primary_conninfo", "primary_slot_name")
# Settings a host's own postgresql.auto.conf must not inherit from the server it was copied
# from: the fence, the upstream, and the RPO governor's synchronous commit.
NOT_INHERITED = (
    *FENCE_SETTINGS,
    *REPLICATION_SETTINGS,
    "synchronous_standby_names",
    "synchronous_commit",
)


def is_running(node: DbNode) -> bool:
    proc = node.host.run([pg(node.host, "pg_ctl"), "-D", node.data_dir, "status"], check=False)
    return proc.returncode == 0


def stop(node: DbNode, mode: str = "fast") -> None:
    if node.stop_argv:
        node.host.run(list(node.stop_argv))
        return
    node.host.run([pg(node.host, "pg_ctl"), "-D", node.data_dir, "-m", mode, "-w", "stop"])


def start(node: DbNode) -> None:
    for stale in ("postmaster.pid", "backup_label.old"):
        remove(node.host, node.file(stale))
    if node.start_argv:
        node.host.run(list(node.start_argv))
        return
    log = node.file("drctl-start.log")
    try:
        node.host.run(
            [pg(node.host, "pg_ctl"), "-D", node.data_dir, "-l", log, "-w", "-t", "120", "start"]
        )
    except DrctlError as exc:
        tail = " | ".join((read_text(node.host, log) or "").splitlines()[-6:])
        raise DrctlError(f"{exc}; server log: {tail}") from None


def clean_shutdown(node: DbNode) -> None:
    """Leave the cluster cleanly shut down without ever letting it accept a connection.

    pg_rewind needs a clean shutdown; a crashed primary gets crash recovery in single-user
    mode, which cannot serve a client (starting it normally would make it writable again).
    """
    if is_running(node):
        stop(node)
        return
    state = node.host.run([pg(node.host, "pg_controldata"), node.data_dir]).stdout
    if re.search(r"Database cluster state:\s+shut down", state):
        return
    proc = node.host.run(
        [pg(node.host, "postgres"), "--single", "-D", node.data_dir, "postgres"],
        input="",
        check=False,
    )
    if proc.returncode != 0:
        raise DrctlError(
            f"{node.host.name}: single-user crash recovery failed: {proc.stderr[-300:]}"
        )


def save_host_config(node: DbNode) -> dict[str, str]:
    """This host's own config files: pg_rewind and pg_basebackup copy the source's over them."""
    listing = node.host.run(
        ["sh", "-c", 'cd "$1" && ls -1 -- *.conf 2>/dev/null || true', "sh", node.data_dir]
    ).stdout.split()
    saved = {}
    for name in listing:
        text = read_text(node.host, node.file(name))
        if text is not None:
            saved[name] = text
    return saved


def archive_restore_command(node: DbNode) -> str:
    """WAL from the host's own pgBackRest repositories (archive-get tries them in order)."""
    return shlex.join([*node.pgbackrest, "archive-get"]) + ' %f "%p"'


def _with_restore_command(node: DbNode, auto_conf: str) -> str:
    if any(line.split("=", 1)[0].strip() == "restore_command" for line in auto_conf.splitlines()):
        return auto_conf
    quoted = archive_restore_command(node).replace("'", "''")
    return auto_conf.rstrip("\n") + f"\nrestore_command = '{quoted}'\n"


def restore_host_config(
    node: DbNode, saved: Mapping[str, str], upstream_conninfo: str, slot: str
) -> None:
    for name, text in saved.items():
        if name != "postgresql.auto.conf":
            write_text(node.host, node.file(name), text)
    auto = _with_restore_command(node, saved.get("postgresql.auto.conf", ""))
    kept = [
        line for line in auto.splitlines() if line.split("=", 1)[0].strip() not in NOT_INHERITED
    ]
    quoted = upstream_conninfo.replace("'", "''")
    kept += [f"primary_conninfo = '{quoted}'", f"primary_slot_name = '{slot}'"]
    write_text(node.host, node.file("postgresql.auto.conf"), "\n".join(kept) + "\n")
    write_text(node.host, node.file("standby.signal"), "")


def replication_conninfo(dsn: str, application_name: str = STANDBY_APPLICATION_NAME) -> str:
    """The upstream's conninfo for primary_conninfo, with its password left to a passfile."""
    parts = {k: v for k, v in conninfo_to_dict(dsn).items() if k != "password"}
    parts["application_name"] = application_name
    parts.pop("dbname", None)
    return make_conninfo(**parts)


def _secret_env(node: DbNode, password_env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The password as a 0600 passfile on the node's host (written from stdin), never argv."""
    if not password_env:
        return {}, ""
    tmp = node.host.run(["mktemp", "-d", "/tmp/drctl-pass-XXXXXX"]).stdout.strip()
    write_text(node.host, f"{tmp}/pgpass", f"*:*:*:*:{password_env['PGPASSWORD']}\n")
    return {"PGPASSFILE": f"{tmp}/pgpass"}, tmp


def pgbackrest_start(node: DbNode) -> str:
    """Undo a fence guard's ``pgbackrest stop``: a standby's restore_command needs archive-get."""
    proc = node.host.run([*node.pgbackrest, "start"], check=False)
    return f"exit {proc.returncode}"


def reseed_as_standby(
    node: DbNode, upstream_dsn: str, slot: str, application_name: str = STANDBY_APPLICATION_NAME
) -> dict[str, Any]:
    """Make ``node`` a streaming standby of the upstream: pg_rewind, else pg_basebackup.

    A rewind that fails, or whose result will not start, falls back to a full copy; the old files
    are moved aside (``<dir>.before-reseed-<time>``), never deleted.
    """
    if not exists(node.host, node.file("PG_VERSION")):
        raise DrctlError(
            f"{node.host.name}:{node.data_dir} holds no PostgreSQL cluster",
            ExitCode.PRECONDITION_FAILED,
        )
    with opened(upstream_dsn, "new upstream") as upstream:
        found = upstream.execute(
            "select count(*) from pg_replication_slots where slot_name = %s", [slot]
        ).fetchone()[0]
        if not found:
            upstream.execute("select pg_create_physical_replication_slot(%s, true)", [slot])
        # pg_rewind reads the source's timeline from its control file, which a freshly
        # promoted server only updates at its first checkpoint (see the pg_rewind docs).
        upstream.execute("checkpoint")
    saved = save_host_config(node)
    clean_shutdown(node)
    source, password_env = split_password(upstream_dsn)
    env, tmp = _secret_env(node, password_env)
    conninfo = replication_conninfo(upstream_dsn, application_name)
    result: dict[str, Any] = {"host": node.host.name, "data_dir": node.data_dir, "slot": slot}
    # A guard's `pgbackrest stop` would also stop archive-get, which pg_rewind needs below.
    result["pgbackrest_start"] = pgbackrest_start(node)
    try:
        try:
            # WAL the old server already recycled comes back from its archive
            # (--restore-target-wal runs the target's restore_command).
            auto = read_text(node.host, node.file("postgresql.auto.conf")) or ""
            write_text(
                node.host, node.file("postgresql.auto.conf"), _with_restore_command(node, auto)
            )
            node.host.run(
                [
                    pg(node.host, "pg_rewind"),
                    f"--target-pgdata={node.data_dir}",
                    f"--source-server={source}",
                    "--restore-target-wal",
                ],
                env=env,
            )
            restore_host_config(node, saved, conninfo, slot)
            start(node)
            return {**result, "method": "pg_rewind"}
        except DrctlError as exc:
            reason = str(exc)[:300]
        # Without checksums or wal_log_hints, with WAL already recycled, or after timeline
        # switches pg_rewind cannot follow, only a full copy works.
        if is_running(node):
            stop(node)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        aside = f"{node.data_dir.rstrip('/')}.before-reseed-{stamp}"
        node.host.run(["mv", node.data_dir, aside])
        node.host.run(["install", "-d", "-m", "0700", node.data_dir])
        argv = [pg(node.host, "pg_basebackup"), "-D", node.data_dir, "-d", source, "-X", "stream"]
        node.host.run([*argv, "-c", "fast", "-S", slot], env=env)
        restore_host_config(node, saved, conninfo, slot)
        start(node)
        return {**result, "method": "pg_basebackup", "rewind_failed": reason, "kept_aside": aside}
    finally:
        if tmp:
            node.host.run(["rm", "-rf", tmp], check=False)
