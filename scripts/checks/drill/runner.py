"""The scenarios, in the spec's order, and ``run_drill``: start the embedded platform, run each
scenario from a healthy platform of its own, always tear everything down."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.objectives import Objectives, format_duration, parse_objectives
from scripts.checks.drill.faults import ScenarioFaults, check_faults
from scripts.checks.drill.model import DrillReport, ScenarioResult
from scripts.checks.drill.objects import scenario_accidental_deletion, scenario_security_breach
from scripts.checks.drill.outage import scenario_outage
from scripts.checks.drill.pitr import scenario_human_error
from scripts.checks.drill.platform import STACK, DrillContext
from scripts.checks.drill.priority_rebuild import scenario_priority_rebuild
from scripts.checks.drill.restore import scenario_database_corruption
from scripts.checks.drill.timescale import (
    DEFAULT_TIME_SCALE,
    Mechanisms,
    check_time_scale,
    mechanisms_from_evaluation,
)
from scripts.common import progress


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    data_class: str
    dataset: str
    incident: str
    recovery: str
    needs_aws: bool
    needs_postgres: bool
    run: Callable[[DrillContext, ScenarioResult], None]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "human-error",
        "Human error",
        "critical",
        "database",
        "an operator drops table ledger while the application commits",
        "pgBackRest PITR (--type=time) to just before the drop into a new data dir; the table is "
        "copied back into the primary in one transaction",
        needs_aws=False,
        needs_postgres=True,
        run=scenario_human_error,
    ),
    Scenario(
        "database-corruption",
        "Database corruption",
        "critical",
        "database",
        "the primary's host dies under load and its data directory is overwritten with random "
        "bytes",
        "restore the latest backup and archived WAL from repo2 (the DR region) into a new data "
        "dir and start it as the new primary",
        needs_aws=False,
        needs_postgres=True,
        run=scenario_database_corruption,
    ),
    Scenario(
        "data-centre-outage",
        "Data-centre outage",
        "critical",
        "database",
        "the primary's host is killed (SIGKILL) while the application writes through DNS",
        "the health check and its alarm detect it; drctl's failover runbook assesses lag against "
        "the RPO, fences, promotes the streaming standby, switches secrets/SSM config and the "
        "Route 53 record, validates; the application's resolver lets go of the old answer",
        needs_aws=True,
        needs_postgres=True,
        run=scenario_outage,
    ),
    Scenario(
        "security-breach",
        "Security breach",
        "critical",
        "creator-audio",
        "an attacker tries to delete the object-locked backups and overwrites every audio track "
        "while uploads go on",
        "locked versions refuse deletion; each track's version as of the second before the "
        "breach is copied back on top and the delete markers over the backups are removed",
        needs_aws=True,
        needs_postgres=False,
        run=scenario_security_breach,
    ),
    Scenario(
        "accidental-file-deletion",
        "Accidental file deletion",
        "critical",
        "creator-audio",
        "a cleanup job deletes two creators' folders while uploads go on",
        "the delete markers are removed, so each object's newest version is current again",
        needs_aws=True,
        needs_postgres=False,
        run=scenario_accidental_deletion,
    ),
    Scenario(
        "priority-rebuild",
        "Region rebuild in priority order",
        "critical",
        "services",
        "the primary region is lost: every service is down; the DR region holds the data",
        "drctl recover: page on-call, preflight, then tier by tier (critical, important, "
        "enhanced, optional) verify each service's data, switch its DNS record and check its "
        "health endpoint; the status page and the team, stakeholder and media topics are "
        "updated at each step",
        needs_aws=True,
        needs_postgres=True,
        run=scenario_priority_rebuild,
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)

SIMULATED = (
    "repo1 and repo2 are two local directories (pgBackRest posix repositories) standing for the "
    "S3 buckets in the primary and the DR region",
    "moto (on 127.0.0.1) stands for AWS: S3, Secrets Manager, SSM and Route 53 APIs; it runs no "
    "health checks, answers no DNS and copies no replicated objects",
    "Route 53's health checkers are one local TCP poller at the declared interval and failure "
    "threshold, and the CloudWatch alarm on its status is evaluated locally at its declared "
    "period",
    "the application's DNS is a local resolver that answers the failover record from moto the "
    "way Route 53 does and caches each answer for the record's TTL",
    "both regions are processes on one host: no network latency or partition between them",
    "the failover runbook starts the moment the alarm fires: no human response time",
    "the drill reads the old primary's pg_wal with pg_waldump to place every write against the "
    "recovery point (the observer; recovery never reads it)",
    "repo2's backup files are mirrored into a moto bucket for the runbook's DR-backup check, and "
    "the DR secret is a standalone copy (moto has no StopReplicationToReplica)",
    "priority-rebuild: each service is a local HTTP server whose /healthz answers once it is "
    "warm; the status page's CloudFront edge is a local proxy over its bucket copies; SNS "
    "delivers to a local webhook receiver (moto posts HTTP subscriptions; email is not sent)",
)


def drill_objectives() -> Objectives:
    """prod's declared objectives (Pulumi.prod.yaml), validated by the one model."""
    from scripts.local.evaluate import read_stack_config

    return parse_objectives(read_stack_config(STACK), STACK)


def declared_mechanisms() -> Mechanisms:
    """prod's mechanism intervals, from one evaluation of the program under mocks."""
    from scripts.local.evaluate import evaluate_stack

    with progress.status(f"evaluating stack {STACK} under mocks (declared mechanisms)..."):
        return mechanisms_from_evaluation(evaluate_stack(STACK))


def run_drill(
    names: Sequence[str] = SCENARIO_NAMES,
    *,
    time_scale: float = DEFAULT_TIME_SCALE,
    faults: Sequence[str] = (),
    keep: bool = False,
    objectives: Objectives | None = None,
    mechanisms: Mechanisms | None = None,
) -> DrillReport:
    """Run the chosen scenarios in order; ``mechanisms`` as declared (unscaled)."""
    time_scale = check_time_scale(time_scale)
    chosen = [s for s in SCENARIOS if s.name in names]
    faults = check_faults(faults, [s.name for s in chosen])
    objectives = objectives or drill_objectives()
    mechanisms = mechanisms or declared_mechanisms()
    report = DrillReport(
        stack=STACK,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        time_scale=time_scale,
        objectives={
            name: {
                "declared_rpo_s": c.rpo_s,
                "declared_rto_s": c.rto_s,
                "rpo_s": c.rpo_s / time_scale,
                "rto_s": c.rto_s / time_scale,
            }
            for name, c in objectives.classes.items()
        },
        mechanisms={
            "declared": mechanisms.to_record(),
            "scaled": mechanisms.scaled(time_scale).to_record(),
            "effective": {
                "archive_timeout_s": mechanisms.scaled(time_scale).effective_archive_timeout_s,
                "push_timeout_s": mechanisms.scaled(time_scale).effective_push_timeout_s,
            },
        },
        simulated=list(SIMULATED),
        scenarios=[],
        faults=list(faults),
        host={"cpus": os.cpu_count(), "pgbackrest": _pgbackrest_version()},
    )
    workdir = Path(tempfile.mkdtemp(prefix="drctl-drill-"))
    aws = ctx = None
    setup_started = time.monotonic()
    try:
        from scripts.local.postgres import chown_to_postgres

        chown_to_postgres(workdir)
        workdir.chmod(0o755)
        if any(s.needs_postgres for s in chosen):
            from scripts.dataops.pgbackrest import require_binaries

            require_binaries()  # exit 4 naming what is missing, before anything starts
        if any(s.needs_aws for s in chosen):
            from scripts.local.aws import LocalAws

            with progress.status("starting moto (S3, Secrets Manager, SSM, Route 53)..."):
                aws = LocalAws().start()
                aws.warm_up((objectives.regions.primary, objectives.regions.dr))
            progress.print(f"[green]✓[/] moto on {aws.endpoint_url}", markup=True)
        ctx = DrillContext(objectives, mechanisms, time_scale, aws, workdir, keep)
        report.setup_s = time.monotonic() - setup_started
        progress.print(
            f"time scale {time_scale:g}: objectives and mechanism intervals divided by "
            f"{time_scale:g} (critical RPO {ctx.scaled_rpo('critical'):g} s, RTO "
            f"{ctx.scaled_rto('critical'):g} s)"
        )
        drill_started = time.monotonic()
        for scenario in chosen:
            report.scenarios.append(_run_scenario(ctx, scenario, faults))
        report.drill_s = time.monotonic() - drill_started
    finally:
        teardown_started = time.monotonic()
        with progress.status("tearing down the embedded platform..."):
            if ctx is not None:
                ctx.run_cleanups()
            if aws is not None:
                aws.stop()
            if keep:
                progress.print(f"kept the drill's files in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        report.teardown_s = time.monotonic() - teardown_started
    return report


def _run_scenario(ctx: DrillContext, scenario: Scenario, faults: Sequence[str]) -> ScenarioResult:
    cls = ctx.objectives.of(scenario.data_class)
    targeted = ScenarioFaults(scenario.name, faults)
    result = ScenarioResult(
        name=scenario.name,
        title=scenario.title,
        data_class=scenario.data_class,
        dataset=scenario.dataset,
        incident=scenario.incident,
        recovery=scenario.recovery,
        rpo_objective_s=cls.rpo_s / ctx.time_scale,
        rto_objective_s=cls.rto_s / ctx.time_scale,
        declared_rpo_s=cls.rpo_s,
        declared_rto_s=cls.rto_s,
        faults=list(targeted.names),
    )
    injected = f" [yellow]fault: {', '.join(targeted.names)}[/]" if targeted.names else ""
    progress.print(f"[bold]{scenario.title}[/] [dim]({scenario.name})[/]{injected}", markup=True)
    ctx.begin(targeted)
    try:
        scenario.run(ctx, result)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - one failed scenario must not hide the others
        result.error = f"{type(exc).__name__}: {exc}"
        progress.print(f"  [red]✗[/] {result.error}", markup=True, highlight=False)
    finally:
        ctx.finish(result)
    result.finish()
    verdict = "[green]met[/]" if result.met else "[red]NOT met[/]"
    progress.print(
        f"  {verdict}: RPO {fmt_s(result.rpo_s)} (objective {result.rpo_objective_s:g} s ≙ "
        f"{format_duration(cls.rpo_s)}), RTO {fmt_s(result.rto_s)} (objective "
        f"{result.rto_objective_s:g} s ≙ {format_duration(cls.rto_s)})"
        + ("" if result.met else f"; {'; '.join(result.reasons())}"),
        markup=True,
        highlight=False,
    )
    return result


def _pgbackrest_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["pgbackrest", "version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return None


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"
