"""The primary probe that feeds the Route 53 health check, run exactly as rendered.

The unit comes from the DrStandby the program declares (its ``probeArtefacts`` output, what
``drctl render`` writes): its ExecStart is unquoted the way systemd does it and run by /bin/sh,
with the real ``pg_isready`` of PostgreSQL 15 against a real local cluster, and ``aws`` a fake on
PATH that records its arguments instead of calling CloudWatch. Up, the probe publishes 1; with the
cluster stopped it publishes 0, which the alarm (Minimum < 1) turns into a failed health check.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components import health_probe
from scripts.local.evaluate import evaluate_stack
from scripts.local.postgres import PG_BIN, LocalCluster
from tests.integration.test_subscription_lag_monitor import _exec_start

pytestmark = pytest.mark.integration


def _probe(port: int, tmp_path: Path) -> list[str]:
    """Render the probe for a primary at 127.0.0.1:port through the real program, run it once."""
    evaluation = evaluate_stack(
        "prod", overrides={"dbBackend": "supabase", "dbHost": "127.0.0.1", "dbPort": port}
    )
    files = evaluation.outputs["probeArtefacts"]
    service = files[f"systemd/{health_probe.PROBE_UNIT}.service"]
    assert "OnCalendar=minutely" in files[f"systemd/{health_probe.PROBE_UNIT}.timer"]
    argv = _exec_start(service)
    assert argv[:2] == ["/bin/sh", "-c"]
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    log = tmp_path / "aws-call"
    log.unlink(missing_ok=True)
    (fake / "aws").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$FAKE_AWS_LOG"\n')
    (fake / "aws").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{PG_BIN}:{os.environ['PATH']}", "FAKE_AWS_LOG": str(log)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def test_probe_publishes_1_while_the_primary_accepts_connections_and_0_when_it_is_down(tmp_path):
    with LocalCluster("probe") as cluster:
        port = cluster.port
        call = _probe(port, tmp_path)
        assert call == [
            "cloudwatch",
            "put-metric-data",
            "--region",
            "us-west-2",
            "--namespace",
            "platform-dr",
            "--metric-name",
            "PrimaryDatabaseUp",
            "--dimensions",
            "Database=db.music-platform.example",
            "--unit",
            "Count",
            "--value",
            "1",
        ]
        cluster.stop()
        down = _probe(port, tmp_path)
        assert down[-2:] == ["--value", "0"]
