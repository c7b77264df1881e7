"""Replication lag as data at risk: what a promotion now would not contain, in bytes and seconds.

``now() - pg_last_xact_replay_timestamp()`` is not lag: behind a primary that committed nothing
for a while it grows although the standby is fully caught up. So:

- **primary reachable**: WAL the standby has not replayed, in bytes (LSN arithmetic). Zero bytes
  is zero lag whatever the clock says. Otherwise the time at risk is the newest heartbeat on the
  primary minus the newest heartbeat replayed on the standby; both are the primary's own
  ``now()`` (the rendered heartbeat writer commits every few seconds), so host clocks never
  meet. No heartbeat table: the time is *unknown*, and says how to proceed.
- **primary gone**: the newest commit in the DR repository's archive (pgBackRest repo2, read on
  the DR host with ``archive-get`` and ``pg_waldump``: commit records carry the primary's commit
  time) minus the newest commit the standby replayed. What the primary committed but never
  archived is not measurable; its declared bound is ``archive_timeout + push timeout``
  (components/pgbackrest_config.py), reported beside the measurement. Without access to the
  archive, the age of the newest replayed commit is an upper bound (it includes the time since the
  primary stopped); with no replayed commit at all the lag is unknown.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg

from components.objectives import format_duration
from components.pg_host_agents import HEARTBEAT_TABLE
from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops.database import lsn_to_int, try_connect
from scripts.dataops.hosts import Host, pg
from scripts.dataops.recovery_log import segment_name, segment_number

UNKNOWN_HELP = (
    "to proceed: compare `pgbackrest info` (newest archived WAL in repo2) with the standby's "
    "pg_last_wal_replay_lsn(); check the heartbeat writer (platform-dr-heartbeat.timer) on the "
    "primary; if you accept losing what the standby lacks, rerun with --accept-data-loss"
)


@dataclass(frozen=True)
class LagReading:
    """How much a promotion now could lose. ``lag_s`` None: unknown (``how_to_proceed`` says
    what to check)."""

    lag_s: float | None
    lag_bytes: int | None
    primary_reachable: bool
    method: str
    source: str = "unknown"  # lsn | heartbeat | archive | replay-age | subscription | cloudwatch
    unarchived_bound_s: int | None = None
    how_to_proceed: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
            "lag_bytes": self.lag_bytes,
            "primary_reachable": self.primary_reachable,
            "method": self.method,
            "source": self.source,
            "unarchived_bound_s": self.unarchived_bound_s,
            "how_to_proceed": self.how_to_proceed,
        }

    @property
    def shown(self) -> str:
        return "unknown" if self.lag_s is None else f"{self.lag_s:.3f}s"


def newest_heartbeat(conn: psycopg.Connection) -> dt.datetime | None:
    exists = conn.execute("select to_regclass(%s) is not null", [HEARTBEAT_TABLE]).fetchone()[0]
    if not exists:
        return None
    return conn.execute(f"select max(at) from {HEARTBEAT_TABLE}").fetchone()[0]


# -- the DR repository's archive -----------------------------------------------------------------

_COMMIT = re.compile(r"desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


def commit_times(waldump_output: str) -> list[dt.datetime]:
    """Commit timestamps in ``pg_waldump`` output (run with TZ=UTC)."""
    return [
        dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.UTC)
        for m in _COMMIT.finditer(waldump_output)
    ]


class ArchiveProbe:
    """The newest commit in a pgBackRest repository, read on the host that can reach it.

    ``pgbackrest_argv``: the pgbackrest command with config and stanza (``base_command``).
    """

    def __init__(self, host: Host, pgbackrest_argv: list[str], repo: int = 2, lookback: int = 4):
        self.host, self.argv, self.repo, self.lookback = host, list(pgbackrest_argv), repo, lookback

    def newest_segment(self) -> str | None:
        out = self.host.run([*self.argv, f"--repo={self.repo}", "--output=json", "info"]).stdout
        newest = None
        for stanza in json.loads(out or "[]"):
            for archive in stanza.get("archive", []):
                if archive.get("max") and (newest is None or archive["max"] > newest):
                    newest = archive["max"]
        return newest

    def newest_commit(self) -> tuple[str | None, dt.datetime | None]:
        """(newest archived segment, newest commit time found in the last few segments)."""
        newest = self.newest_segment()
        if newest is None:
            return None, None
        timeline, number = int(newest[:8], 16), segment_number(newest)
        tmp = self.host.run(["mktemp", "-d", "/tmp/drctl-archive-XXXXXX"]).stdout.strip()
        try:
            for back in range(self.lookback):
                n = number - back
                if n < 0:
                    break
                segment = segment_name(timeline, n)
                got = self.host.run(
                    [
                        *self.argv,
                        f"--repo={self.repo}",
                        "--no-archive-async",
                        "archive-get",
                        segment,
                        f"{tmp}/{segment}",
                    ],
                    check=False,
                )
                if got.returncode != 0:
                    continue
                dump = self.host.run(
                    ["env", "TZ=UTC", pg(self.host, "pg_waldump"), f"{tmp}/{segment}"],
                    check=False,
                )
                times = commit_times(dump.stdout)
                if times:
                    return newest, max(times)
            return newest, None
        finally:
            self.host.run(["rm", "-rf", tmp], check=False)


# -- readings ------------------------------------------------------------------------------------


def physical_lag(
    standby: psycopg.Connection,
    primary_dsn: str | None,
    *,
    archive: ArchiveProbe | None = None,
    unarchived_bound_s: int | None = None,
) -> LagReading:
    """Lag of a streaming standby (module docstring)."""
    received, replayed, replay_ts = standby.execute(
        "select pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, "
        "pg_last_xact_replay_timestamp()"
    ).fetchone()
    standby_hb = newest_heartbeat(standby)
    primary = try_connect(primary_dsn)
    if primary is not None:
        with primary:
            current = primary.execute("select pg_current_wal_lsn()::text").fetchone()[0]
            primary_hb = newest_heartbeat(primary)
        behind = max(0, (lsn_to_int(current) or 0) - (lsn_to_int(replayed) or 0))
        if behind == 0:
            return LagReading(0.0, 0, True, "standby has replayed all of the primary's WAL", "lsn")
        if primary_hb is not None and standby_hb is not None:
            lag = max(0.0, (primary_hb - standby_hb).total_seconds())
            return LagReading(
                lag,
                behind,
                True,
                f"newest heartbeat on the primary {primary_hb.astimezone(dt.UTC).isoformat()} vs "
                f"replayed {standby_hb.astimezone(dt.UTC).isoformat()}; {behind} bytes of WAL "
                "not replayed",
                "heartbeat",
            )
        return LagReading(
            None,
            behind,
            True,
            f"{behind} bytes of WAL not replayed; no heartbeat table ({HEARTBEAT_TABLE}) to "
            "turn them into time",
            "lsn",
            how_to_proceed=UNKNOWN_HELP,
        )
    if archive is not None:
        try:
            segment, newest = archive.newest_commit()
        except DrctlError as exc:
            segment, newest = None, None
            progress.print(f"    archive probe failed: {exc}")
        if newest is not None and replay_ts is not None:
            lag = max(0.0, (newest - replay_ts).total_seconds())
            return LagReading(
                lag,
                None,
                False,
                f"primary unreachable: newest commit in repo{archive.repo}'s archive "
                f"{newest.isoformat()} (segment {segment}) vs newest replayed "
                f"{replay_ts.astimezone(dt.UTC).isoformat()}; writes the primary never archived "
                "are not "
                f"measurable (declared bound {format_duration(unarchived_bound_s)})",
                "archive",
                unarchived_bound_s=unarchived_bound_s,
            )
    if replay_ts is None:
        return LagReading(
            None,
            None,
            False,
            "primary unreachable and the standby has replayed no commit to date",
            how_to_proceed=UNKNOWN_HELP,
        )
    age = max(0.0, (dt.datetime.now(dt.UTC) - replay_ts).total_seconds())
    return LagReading(
        age,
        None,
        False,
        "primary unreachable and its archive not read: age of the newest replayed commit, an "
        "upper bound that includes the time since the primary stopped",
        "replay-age",
        unarchived_bound_s=unarchived_bound_s,
    )


def logical_lag(subscriber: psycopg.Connection, primary_dsn: str | None) -> LagReading:
    """Lag of a logical subscriber (supabase backend), from pg_stat_subscription."""
    rows = subscriber.execute(
        "select latest_end_lsn::text, latest_end_time, now() from pg_stat_subscription "
        "where relid is null"
    ).fetchall()
    if not rows:
        return LagReading(
            None,
            None,
            False,
            "no active subscription worker on the DR database",
            how_to_proceed=UNKNOWN_HELP,
        )
    received = min((lsn_to_int(r[0]) or 0) for r in rows)
    end_time = min((r[1] for r in rows if r[1] is not None), default=None)
    sub_now = rows[0][2]
    primary = try_connect(primary_dsn)
    if primary is not None:
        with primary:
            current = lsn_to_int(primary.execute("select pg_current_wal_lsn()::text").fetchone()[0])
        behind = max(0, (current or 0) - received)
        if behind == 0:
            return LagReading(0.0, 0, True, "subscription has applied all WAL", "subscription")
        # latest_end_time is the publisher's clock at its last keepalive the worker processed;
        # the worker pings while idle, so an idle publisher does not make this grow.
        lag = None if end_time is None else max(0.0, (sub_now - end_time).total_seconds())
        return LagReading(lag, behind, True, "WAL not yet applied", "subscription")
    if end_time is None:
        return LagReading(
            None, None, False, "subscription never reported", how_to_proceed=UNKNOWN_HELP
        )
    lag = max(0.0, (sub_now - end_time).total_seconds())
    return LagReading(
        lag, None, False, "publisher unreachable: age of the last applied position", "subscription"
    )


def check_lag(reading: LagReading, rpo_s: int, accept_data_loss: bool) -> bool:
    """True when within the RPO; raises REFUSED beyond it or when unknown, unless accepted."""
    if reading.lag_s is not None and reading.lag_s <= rpo_s:
        return True
    if not accept_data_loss:
        if reading.lag_s is None:
            raise DrctlError(
                f"replica lag is unknown ({reading.method}); "
                f"{reading.how_to_proceed or UNKNOWN_HELP}",
                ExitCode.REFUSED,
            )
        raise DrctlError(
            f"replica lag {reading.shown} ({reading.method}) exceeds the critical RPO of "
            f"{format_duration(rpo_s)}; promoting now could lose more than the objective allows. "
            "Wait for the standby to catch up, or rerun with --accept-data-loss",
            ExitCode.REFUSED,
        )
    progress.print(
        f"    [yellow]accepted data loss:[/] lag {reading.shown} > RPO {format_duration(rpo_s)}"
    )
    return False
