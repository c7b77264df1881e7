#!/usr/bin/python3
"""platform-dr RPO governor: keep the DR standby within the critical RPO, or stop acknowledging.

Runs on each database host as the postgres OS user (a long-running systemd service rendered by
components/pg_host_agents.py; standard library only, PostgreSQL through ``psql``). On a standby
it does nothing. On the primary, every ``interval_s`` it measures how far the DR standby's
*replay* is behind, in time:

    lag = now - (when this primary's WAL last stood at or below the standby's replay LSN)

from its own samples of ``pg_current_wal_lsn()``, one per tick, so an idle primary (no new WAL
past what the standby replayed) has no lag, and a standby that stopped reporting keeps getting
later. When the lag passes ``engage_lag_s`` (half the critical RPO) it switches the primary to
synchronous commit to that standby::

    ALTER SYSTEM SET synchronous_standby_names = '"<application_name>"'
    ALTER SYSTEM SET synchronous_commit = 'remote_apply'

so no further commit is acknowledged before the standby has replayed it: the RPO becomes an
enforced bound, the way Aurora Global Database's managed RPO pauses commits while no secondary
is within it. Commits wait (they are not lost) while the standby is behind; once it has been
under ``release_lag_s`` for ``release_ticks`` ticks in a row, the governor resets both settings.
A standby that cannot keep up therefore slows or stops writes: that trade is the point, and
``disable_file`` (break glass, named in docs/runbooks/failover.md) turns the governor off and
resets synchronous commit.

Commands: ``run`` (the service), ``once`` (one tick, for checks and tests), ``status``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path


def log(message: str) -> None:
    print(f"rpo-governor: {message}", file=sys.stderr, flush=True)


def lsn_int(text: str | None) -> int | None:
    if not text:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Governor:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.samples: deque[tuple[float, int]] = deque()
        self.last_replay: int | None = None
        self.calm_ticks = 0

    # -- PostgreSQL ------------------------------------------------------------------------

    def psql(self, *commands: str) -> str:
        pg = self.cfg["pg"]
        argv = [str(Path(pg["bin"]) / "psql"), "-X", "-A", "-t", "-q", "-F", "|"]
        argv += ["-v", "ON_ERROR_STOP=1", "-h", pg["socket_dir"], "-p", str(pg["port"])]
        argv += ["-d", pg.get("dbname", "postgres")]
        for command in commands:
            argv += ["-c", command]
        env = {**os.environ, "PGCONNECT_TIMEOUT": "3", "PGAPPNAME": "platform-dr-rpo-governor"}
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip()[-300:] or f"psql exit {proc.returncode}")
        return proc.stdout.strip()

    def observe(self) -> dict:
        slot, app = _quote(self.cfg["slot"]), _quote(self.cfg["application_name"])
        row = self.psql(
            "select pg_is_in_recovery(), "
            "case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end, "
            "(select r.replay_lsn::text from pg_stat_replication r "
            " left join pg_replication_slots s on s.active_pid = r.pid "
            f" where s.slot_name = {slot} or r.application_name = {app} "
            " order by r.replay_lsn desc nulls last limit 1), "
            "current_setting('synchronous_standby_names')"
        )
        in_recovery, current, replay, names = (row.split("|") + ["", "", "", ""])[:4]
        return {
            "standby": in_recovery == "t",
            "current": lsn_int(current or None),
            "replay": lsn_int(replay or None),
            "sync_names": names,
        }

    @property
    def sync_value(self) -> str:
        return '"' + self.cfg["application_name"] + '"'

    def engage(self) -> None:
        self.psql(
            f"alter system set synchronous_standby_names = {_quote(self.sync_value)}",
            f"alter system set synchronous_commit = {_quote(self.cfg['sync_commit'])}",
            "select pg_reload_conf()",
        )

    def release(self) -> None:
        self.psql(
            "alter system reset synchronous_standby_names",
            "alter system reset synchronous_commit",
            "select pg_reload_conf()",
        )

    # -- the decision ------------------------------------------------------------------------

    def lag(self, now: float, current: int, replay: int | None) -> float:
        """Seconds the standby's replay is behind this primary's WAL, from our own samples.

        The newest sample at or below the replay position anchors it: at that moment all WAL
        was replayed-to-be, so everything unreplayed was written after it (an upper bound, one
        tick coarse). With no such sample (the standby was behind before we started) the oldest
        sample is the anchor, a lower bound that keeps growing while the standby stays behind.
        """
        if replay is not None:
            self.last_replay = replay
        replay = self.last_replay
        self.samples.append((now, current))
        if replay is not None and replay >= current:
            while len(self.samples) > 1:
                self.samples.popleft()
            return 0.0
        while len(self.samples) > 1 and replay is not None and self.samples[1][1] <= replay:
            self.samples.popleft()
        return max(0.0, now - self.samples[0][0])

    def tick(self) -> dict:
        cfg = self.cfg
        seen = self.observe()
        engaged = seen["sync_names"] == self.sync_value
        state = {"at": time.time(), "engaged": engaged, "role": "primary"}
        if seen["standby"] or seen["current"] is None:
            state["role"] = "standby"
            return state
        disabled = Path(cfg.get("disable_file", "/nonexistent")).exists()
        lag = self.lag(time.monotonic(), seen["current"], seen["replay"])
        state.update(lag_s=round(lag, 3), standby_connected=seen["replay"] is not None)
        if disabled:
            if engaged:
                self.release()
                log("disabled by the operator: synchronous commit reset")
            state.update(engaged=False, disabled=True)
            return state
        if not engaged and lag > float(cfg["engage_lag_s"]):
            self.engage()
            self.calm_ticks = 0
            log(f"lag {lag:.1f}s > {cfg['engage_lag_s']}s: synchronous commit to the DR standby ON")
            state["engaged"] = True
        elif engaged:
            self.calm_ticks = self.calm_ticks + 1 if lag < float(cfg["release_lag_s"]) else 0
            if self.calm_ticks >= int(cfg.get("release_ticks", 5)):
                self.release()
                log(f"lag {lag:.1f}s < {cfg['release_lag_s']}s: synchronous commit OFF")
                state["engaged"] = False
                self.calm_ticks = 0
        return state


def save_state(cfg: dict, state: dict) -> None:
    path = Path(cfg["state_file"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)
    except OSError as exc:
        log(f"cannot write {path}: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rpo-governor")
    parser.add_argument("--config", required=True)
    parser.add_argument("command", choices=("run", "once", "status"))
    args = parser.parse_args(argv)
    try:
        cfg = json.loads(Path(args.config).read_text())
        for key in ("engage_lag_s", "release_lag_s", "interval_s", "slot", "pg", "state_file"):
            cfg[key]  # noqa: B018 (presence check)
    except (OSError, ValueError, KeyError) as exc:
        log(f"bad config {args.config}: {exc}")
        return 2
    if args.command == "status":
        try:
            print(Path(cfg["state_file"]).read_text())
        except OSError:
            print("{}")
        return 0
    governor = Governor(cfg)
    while True:
        try:
            save_state(cfg, governor.tick())
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            log(f"tick failed: {exc}")
        if args.command == "once":
            return 0
        time.sleep(float(cfg["interval_s"]))


if __name__ == "__main__":
    sys.exit(main())
