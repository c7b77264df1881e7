"""`drctl recover --stack S`: the spec's "System Recovery" in its "Service Restoration Priority".

The services of the catalogue (components/services.py) come back in the target region (the DR
region of ``prod``; the primary region of a rebuild stack such as ``dr``), tier by tier:

1. **page**: the incident clock starts (now, or ``--incident-start``); on-call level 0 is paged,
   the status page opens the incident, the team, stakeholders and media are told
   (scripts/dataops/incident.py).
2. **preflight**: the target environment answers: the rebuild's own preflight
   (scripts/runbooks/rebuild.py) when the stack is a rebuild, then the DNS zone recover switches
   in. A failure stops here (exit 4) and the run resumes from this step.
3. per tier, in order critical, important, enhanced, optional:
   - **start-<tier>**: a tier starts only when the tier before it is healthy, or its deadline has
     passed (the output says which);
   - **deps-<service>**: its dependencies are verified or restored (scripts/dataops/services.py),
     retried until the tier's deadline; a service whose data is not verified does not start;
   - **switch-<service>**: ``<record>.<zone>`` points at the service's endpoint in the region;
   - **validate-<tier>**: every switched service's health check, retried until the deadline;
     the tier is *met* when all its services are healthy within its RTO, measured from the
     incident start.
4. **close**: per-tier timings against the RTOs; the incident is resolved, or left monitoring.

A tier's deadline is incident start + its RTO (from the objectives), divided by ``time_scale``
(drills run scaled). Each step has a share of its tier's RTO (the RTO divided by the tier's steps);
a step still running when its share is spent pages the next on-call level, and again for every
further share. Journaled, resumable and dry-run by default (scripts/runbooks/engine.py).
Exit 0 when every tier is met, 1 when one is not.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from components.services import Service
from scripts.common import DrctlError, ExitCode, fail, out, parse_instant, print_json
from scripts.dataops.incident import IncidentPublisher, dsn_secrets, fmt_elapsed
from scripts.dataops.notify import Notifier, Templates
from scripts.dataops.services import DependencyChecker, HttpClient, UrllibClient
from scripts.dataops.status_page import StatusPageWriter
from scripts.runbooks.engine import Runbook, RunContext, RunReport, emit, journal_path
from scripts.runbooks.failover import Aws, default_sessions, read_outputs
from scripts.runbooks.recover.plan import (
    DEFAULT_RETRY_S,
    RecoverOptions,
    RecoverTarget,
    load_target,
    print_plan,
    recovery_plan,
)
from scripts.runbooks.recover.steps import Escalation, recover_steps


@dataclass
class RecoverResult:
    plan: dict[str, Any]
    report: RunReport

    @property
    def tiers(self) -> list[dict[str, Any]]:
        for row in self.report.steps:
            if row["name"] == "close" and row.get("result"):
                return row["result"]["tiers"]
        return []

    @property
    def all_met(self) -> bool | None:
        tiers = self.tiers
        return all(t["met"] for t in tiers) if tiers else None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.report.to_json(),
            "plan": self.plan,
            "tiers": self.tiers,
            "all_met": self.all_met,
        }


def run_recover(
    target: RecoverTarget,
    aws: Any,
    *,
    execute: bool,
    yes: bool,
    outputs: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    options: RecoverOptions | None = None,
    database_dsn: str | None = None,
    http: HttpClient | None = None,
    health_url: Callable[[Service], str] | None = None,
    rebuild_preflight: Callable[[RunContext], Mapping[str, Any]] | None = None,
    secrets: tuple[str, ...] = (),
    templates: Templates | None = None,
    journal: str | Path | None = None,
    fresh: bool = False,
) -> RecoverResult:
    """Print the plan; with ``execute``, run it. ``outputs`` (the stack's outputs, or a function
    that reads them) is only read when executing, so a dry run works offline."""
    options = options or RecoverOptions()
    plan = recovery_plan(target, options)
    if not execute:
        steps = recover_steps(
            target,
            options,
            checker=None,
            aws=None,
            outputs={},
            publisher=None,
            escalation=Escalation(0, None),
            http=http or UrllibClient(),
            health_url=health_url,
            rebuild_preflight=rebuild_preflight,
        )
        report = Runbook("recover", target.stack, steps, journal=journal).run(
            execute=False, yes=yes
        )
        return RecoverResult(plan, report)
    resolved = dict(outputs() if callable(outputs) else (outputs or {}))
    scrub_also = [*secrets, *dsn_secrets(database_dsn)]
    page = StatusPageWriter(aws, resolved["statusPage"]) if resolved.get("statusPage") else None
    notifier = Notifier(aws, resolved["communication"]) if resolved.get("communication") else None
    publisher = IncidentPublisher(
        stack=target.stack,
        region=target.region,
        catalogue=target.catalogue,
        page=page,
        notifier=notifier,
        templates=templates,
        secrets=scrub_also,
    )
    escalation = Escalation(notifier.escalation_levels if notifier else 0, publisher)
    checker = DependencyChecker(aws, target.region, resolved, database_dsn=database_dsn)
    steps = recover_steps(
        target,
        options,
        checker=checker,
        aws=aws,
        outputs=resolved,
        publisher=publisher,
        escalation=escalation,
        http=http or UrllibClient(),
        health_url=health_url,
        rebuild_preflight=rebuild_preflight,
    )
    book = Runbook("recover", target.stack, steps, journal=journal)
    report = book.run(
        execute=True,
        yes=yes,
        fresh=fresh,
        what=f"recover the services of {target.stack} in {target.region}",
    )
    return RecoverResult(plan, report)


def rebuild_preflight_for(
    target: RecoverTarget, aws: Any, source_outputs: Callable[[], Mapping[str, Any]], **kwargs: Any
) -> Callable[[RunContext], Mapping[str, Any]]:
    """The rebuild's own preflight step (what a rebuild adopts exists in the region)."""
    from scripts.runbooks.rebuild import automation_stack, rebuild_steps

    path = journal_path("recover", target.stack)
    steps = rebuild_steps(
        target.stack,
        target.objectives,
        aws,
        open_stack=kwargs.pop("open_stack", automation_stack),
        source_outputs=source_outputs,
        plan_file=path.with_suffix(".plan.json"),
        **kwargs,
    )
    return next(s.action for s in steps if s.name == "preflight")


def emit_result(result: RecoverResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_json())
        return
    print_plan(result.plan)
    emit(result.report, False)
    for tier in result.tiers:
        shown = "not healthy" if tier["elapsed_s"] is None else fmt_elapsed(tier["elapsed_s"])
        verdict = "met" if tier["met"] else "NOT MET"
        out.print(
            f"  tier {tier['tier']:<9} {shown:>12} / RTO {fmt_elapsed(tier['rto_s']):>8}  {verdict}"
        )


def parse_incident_start(text: str | None) -> dt.datetime | None:
    """'2025-03-09T06:12:00Z' -> aware UTC. The rule of every time drctl takes (parse_instant):
    an explicit offset, and not in the future, since every deadline counts from it."""
    return None if text is None else parse_instant(text, "--incident-start")


def make_aws() -> Aws:
    """The clients the CLI uses; tests replace this to inject moto."""
    return Aws(default_sessions)


def register(app: typer.Typer) -> None:
    @app.command()
    def recover(
        stack: str = typer.Option("prod", "--stack", help="Stack whose services come back."),
        outputs_file: Path | None = typer.Option(
            None, "--outputs", help="Stack outputs JSON (`pulumi stack output --json`)."
        ),
        source_outputs_file: Path | None = typer.Option(
            None, "--source-outputs", help="A rebuild stack's source outputs JSON (preflight)."
        ),
        database_dsn: str | None = typer.Option(
            None,
            "--database-dsn",
            envvar="DRCTL_DATABASE_DSN",
            show_default=False,
            help="DSN of the database in the target region (env DRCTL_DATABASE_DSN).",
        ),
        incident_start: str | None = typer.Option(
            None,
            "--incident-start",
            help="When the outage began, ISO 8601 with a UTC offset (e.g. 2026-11-26T18:30:00Z), "
            "not in the future; default now.",
        ),
        retry_interval: float = typer.Option(
            DEFAULT_RETRY_S,
            "--retry-interval",
            min=0.1,
            help="Seconds between re-checks of dependencies and health endpoints.",
        ),
        execute: bool = typer.Option(False, "--execute", help="Act; without it a dry run."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask; required without a TTY."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        journal: Path | None = typer.Option(None, "--journal", help="Journal file."),
        fresh: bool = typer.Option(False, "--fresh", help="New run after a completed one."),
    ) -> None:
        """Bring the services back tier by tier, with the status page and notifications
        (dry run unless --execute: prints the ordered plan)."""
        try:
            target = load_target(stack)
            start = parse_incident_start(incident_start)
            options = RecoverOptions(retry_interval_s=retry_interval, incident_start=start)
            aws = make_aws()
            preflight = None
            if execute and target.objectives.is_rebuild:
                source = (
                    (lambda: json.loads(source_outputs_file.read_text()))
                    if source_outputs_file
                    else (lambda: read_outputs(target.objectives.rebuild_from.split("/")[-1], None))
                )
                preflight = rebuild_preflight_for(target, aws, source)
            result = run_recover(
                target,
                aws,
                execute=execute,
                yes=yes,
                outputs=lambda: read_outputs(stack, outputs_file),
                options=options,
                database_dsn=database_dsn,
                rebuild_preflight=preflight,
                journal=journal,
                fresh=fresh,
            )
        except DrctlError as err:
            fail(str(err), err.code)  # the CLI adds {"error": ...} under --json
            return
        emit_result(result, as_json)
        if result.all_met is False:
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
