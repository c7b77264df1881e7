"""The supabase subscriber's lag monitor, run as rendered, against a real PostgreSQL 15 pair.

The publisher and the DR subscriber are the logical pair of test_failover_pg.py (two local
clusters, a publication for all tables, a subscription). The monitor is the ExecStart of the
rendered systemd service, unquoted the way systemd does it ($$ -> $, %% -> %) and run by bash;
psql is real, and ``aws`` is a fake on PATH that records its arguments instead of calling
CloudWatch (the metric's journey ends at the CLI call this test checks).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from components import postgres_jobs as pj
from scripts.local.postgres import PG_BIN
from tests.integration.test_failover_pg import logical_pair  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

SUBSCRIPTION = "dr_sub"  # the logical pair's subscription
DR_REGION = "us-west-2"


def _exec_start(service: str) -> list[str]:
    """The service's command line as systemd would run it."""
    (line,) = [x for x in service.splitlines() if x.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    return [arg.replace("$$", "$").replace("%%", "%") for arg in argv]


def _run_monitor(dr, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    files = pj.render_subscription_monitor(SUBSCRIPTION, "postgres", DR_REGION)
    argv = _exec_start(files["systemd/subscription-lag-monitor.service"])
    assert argv[:4] == ["/bin/bash", "-o", "pipefail", "-c"]
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    log = tmp_path / "aws-calls"
    log.unlink(missing_ok=True)
    (fake / "aws").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$FAKE_AWS_LOG"\n')
    (fake / "aws").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake}:{PG_BIN}:{os.environ['PATH']}",
        "FAKE_AWS_LOG": str(log),
        # The unit runs on the subscriber host (local socket); here the DR cluster is on TCP.
        "PGHOST": "127.0.0.1",
        "PGPORT": str(dr.port),
        "PGUSER": "postgres",
    }
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    return done, (log.read_text().splitlines() if log.exists() else None)


def test_monitor_publishes_the_subscription_lag_as_a_small_number(logical_pair, tmp_path):  # noqa: F811
    primary, dr = logical_pair
    primary.execute("insert into events (payload) select 'more' from generate_series(1, 50)")
    dr.wait_for("select count(*) = 150 from events")
    # The apply worker records latest_end_time when it processes the publisher's keepalive.
    dr.wait_for(
        f"select latest_end_time is not null from pg_stat_subscription "
        f"where subname = '{SUBSCRIPTION}' and relid is null"
    )
    done, call = _run_monitor(dr, tmp_path)
    assert done.returncode == 0, done.stderr
    assert call is not None, "aws was not called"
    value = call[call.index("--value") + 1]
    assert call[: call.index("--value")] == [
        "cloudwatch",
        "put-metric-data",
        "--region",
        DR_REGION,
        "--namespace",
        "platform-dr",
        "--metric-name",
        "SubscriptionLagSeconds",
        "--dimensions",
        f"Subscription={SUBSCRIPTION}",
        "--unit",
        "Seconds",
    ]
    # Caught up a moment ago: the lag is a number of seconds, and small.
    assert 0 <= float(value) < 60, value


def test_a_stopped_apply_worker_publishes_nothing_so_the_alarm_breaches(logical_pair, tmp_path):  # noqa: F811
    _, dr = logical_pair
    dr.execute(f"alter subscription {SUBSCRIPTION} disable")
    dr.wait_for(
        f"select count(*) = 0 from pg_stat_subscription "
        f"where subname = '{SUBSCRIPTION}' and pid is not null"
    )
    done, call = _run_monitor(dr, tmp_path)
    # No number: the unit fails and no datapoint reaches CloudWatch (treat_missing_data=breaching).
    assert done.returncode != 0 and call is None
    dr.execute(f"alter subscription {SUBSCRIPTION} enable")
    dr.wait_for(
        f"select latest_end_time is not null from pg_stat_subscription "
        f"where subname = '{SUBSCRIPTION}' and pid is not null and relid is null"
    )
    done, call = _run_monitor(dr, tmp_path)
    assert done.returncode == 0 and call is not None, done.stderr


def test_a_blocked_apply_worker_shows_as_growing_lag(logical_pair, tmp_path):  # noqa: F811
    """The worker applies in order: stuck on a row, it processes no later keepalive either.

    A lock on the subscriber's table stops the insert from applying; every keepalive the worker
    has processed was sent before that insert, so the lag it publishes is at least the time since.
    """
    primary, dr = logical_pair
    with dr.connect() as blocker:
        blocker.execute("begin")
        blocker.execute("lock table events in access exclusive mode")
        primary.execute("insert into events (payload) values ('stuck')")
        held = 3.0
        time.sleep(held)
        done, call = _run_monitor(dr, tmp_path)
        blocker.execute("rollback")
    assert done.returncode == 0 and call is not None, done.stderr
    assert float(call[call.index("--value") + 1]) >= held
    # Unblocked, the row arrives: the lag was the worker being stuck, not a broken pair.
    dr.wait_for("select count(*) = 1 from events where payload = 'stuck'")
