"""What failover and failback act on: the stack file's objectives and the stack's outputs.

One ``FailoverPlan`` per run, built by ``load_plan`` from ``Pulumi.<stack>.yaml`` and the outputs
``__main__.py`` exports (``drStandby``, ``database``, ``failoverControl``, ``databaseArtefacts``),
or from a ``pulumi stack output --json`` file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.failover_control import journal_key, lease_key
from components.objectives import PROJECT, parse_objectives
from components.pg_host_agents import lease_timing
from components.pgbackrest_config import DEFAULT_STANZA, REPO_S3_PATH, worst_case_rpo_s
from components.secrets_backup import namespace_of, parameter_name
from scripts import locations
from scripts.common import DrctlError, ExitCode
from scripts.local.evaluate import read_stack_config

ACTIVE_REGION_KEY = "runtime/active-region"
DATABASE_HOST_KEY = "runtime/database-host"


@dataclass(frozen=True)
class FailoverPlan:
    """Everything failover needs to know, from the stack file and the stack's outputs.

    control_bucket: the DR-region FailoverControl bucket (lease and journals); None when the
        outputs have none (an older stack): then nothing fences an unreachable primary, and the
        failover refuses unless the operator accepts that (``accept_unfenced``).
    lease_ttl_s / guard_interval_s / stop_grace_s / guard_call_timeout_s: the derived lease
        timing (pg_host_agents.lease_timing); the lease object's own ``ttl_s`` wins when it has
        one.
    unarchived_bound_s: self-managed; the declared bound on writes a lost primary never archived.
    artefacts: the rendered host files (``databaseArtefacts``), for the re-arm step.
    status_page / communication: the ``statusPage`` and ``communication`` outputs (the page's
        copies, the team and stakeholder topics) that failover publishes to; None when the
        stack declares none (then failover publishes nothing and says so).
    """

    stack: str
    backend: str
    primary_region: str
    dr_region: str
    rpo_s: int
    rto_s: int
    pitr_window_days: int
    namespace: str
    zone_id: str
    record_name: str
    health_check_id: str
    primary_endpoint: str
    standby_endpoint: str
    port: int = 5432
    replica_identifier: str | None = None
    source_arn: str | None = None
    replication_slot: str | None = None
    dr_backup: Mapping[str, Any] | None = None
    mode: str = "warm-standby"
    full_instance_class: str | None = None
    control_bucket: str | None = None
    lease_ttl_s: float = 180.0
    guard_interval_s: float = 30.0
    stop_grace_s: float = 30.0
    guard_call_timeout_s: float = 20.0
    unarchived_bound_s: int | None = None
    primary_security_group_ids: tuple[str, ...] = ()
    artefacts: Mapping[str, str] = field(default_factory=dict)
    status_page: Mapping[str, Any] | None = None
    communication: Mapping[str, Any] | None = None

    @property
    def active_region_parameter(self) -> str:
        return parameter_name(self.namespace, ACTIVE_REGION_KEY)

    @property
    def database_host_parameter(self) -> str:
        return parameter_name(self.namespace, DATABASE_HOST_KEY)

    @property
    def lease_key(self) -> str:
        return lease_key(self.stack)

    def journal_key(self, command: str) -> str:
        return journal_key(self.stack, command)


def load_plan(stack: str, outputs: Mapping[str, Any], root: Path | None = None) -> FailoverPlan:
    """The plan of ``stack``: objectives from Pulumi.<stack>.yaml, names from its outputs."""
    try:
        raw = read_stack_config(stack, root)
    except FileNotFoundError as exc:
        raise DrctlError(str(exc), ExitCode.INVALID_CONFIG) from None
    objectives = parse_objectives({k: v for k, v in raw.items() if k.startswith(PROJECT)}, stack)
    standby = outputs.get("drStandby")
    if not standby:
        raise DrctlError(
            f"the outputs of stack {stack!r} have no 'drStandby'; deploy the DrStandby "
            "component first (pulumi up), or pass the right --outputs file",
            ExitCode.PRECONDITION_FAILED,
        )
    database = outputs.get("database") or {}
    control = outputs.get("failoverControl") or {}
    critical = objectives.of("critical")
    backend = standby.get("backend", objectives.db_backend)
    dr = standby["drRegion"]
    dr_backup: dict[str, Any] | None = None
    if backend == "self-managed" and (database.get("repoBuckets") or {}).get("repo2"):
        prefix = f"{REPO_S3_PATH.strip('/')}/backup/{DEFAULT_STANZA}/"
        dr_backup = {"kind": "s3", "bucket": database["repoBuckets"]["repo2"], "prefix": prefix}
    elif backend == "supabase" and (database.get("dumpBuckets") or {}).get(dr):
        dr_backup = {"kind": "s3", "bucket": database["dumpBuckets"][dr], "prefix": ""}
    elif backend == "rds" and database.get("rdsInstanceArn"):
        dr_backup = {"kind": "rds", "source_arn": database["rdsInstanceArn"]}
    timing = lease_timing(objectives)
    return FailoverPlan(
        stack=stack,
        backend=backend,
        primary_region=standby["primaryRegion"],
        dr_region=dr,
        rpo_s=critical.rpo_s,
        rto_s=critical.rto_s,
        pitr_window_days=objectives.pitr_window_days,
        namespace=namespace_of(objectives),
        zone_id=standby["zoneId"],
        record_name=standby["recordName"],
        health_check_id=standby["healthCheckId"],
        primary_endpoint=standby["primaryEndpoint"],
        standby_endpoint=standby["standbyEndpoint"],
        port=int(standby.get("port") or 5432),
        replica_identifier=standby.get("replicaIdentifier"),
        source_arn=database.get("rdsInstanceArn"),
        replication_slot=database.get("replicationSlotName"),
        dr_backup=dr_backup,
        mode=standby.get("mode", "warm-standby"),
        full_instance_class=standby.get("fullInstanceClass"),
        control_bucket=control.get("bucket"),
        lease_ttl_s=timing.ttl_s,
        guard_interval_s=timing.interval_s,
        stop_grace_s=timing.stop_grace_s,
        guard_call_timeout_s=timing.call_timeout_s,
        unarchived_bound_s=(worst_case_rpo_s(objectives) if backend == "self-managed" else None),
        primary_security_group_ids=tuple(database.get("primarySecurityGroupIds") or ()),
        artefacts=dict(outputs.get("databaseArtefacts") or {}),
        status_page=outputs.get("statusPage") or None,
        communication=outputs.get("communication") or None,
    )


def read_outputs(stack: str, outputs_file: Path | None, root: Path | None = None) -> dict[str, Any]:
    """Stack outputs from a file (`pulumi stack output --json`) or the Automation API."""
    if outputs_file is not None:
        try:
            return json.loads(Path(outputs_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DrctlError(
                f"--outputs {outputs_file}: cannot read stack outputs ({exc})",
                ExitCode.INVALID_CONFIG,
            ) from None
    try:
        from pulumi import automation as auto

        work_dir = str(root or locations.project_dir())
        selected = auto.select_stack(stack_name=stack, work_dir=work_dir)
        return {name: out.value for name, out in selected.outputs().items()}
    except Exception as exc:  # the CLI is missing, not logged in, or the stack is unknown
        raise DrctlError(
            f"cannot read the outputs of stack {stack!r} through the Pulumi CLI "
            f"({type(exc).__name__}); pass --outputs FILE, written by "
            f"`pulumi stack output --json --stack {stack} > FILE`",
            ExitCode.PRECONDITION_FAILED,
        ) from None
