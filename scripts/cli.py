"""`drctl`: the operator CLI. Thin: each command parses arguments and calls a module in scripts/.

Conventions every command keeps (docs/exit-codes.md):
- progress goes to stderr, results to stdout; ``--json`` prints one JSON document on stdout;
- destructive commands are dry-runs unless ``--execute``, and need ``--yes`` without a TTY;
- cloud and database access is injected (boto3 session, DSN) so tests point the same code at moto
  and a local PostgreSQL.
"""

from __future__ import annotations

import importlib

import typer

from scripts.common import ExitCode

app = typer.Typer(
    name="drctl",
    help="platform-dr operator CLI: posture, verify, drill, backup, restore, failover and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """platform-dr operator CLI. Exit codes: docs/exit-codes.md."""


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
