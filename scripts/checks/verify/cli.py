"""The ``drctl verify`` command: outputs and objectives in, checks run, verdict and exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import typer

from components.objectives import PROJECT, ConfigError, Objectives, parse_objectives
from scripts.checks import verify as package
from scripts.checks.verify.database import PgBackRestSource
from scripts.checks.verify.model import Check, ClientFactory, Status
from scripts.common import DrctlError, ExitCode, fail, out, print_json
from scripts.dataops.stack_outputs import outputs_file as read_outputs_file
from scripts.dataops.stack_outputs import pulumi_outputs  # noqa: F401 (the package re-exports it)
from scripts.local.evaluate import read_stack_config


def objectives_of_stack(stack: str, root: Path | None = None) -> Objectives:
    raw = read_stack_config(stack, root)
    return parse_objectives({k: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}, stack)


def session_clients(sessions: Callable[[str], Any]) -> ClientFactory:
    cache: dict[tuple[str, str], Any] = {}

    def clients(service: str, region: str) -> Any:
        if (service, region) not in cache:
            cache[(service, region)] = sessions(region).client(service)
        return cache[(service, region)]

    return clients


_MARK = {
    Status.PASS: "[green]ok  [/]",
    Status.FAIL: "[red]FAIL[/]",
    Status.UNKNOWN: "[yellow]UNKNOWN[/]",
}
_VERDICT = {
    Status.PASS: "[green]all checks pass[/]",
    Status.FAIL: "[red]FAILED[/]",
    Status.UNKNOWN: "[yellow]UNKNOWN[/] (nothing measured for some checks)",
}


def render(stack: str, checks: list[Check]) -> None:
    out.print(f"[bold]{stack}[/]: {_VERDICT[package.verdict(checks)]}")
    for c in checks:
        out.print(f"  {_MARK[c.status]} {c.check:<24} {c.data_class:<11} {c.target}")
        out.print(f"       {c.detail}")


def register(app: typer.Typer) -> None:
    @app.command()
    def verify(
        stack: str = typer.Option("prod", "--stack", "-s", help="Stack to verify."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
        outputs_file: Path | None = typer.Option(
            None, "--outputs", help="JSON of `pulumi stack output --json` instead of the CLI."
        ),
        pgbackrest_config: Path | None = typer.Option(
            None, "--pgbackrest-config", help="pgbackrest.conf of the self-managed database."
        ),
        stanza: str = typer.Option("main", "--stanza", help="pgBackRest stanza."),
        dsn: str | None = typer.Option(
            None, "--dsn", help="libpq DSN of the primary (reads pg_stat_archiver)."
        ),
        allow_unknown: bool = typer.Option(
            False,
            "--allow-unknown",
            help="Exit 0 when checks had nothing to measure (UNKNOWN) and none failed.",
        ),
        project_dir: Path | None = typer.Option(
            None, "--project-dir", help="Holds the stack files (default: the current directory)."
        ),
    ) -> None:
        """Live checks against the objectives; exit 1 when a check fails or is UNKNOWN (0 for
        UNKNOWN with --allow-unknown)."""
        try:
            objectives = objectives_of_stack(stack, project_dir)
            if outputs_file is not None:
                outputs = read_outputs_file(outputs_file)
            else:
                outputs = package.pulumi_outputs(stack)
            database = None
            if pgbackrest_config is not None or dsn is not None:
                if pgbackrest_config is None or dsn is None:
                    fail(
                        "--pgbackrest-config and --dsn go together (the repository and the "
                        "primary it archives)",
                        ExitCode.INVALID_CONFIG,
                    )
                from scripts.dataops.pgbackrest import PgBackRest

                database = PgBackRestSource(PgBackRest(pgbackrest_config, stanza), dsn)
        except (ConfigError, FileNotFoundError) as err:
            fail(str(err), ExitCode.INVALID_CONFIG)
        except DrctlError as err:
            fail(str(err), err.code)
        if boto3.session.Session().get_credentials() is None:
            # one precondition line, rather than the same NoCredentialsError from every check
            fail(
                "no AWS credentials: verify reads the stack's resources in AWS; set AWS_PROFILE "
                "or run `aws configure` (the checks need read access)",
                ExitCode.PRECONDITION_FAILED,
            )
        clients = package.session_clients(lambda region: boto3.session.Session(region_name=region))
        checks = package.run_checks(
            stack, objectives, outputs, clients, database=database, root=project_dir
        )
        result = package.verdict(checks)
        if json_output:
            print_json(
                {
                    "stack": stack,
                    "checks": [c.to_dict() for c in checks],
                    "verdict": str(result),
                    "all_ok": result is Status.PASS,
                }
            )
        else:
            render(stack, checks)
        if result is Status.FAIL or (result is Status.UNKNOWN and not allow_unknown):
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
