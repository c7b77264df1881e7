#!/usr/bin/python3
"""platform-dr fence guard: PostgreSQL on this host serves as primary only while it holds the lease.

Shipped verbatim to every database host (components/pg_host_agents.py renders its config and
systemd units) and run as the postgres OS user. Python standard library only; it talks to S3
through the host's ``aws`` CLI (instance profile credentials) and to PostgreSQL through
``psql``/``pg_ctl``.

The lease is one JSON object in the failover control bucket in the DR region::

    {"version": 1, "epoch": 4, "holder": "us-east-1", "ttl_s": 180, "renewed_at": ...}

``holder`` is the region whose database may be primary. ``drctl failover`` moves it to the DR
region and raises the epoch, with an S3 conditional write (``If-Match`` on the ETag it read), so
two writers can never both believe they changed it from the same state.

Commands:

``check`` (the timer, every ``interval_s``):
  * the lease names this region and the local server is a primary: renew it (``If-Match``); a
    renewal that fails because the object changed means someone took the lease;
  * the lease names another region and the local server runs as a primary: fence it, i.e.
    ``pgbackrest stop`` (no archive-push or backup into the stanza from an abandoned timeline),
    then stop PostgreSQL (fast, then immediate, then SIGKILL of the postmaster), and write an
    acknowledgement object the failover waits for;
  * the lease cannot be read or renewed: once the last successful renewal is older than
    ``ttl_s``, fence anyway (self-fencing, as Patroni's leader demotes itself when it cannot
    update its leader key). ``drctl failover`` waits ``ttl_s`` plus a tick before it promotes
    when no acknowledgement arrives, so by then this host has stopped even if it cannot reach
    the DR region at all.

``preflight`` (``ExecStartPre`` of the PostgreSQL unit): refuse to start a primary (no
``standby.signal``) unless the lease names this region, or it cannot be read and this host
renewed it less than ``ttl_s`` ago. A standby always starts. ``override_file`` present: start
anyway and say so (break glass; the file names who and why).

``status``: print the lease and the local state as JSON.

Exit codes: 0 fine, 1 refused or fenced, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OK, FENCED, BAD_CONFIG = 0, 1, 2


def log(message: str) -> None:
    print(f"fence-guard: {message}", file=sys.stderr, flush=True)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Unreadable(Exception):
    """The lease could not be read or written (network, credentials, S3)."""


class Changed(Exception):
    """A conditional write found the lease changed (HTTP 412/409)."""


# -- S3 through the aws CLI ----------------------------------------------------------------------


def _aws(cfg: dict, *args: str) -> subprocess.CompletedProcess:
    lease = cfg["lease"]
    argv = [
        cfg.get("aws", "aws"),
        "s3api",
        *args,
        "--bucket",
        lease["bucket"],
        "--region",
        lease["region"],
        "--cli-connect-timeout",
        "5",
        "--cli-read-timeout",
        "5",
        "--output",
        "json",
    ]
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}
    timeout = float(cfg.get("aws_timeout_s", 20))
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unreadable(f"aws s3api {args[0]}: {exc}") from None


def read_lease(cfg: dict) -> tuple[dict | None, str | None]:
    """(lease, ETag), (None, None) when there is none yet; Unreadable on any other failure."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "lease.json"
        proc = _aws(cfg, "get-object", "--key", cfg["lease"]["key"], str(body))
        if proc.returncode != 0:
            if "NoSuchKey" in proc.stderr or "(404)" in proc.stderr:
                return None, None
            raise Unreadable(proc.stderr.strip()[-300:] or f"exit {proc.returncode}")
        try:
            etag = json.loads(proc.stdout)["ETag"]
            return json.loads(body.read_text()), etag
        except (ValueError, KeyError) as exc:
            raise Unreadable(f"lease object unreadable: {exc}") from None


def write_object(cfg: dict, key: str, doc: dict, *, if_match: str | None, create: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "doc.json"
        body.write_text(json.dumps(doc, indent=2))
        args = ["put-object", "--key", key, "--body", str(body)]
        args += ["--content-type", "application/json"]
        if if_match:
            args += ["--if-match", if_match]
        elif create:
            args += ["--if-none-match", "*"]
        proc = _aws(cfg, *args)
        if proc.returncode != 0:
            if "PreconditionFailed" in proc.stderr or "ConditionalRequestConflict" in proc.stderr:
                raise Changed(proc.stderr.strip()[-200:])
            raise Unreadable(proc.stderr.strip()[-300:] or f"exit {proc.returncode}")
        try:
            return json.loads(proc.stdout)["ETag"]
        except (ValueError, KeyError):
            return ""


# -- PostgreSQL on this host ---------------------------------------------------------------------


def _pg(cfg: dict, tool: str) -> str:
    return str(Path(cfg["pg"]["bin"]) / tool)


def postmaster_pid(cfg: dict) -> int | None:
    try:
        pid = int((Path(cfg["pg"]["data_dir"]) / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    try:  # a zombie still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return pid
    return None if state == "Z" else pid


def local_role(cfg: dict) -> str:
    """primary | standby | down (not running).

    ``standby.signal`` settles it without a connection (a standby starting up refuses them;
    promotion removes the file). Otherwise a running server that does not answer counts as
    primary: fencing must not wait for a hung server to be polite.
    """
    if postmaster_pid(cfg) is None:
        return "down"
    if would_start_as(cfg) == "standby":
        return "standby"
    pg = cfg["pg"]
    argv = [_pg(cfg, "psql"), "-X", "-A", "-t", "-q", "-h", pg["socket_dir"], "-p", str(pg["port"])]
    argv += ["-d", pg.get("dbname", "postgres"), "-c", "select pg_is_in_recovery()"]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=5,
            env={**os.environ, "PGCONNECT_TIMEOUT": "3"},
        )
    except subprocess.TimeoutExpired:
        return "primary"
    return "standby" if proc.stdout.strip() == "t" else "primary"


def would_start_as(cfg: dict) -> str:
    data = Path(cfg["pg"]["data_dir"])
    return "standby" if (data / "standby.signal").exists() else "primary"


def pgbackrest_stop(cfg: dict) -> str:
    argv = cfg.get("pgbackrest")
    if not argv:
        return "pgbackrest: not configured"
    proc = subprocess.run([*argv, "stop"], capture_output=True, text=True, timeout=60)
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return f"pgbackrest stop: exit {proc.returncode}" + (f" ({text[-1][:120]})" if text else "")


def stop_postgres(cfg: dict) -> list[str]:
    """Fast shutdown, then immediate, then SIGKILL of the postmaster: a hung server must go too."""
    done = []
    grace = float(cfg.get("stop_timeout_s", 30))
    for mode, wait in (("fast", grace), ("immediate", max(1.0, grace / 3))):
        if postmaster_pid(cfg) is None:
            return done
        argv = [_pg(cfg, "pg_ctl"), "-D", cfg["pg"]["data_dir"], "-m", mode, "-w"]
        argv += ["-t", str(max(1, int(wait))), "stop"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=wait + 15)
            done.append(f"pg_ctl stop -m {mode}: exit {proc.returncode}")
        except subprocess.TimeoutExpired:
            done.append(f"pg_ctl stop -m {mode}: timed out")
    pid = postmaster_pid(cfg)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
            done.append(f"SIGKILL postmaster {pid}")
        except OSError as exc:
            done.append(f"SIGKILL postmaster {pid} failed: {exc}")
        deadline = time.monotonic() + 10
        while postmaster_pid(cfg) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    return done


# -- local state ---------------------------------------------------------------------------------


def load_state(cfg: dict) -> dict:
    try:
        return json.loads(Path(cfg["state_file"]).read_text())
    except (OSError, ValueError):
        return {}


def save_state(cfg: dict, state: dict) -> None:
    path = Path(cfg["state_file"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


# -- the decisions -------------------------------------------------------------------------------


def fence(cfg: dict, state: dict, reason: str, lease: dict | None) -> int:
    actions = [pgbackrest_stop(cfg), *stop_postgres(cfg)]
    still = postmaster_pid(cfg)
    epoch = (lease or {}).get("epoch")
    state.update(fenced={"reason": reason, "at": now_iso(), "epoch_seen": epoch})
    save_state(cfg, state)
    log(
        f"FENCED ({reason}): {'; '.join(actions)}"
        + (f"; postmaster {still} survives" if still else "")
    )
    if lease is not None and still is None:
        acknowledge(cfg, lease, reason, actions)
    return FENCED


def acknowledge(cfg: dict, lease: dict, reason: str, actions: list[str]) -> None:
    """Tell the failover this host will not serve as primary under ``lease``'s epoch."""
    host, epoch = socket.gethostname(), lease.get("epoch")
    ack = {
        "host": host,
        "region": cfg["region"],
        "epoch_seen": epoch,
        "holder_seen": lease.get("holder"),
        "fenced_at": now_iso(),
        "reason": reason,
        "actions": actions,
    }
    key = f"{cfg['lease']['ack_prefix']}epoch-{epoch}/{cfg['region']}-{host}.json"
    try:
        write_object(cfg, key, ack, if_match=None, create=False)
    except (Unreadable, Changed) as exc:
        log(f"could not write the acknowledgement {key}: {exc}")


def renew(cfg: dict, lease: dict, etag: str) -> tuple[str, dict]:
    renewed = {
        **lease,
        "renewed_at": now_iso(),
        "renewed_by": socket.gethostname(),
        "ttl_s": cfg["ttl_s"],
    }
    return write_object(cfg, cfg["lease"]["key"], renewed, if_match=etag, create=False), renewed


def create(cfg: dict) -> tuple[str, dict]:
    lease = {
        "version": 1,
        "epoch": 1,
        "holder": cfg["region"],
        "ttl_s": cfg["ttl_s"],
        "granted_at": now_iso(),
        "granted_by": f"fence-guard on {socket.gethostname()} (first primary)",
        "renewed_at": now_iso(),
        "renewed_by": socket.gethostname(),
    }
    return write_object(cfg, cfg["lease"]["key"], lease, if_match=None, create=True), lease


def _renew_cached(cfg: dict, state: dict, role: str, now: float) -> bool:
    """The steady state in one S3 call: renew with If-Match on the ETag of our own last write.

    Anyone else's write (a takeover) changed the ETag, so this fails and ``_decide`` reads."""
    cached, etag = state.get("lease"), state.get("etag")
    if role != "primary" or not cached or not etag or cached.get("holder") != cfg["region"]:
        return False
    try:
        state["etag"], state["lease"] = renew(cfg, cached, etag)
    except Changed:
        return False
    state.update(renewed_at=now, fenced=None)
    return True


def _decide(cfg: dict, state: dict, role: str, now: float) -> int:
    """One look at the lease and one action; Changed/Unreadable propagate to ``check``."""
    if _renew_cached(cfg, state, role, now):
        return OK
    state.pop("etag", None)
    lease, etag = read_lease(cfg)
    if lease is None:
        if role == "primary":
            state["etag"], state["lease"] = create(cfg)
            state.update(epoch=1, renewed_at=now, fenced=None)
            log(f"created the lease: epoch 1, holder {cfg['region']}")
        return OK
    holder, epoch = lease.get("holder"), lease.get("epoch")
    if holder == cfg["region"]:
        if role == "primary":
            state["etag"], state["lease"] = renew(cfg, lease, etag)
            state.update(epoch=epoch, renewed_at=now, fenced=None)
        return OK
    if role == "primary":
        return fence(cfg, state, f"epoch {epoch} is held by {holder}", lease)
    seen = (state.get("fenced") or {}).get("epoch_seen")
    if role == "down" and seen != epoch:
        # Not running; a later start must not archive into the stanza either.
        stopped = pgbackrest_stop(cfg)
        reason = f"epoch {epoch} is held by {holder}; server already down"
        state["fenced"] = {"reason": reason, "at": now_iso(), "epoch_seen": epoch}
        log(f"{reason}; {stopped}")
        acknowledge(cfg, lease, reason, [stopped])
    return OK


def check(cfg: dict) -> int:
    state = load_state(cfg)
    now = time.time()
    state.setdefault("first_tick", now)
    role = local_role(cfg)
    try:
        try:
            result = _decide(cfg, state, role, now)
        except Changed:
            # The lease changed between our read and our renewal: look again, right away.
            result = _decide(cfg, state, role, now)
    except (Unreadable, Changed) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        since = state.get("renewed_at") or state["first_tick"]
        if role == "primary" and now - since > float(cfg["ttl_s"]):
            reason = f"lease not confirmed ({detail}); last renewal {now - since:.0f}s ago"
            return fence(cfg, state, reason, None)
        log(f"lease not confirmed: {detail}")
        result = OK
    if result == OK:
        save_state(cfg, state)
    return result


def preflight(cfg: dict) -> int:
    if would_start_as(cfg) == "standby":
        return OK
    override = Path(cfg.get("override_file", "/nonexistent"))
    if override.exists():
        note = override.read_text().strip()[:200]
        log(f"OVERRIDE {override} present: starting a primary without the lease ({note})")
        return OK
    state = load_state(cfg)
    try:
        lease, etag = read_lease(cfg)
    except Unreadable as exc:
        since = state.get("renewed_at")
        if since and time.time() - since <= float(cfg["ttl_s"]):
            log(f"lease unreadable ({exc}), renewed {time.time() - since:.0f}s ago: starting")
            return OK
        log(
            f"refusing to start a primary: the lease cannot be read ({exc}) and was not "
            f"renewed in the last {cfg['ttl_s']}s"
        )
        pgbackrest_stop(cfg)
        return FENCED
    if lease is None or lease.get("holder") == cfg["region"]:
        return OK
    log(
        f"refusing to start a primary: epoch {lease.get('epoch')} is held by "
        f"{lease.get('holder')}. This host must be re-seeded as a standby (drctl failback) "
        "before it serves again"
    )
    pgbackrest_stop(cfg)
    return FENCED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fence-guard")
    parser.add_argument("--config", required=True)
    parser.add_argument("command", choices=("check", "preflight", "status"))
    args = parser.parse_args(argv)
    try:
        cfg = json.loads(Path(args.config).read_text())
        for key in ("region", "lease", "ttl_s", "pg", "state_file"):
            cfg[key]  # noqa: B018 (presence check)
    except (OSError, ValueError, KeyError) as exc:
        log(f"bad config {args.config}: {exc}")
        return BAD_CONFIG
    if args.command == "check":
        return check(cfg)
    if args.command == "preflight":
        return preflight(cfg)
    try:
        lease, _ = read_lease(cfg)
    except Unreadable as exc:
        lease = {"error": str(exc)}
    print(json.dumps({"lease": lease, "state": load_state(cfg), "role": local_role(cfg)}, indent=2))
    return OK


if __name__ == "__main__":
    sys.exit(main())
