"""The rendered schedule runs: the cron line and the systemd units from
components/pgbackrest_config.py, executed as cron and systemd would run them, against real
pgBackRest and PostgreSQL 15."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from components.pgbackrest_config import s3_settings
from components.pgbackrest_schedule import render_cron, render_systemd_units
from scripts.local.postgres import run_as_postgres

pytestmark = pytest.mark.integration


def test_rendered_systemd_units_pass_systemd_analyze(objectives):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run `make sysdeps`"
    settings = s3_settings(
        objectives,
        bucket_names={objectives.regions.primary: "b1", objectives.regions.dr: "b2"},
        kms_key_ids={objectives.regions.primary: "k1", objectives.regions.dr: "k2"},
    )
    units = render_systemd_units(objectives, settings)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in units.items():
            (Path(tmp) / name).write_text(text)
        proc = subprocess.run(
            [analyze, "verify", "--man=no", *sorted(str(Path(tmp) / n) for n in units)],
            capture_output=True,
            text=True,
        )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    # systemd only warns (exit 0) about unknown keys and unparsable values: none allowed here.
    assert not any(w in report for w in ("Unknown", "Failed", "ignoring", "bad")), report


def _cron_command(line: str) -> tuple[str, str]:
    """'m h dom mon dow user command' -> (user, command), as cron.d reads it."""
    fields = line.split(None, 6)
    return fields[5], fields[6]


def _systemd_exec(service: str) -> list[str]:
    """argv of ExecStart, with systemd's own $$ -> $ unescaping."""
    line = next(ln for ln in service.splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line[len("ExecStart=") :].replace("$$", "$"))


def test_cron_line_backs_up_every_repo_and_unit_keeps_going_past_a_lost_region(
    backrest_env, objectives
):
    env = backrest_env
    cron = render_cron(objectives, env.settings)
    incr = next(ln for ln in cron.splitlines() if ln.startswith("30 "))
    user, command = _cron_command(incr)
    assert user == "postgres"

    proc = run_as_postgres(["/bin/sh", "-c", command], check=False)
    assert proc.returncode == 0, proc.stderr
    # No full yet in either repo: pgBackRest made the scheduled incr a full, in both.
    assert [b["type"] for b in env.backrest.backups(1)] == ["full"]
    assert [b["type"] for b in env.backrest.backups(2)] == ["full"]

    # The primary region's repository becomes unreachable (a file where the directory was).
    shutil.rmtree(env.repo1)
    env.repo1.write_text("region lost")
    service = render_systemd_units(objectives, env.settings)["pgbackrest-diff.service"]
    proc = run_as_postgres(_systemd_exec(service), check=False)
    # The unit fails (so it alarms) but repo2 still got its diff.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [b["type"] for b in env.backrest.backups(2)] == ["full", "diff"]
