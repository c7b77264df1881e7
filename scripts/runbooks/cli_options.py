"""Typer options `drctl failover` and `drctl failback` share (one definition each)."""

from __future__ import annotations

import typer

from scripts.dataops.hosts import DbNode, parse_host

stack = typer.Option("prod", "--stack", help="Stack to act on (Pulumi.<stack>.yaml).")
outputs = typer.Option(
    None,
    "--outputs",
    help="Stack outputs JSON (`pulumi stack output --json`); default: ask the Pulumi CLI.",
)
execute = typer.Option(False, "--execute", help="Act; without it this is a dry run.")
yes = typer.Option(False, "--yes", help="Do not ask; required without a TTY.")
accept_data_loss = typer.Option(
    False,
    "--accept-data-loss",
    help="Proceed although the lag exceeds the RPO, is unknown, or the standby has not replayed "
    "the fenced primary's final LSN (the refusal says how much).",
)
accept_unfenced = typer.Option(
    False,
    "--accept-unfenced",
    help="Proceed although no fence guard enforces the lease on the old primary's hosts "
    "(only once you have powered it off or cut its network yourself).",
)
as_json = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
journal = typer.Option(
    None,
    "--journal",
    help="Keep the journal in this local file; default: the shared journal in the DR-region "
    "control bucket (a local file in the state directory, --state-dir, when the stack has none).",
)
fresh = typer.Option(False, "--fresh", help="Start a new run after a completed one.")
sample_table = typer.Option(
    None, "--sample-table", help="Table to compare (repeatable); default: up to 20 tables."
)
primary_dsn = typer.Option(
    None,
    "--primary-dsn",
    envvar="DRCTL_PRIMARY_DSN",
    help="Superuser DSN of the (old) primary database (env DRCTL_PRIMARY_DSN).",
    show_default=False,
)
standby_dsn = typer.Option(
    None,
    "--standby-dsn",
    envvar="DRCTL_STANDBY_DSN",
    help="Superuser DSN of the DR database (env DRCTL_STANDBY_DSN).",
    show_default=False,
)
app_dsn = typer.Option(
    None,
    "--app-dsn",
    envvar="DRCTL_APP_DSN",
    help="DSN of the application's own role (not a superuser) on the database that serves "
    "after the switch; validation writes through it (env DRCTL_APP_DSN).",
    show_default=False,
)
dr_host = typer.Option(
    "local",
    "--dr-host",
    help="Where the DR database's files are: local, local:USER, or ssh://HOST with an optional "
    "LOGIN@ before HOST and ?become=USER after it (default: this machine, as postgres).",
)
dr_data_dir = typer.Option(
    "/var/lib/postgresql/15/main", "--dr-data-dir", help="Data directory on the DR host."
)
old_primary_host = typer.Option(
    "local", "--old-primary-host", help="Where the old primary's files are (as --dr-host)."
)
old_primary_data_dir = typer.Option(
    "/var/lib/postgresql/15/main",
    "--old-primary-data-dir",
    help="Data directory on the old primary's host.",
)
no_systemd = typer.Option(
    False,
    "--no-systemd",
    help="The hosts run no systemd: install timer units but do not enable them (reported).",
)


def node(spec: str, data_dir: str, dsn: str | None, no_systemd_flag: bool) -> DbNode:
    return DbNode(parse_host(spec), data_dir, dsn, systemd=not no_systemd_flag)
