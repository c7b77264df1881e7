"""`drctl verify`: live checks of a deployed stack against its recovery objectives.

Where ``posture`` judges the declared settings, ``verify`` measures the running system. Each check
proves or fails (scripts/checks/verify/model.py): PASS, FAIL, or UNKNOWN when there was nothing to
measure, which fails the run unless ``--allow-unknown``. A stack output a check needs and does not
find fails that check, naming the key.

``CHECKS`` below is the one list of what verify runs, in order; each group lives in the module of
its area:

- backup.py: the newest AWS Backup recovery point per class; each vault's lock (mode, minimum
  and maximum retention, grace period) against what the program derives;
- database.py: the database's newest restorable point in each region (RDS, or pgBackRest through
  an injected source);
- replication.py: every live S3 replication rule field by field against the program's, and its
  CloudWatch metrics against the class RPO;
- config.py: Secrets Manager replicas InSync; SSM config equal in the primary and DR regions;
- failover.py: the pgBackRest cipher passphrase's DR copy, and the fence lease held and renewed.
- prerequisites.py: what the stack cannot create itself, one line each (AWS Config recording of
  the Backup types, the Backup reports role, Backup opt-in per vault region, the primary probe).

Targets come from the stack's outputs (an injected provider; the real one runs ``pulumi stack
output --json``), objectives from the stack file. AWS access is a factory ``(service, region) ->
client`` and the database an injected ``DatabaseSource``, so tests point the same code at moto,
botocore's Stubber and a local pgBackRest repository.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.objectives import Objectives
from scripts.checks.verify.backup import RECOVERY_POINTS, VAULT_LOCKS
from scripts.checks.verify.config import CONFIG_IN_SYNC, SECRET_REPLICAS
from scripts.checks.verify.database import (
    DATABASE,
    DatabaseSource,
    DatabaseState,
    PgBackRestSource,
    pgbackrest_checks,
)
from scripts.checks.verify.failover import CIPHER_PASSPHRASE, FENCE_LEASE
from scripts.checks.verify.model import (
    Check,
    CheckGroup,
    ClientFactory,
    Context,
    MissingOutput,
    Status,
    run_group,
)
from scripts.checks.verify.prerequisites import PREREQUISITES
from scripts.checks.verify.replication import S3_REPLICATION
from scripts.common import progress

# What verify runs, in this order. Add a group here (one line) once its module defines it.
CHECKS: list[CheckGroup] = [
    RECOVERY_POINTS,
    DATABASE,
    S3_REPLICATION,
    SECRET_REPLICAS,
    CONFIG_IN_SYNC,
    VAULT_LOCKS,
    CIPHER_PASSPHRASE,
    FENCE_LEASE,
    PREREQUISITES,
]


def run_checks(
    stack: str,
    objectives: Objectives,
    outputs: Mapping[str, Any],
    clients: ClientFactory,
    *,
    database: DatabaseSource | None = None,
    root: Path | None = None,
    now: dt.datetime | None = None,
    groups: list[CheckGroup] | None = None,
) -> list[Check]:
    """Every registered group that applies; an error fails that group's check, never the run."""
    ctx = Context(stack, objectives, outputs, clients, database, root)
    if now is not None:
        ctx.now = now
    checks: list[Check] = []
    for group in CHECKS if groups is None else groups:
        if not group.applies(ctx):
            continue
        progress.print(f"verify: {group.name} ...")
        checks.extend(run_group(group, ctx))
    return checks


def verdict(checks: list[Check]) -> Status:
    statuses = {c.status for c in checks}
    if Status.FAIL in statuses or not checks:
        return Status.FAIL
    return Status.UNKNOWN if Status.UNKNOWN in statuses else Status.PASS


# The command (imported last: it uses run_checks and verdict above).
from scripts.checks.verify.cli import (  # noqa: E402
    objectives_of_stack,
    pulumi_outputs,
    register,
    render,
    session_clients,
)

__all__ = [
    "CHECKS",
    "Check",
    "CheckGroup",
    "Context",
    "DatabaseSource",
    "DatabaseState",
    "MissingOutput",
    "PgBackRestSource",
    "Status",
    "objectives_of_stack",
    "pgbackrest_checks",
    "pulumi_outputs",
    "register",
    "render",
    "run_checks",
    "session_clients",
    "verdict",
]
