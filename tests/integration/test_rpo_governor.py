"""The RPO governor, as rendered, on a real PostgreSQL 15 primary and streaming standby.

The governor is the shipped agent (components/agents/rpo_governor.py) with its rendered config
(``pg_host_agents.governor_config``), run as a long-lived process as the postgres OS user, the way
its systemd unit runs it. The heartbeat is the rendered heartbeat unit, committing every 0.2 s.
The objective is scaled down: critical RPO 4 s, so the governor engages above 2 s and releases
under 1 s.

Lag is what the failover runbook measures (scripts/dataops/lag.py): the newest heartbeat committed
on the primary minus the newest one replayed on the standby. While synchronous commit is on, a
commit is acknowledged (and visible) only once the standby has replayed it, so every acknowledged
heartbeat is within the measured lag.

The fault is paused replay on the standby (``pg_wal_replay_pause``) for 8 s, twice: without the
governor the lag passes the RPO (the NOT-MET case), with it the lag stays under the RPO and the
governor both engages and, once replay resumes, releases synchronous commit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from components.pg_host_agents import GovernorThresholds, agent_source, governor_config
from scripts.local.postgres import LocalCluster
from tests.integration.dr_world import Heartbeat, host_pg, objectives, shared_dir

pytestmark = pytest.mark.integration

RPO_S = 4.0
PAUSE_S = 8.0
THRESHOLDS = GovernorThresholds(
    rpo_s=RPO_S, engage_lag_s=RPO_S / 2, release_lag_s=RPO_S / 4, interval_s=0.2, release_ticks=3
)
LAG_SQL = "select max(at) from platform_dr.heartbeat"


class LagSampler(threading.Thread):
    """The failover's lag measure, sampled every 0.1 s: primary heartbeat minus replayed one."""

    def __init__(self, primary: LocalCluster, standby: LocalCluster):
        super().__init__(daemon=True)
        self.primary, self.standby = primary, standby
        self.samples: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with self.primary.connect() as p, self.standby.connect() as s:
            while not self.halt.is_set():
                ours, theirs = p.execute(LAG_SQL).fetchone()[0], s.execute(LAG_SQL).fetchone()[0]
                if ours and theirs:
                    self.samples.append(max(0.0, (ours - theirs).total_seconds()))
                time.sleep(0.1)

    def stop(self) -> float:
        self.halt.set()
        self.join(10)
        return max(self.samples)


@pytest.fixture
def pair():
    with LocalCluster("gov-primary") as primary:
        standby = primary.create_standby("gov-standby", slot="dr_standby_us_west_2")
        # The standby's application_name is the rendered one (dr_standby), as DrStandby renders.
        standby.execute(
            "alter system set primary_conninfo = "
            f"'host=127.0.0.1 port={primary.port} user=postgres application_name=dr_standby'"
        )
        standby.execute("select pg_reload_conf()")
        heartbeat = Heartbeat(primary, every_s=0.2).start()
        try:
            primary.wait_for(
                "select count(*) from pg_stat_replication where application_name = 'dr_standby' "
                "and state = 'streaming'"
            )
            standby.wait_for("select to_regclass('platform_dr.heartbeat') is not null")
            yield primary, standby
        finally:
            heartbeat.stop()


def _governor(primary: LocalCluster) -> tuple[subprocess.Popen, dict]:
    work = shared_dir("drctl-governor-")
    config = governor_config(
        objectives(), slot="dr_standby_us_west_2", pg=host_pg(primary), thresholds=THRESHOLDS
    )
    config.update(
        state_file=str(work / "state.json"), disable_file=str(work / "rpo-governor.disabled")
    )
    (work / "rpo_governor.py").write_text(agent_source("rpo_governor"))
    (work / "rpo_governor.json").write_text(json.dumps(config))
    argv = ["/usr/bin/python3", str(work / "rpo_governor.py"), "--config"]
    argv += [str(work / "rpo_governor.json"), "run"]
    proc = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", *argv],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd="/",
        start_new_session=True,
    )
    return proc, config


def _pause_replay(primary: LocalCluster, standby: LocalCluster) -> float:
    """Pause the standby's replay for PAUSE_S while the heartbeat runs; the worst lag seen."""
    sampler = LagSampler(primary, standby)
    sampler.start()
    standby.execute("select pg_wal_replay_pause()")
    time.sleep(PAUSE_S)
    standby.execute("select pg_wal_replay_resume()")
    time.sleep(1.0)
    return sampler.stop()


def test_governor_holds_lag_under_the_rpo_while_replay_is_paused(pair):
    primary, standby = pair
    # Without the governor: an asynchronous standby falls as far behind as the fault lasts.
    unbounded = _pause_replay(primary, standby)
    assert unbounded > RPO_S, f"the fault must break the RPO without the governor: {unbounded}"
    primary.wait_for(
        "select coalesce(extract(epoch from replay_lag), 0) < 0.5 from pg_stat_replication",
        timeout=30,
    )

    proc, config = _governor(primary)
    try:
        time.sleep(1.0)  # a few ticks with a caught-up standby: nothing to do
        assert primary.scalar("show synchronous_standby_names") == ""
        sampler = LagSampler(primary, standby)
        sampler.start()
        standby.execute("select pg_wal_replay_pause()")
        engaged = None
        deadline = time.monotonic() + PAUSE_S
        while time.monotonic() < deadline:
            if engaged is None and primary.scalar("show synchronous_standby_names") != "":
                engaged = time.monotonic() - (deadline - PAUSE_S)
            time.sleep(0.1)
        assert primary.scalar("show synchronous_commit") == "remote_apply"
        standby.execute("select pg_wal_replay_resume()")
        # Caught up again: after release_ticks calm ticks, asynchronous commit is back.
        primary.wait_for("select current_setting('synchronous_standby_names') = ''", timeout=20)
        bounded = sampler.stop()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    log = proc.stderr.read()
    print(f"lag without governor {unbounded:.2f}s, with {bounded:.2f}s; engaged after {engaged}s")
    assert engaged is not None and engaged <= RPO_S / 2 + 1.5, (engaged, log)
    assert bounded <= RPO_S, f"lag {bounded:.2f}s passed the {RPO_S}s RPO; governor: {log}"
    assert "synchronous commit to the DR standby ON" in log and "synchronous commit OFF" in log
    state = json.loads(Path(config["state_file"]).read_text())
    assert state["engaged"] is False and state["lag_s"] < RPO_S / 4
