"""`drctl`: the operator CLI. Thin: each command parses arguments and calls a module in scripts/.

Conventions every command keeps (docs/cli.md, docs/exit-codes.md):
- progress goes to stderr, results to stdout; ``--json`` prints one JSON document on stdout, and
  ``{"error": {...}}`` when the command fails;
- destructive commands are dry-runs unless ``--execute``, and need ``--yes`` without a TTY;
- errors are one line and a documented exit code, never a traceback (scripts/cli_errors.py);
- ``-h``, ``-y``, ``-s`` and flag display hold for every command (scripts/cli_conventions.py);
- stack files come from the project directory, state goes to the state directory
  (scripts/locations.py);
- cloud and database access is injected (boto3 session, DSN) so tests point the same code at moto
  and a local PostgreSQL.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path

import typer
from typer.core import TyperGroup

from scripts import cli_conventions, cli_errors, locations
from scripts.common import ExitCode


class DrctlGroup(TyperGroup):
    """The root command: applies the conventions to the tree and runs every command inside the
    error boundary (argument parsing included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cli_conventions.apply(self)

    def make_context(self, info_name, args, parent=None, **extra):
        argv = list(args)
        with cli_errors.boundary(argv):
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta["drctl.argv"] = argv
        return ctx

    def invoke(self, ctx):
        try:
            with cli_errors.boundary(ctx.meta.get("drctl.argv", ())):
                return super().invoke(ctx)
        finally:  # in-process callers (tests, bench) must not inherit this run's directories
            locations.set_project_dir(None)
            locations.set_state_dir(None)


app = typer.Typer(
    name="drctl",
    cls=DrctlGroup,
    help="platform-dr operator CLI: posture, verify, drill, backup, restore, failover and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    try:
        return metadata.version("platform-dr")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"drctl {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    project_dir: Path | None = typer.Option(
        None,
        "--project-dir",
        envvar="DRCTL_PROJECT_DIR",
        help="The Pulumi project: Pulumi.yaml and the Pulumi.<stack>.yaml stack files "
        "(default: the current directory; never where drctl is installed).",
        show_default=False,
    ),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        envvar="DRCTL_STATE_DIR",
        help="Local journals and caches (default: $XDG_STATE_HOME/drctl, else "
        "~/.local/state/drctl). The failover journal stays in the stack's control bucket.",
        show_default=False,
    ),
    show_version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_print_version,
        is_eager=True,
        help="Print drctl's version and exit.",
    ),
) -> None:
    """platform-dr operator CLI. Exit codes: docs/exit-codes.md."""
    locations.set_project_dir(project_dir)
    locations.set_state_dir(state_dir)


# Each module defines register(app) and adds its own commands; one line per module keeps
# parallel work on different commands from touching the same lines.
COMMAND_MODULES = [
    # in the order an operator reaches for them: check, prove, back up and restore, then runbooks
    "scripts.checks.posture",
    "scripts.checks.verify",
    "scripts.checks.drill",
    "scripts.checks.verdict",  # posture and drill in one final line (make demo)
    "scripts.checks.audit",  # audit replication
    "scripts.dataops.backup",  # backup, restore
    "scripts.dataops.object_recovery",  # restore-objects
    "scripts.dataops.config_sync",  # config export | import | diff
    "scripts.dataops.render",
    "scripts.runbooks.failover",  # failover, failback
    "scripts.runbooks.rebuild",
    "scripts.runbooks.repair",  # repair replication
    "scripts.runbooks.recover",  # services back in priority order, with the status page
    "scripts.dataops.supabase",
]

for module_name in COMMAND_MODULES:
    importlib.import_module(module_name).register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(ExitCode.INTERRUPTED) from None


if __name__ == "__main__":
    main()
