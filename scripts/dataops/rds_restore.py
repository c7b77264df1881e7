"""Point-in-time restore of the RDS backend into a NEW instance; the source is never modified.

`drctl restore --stack S --target-time T --to NEW_ID` dispatches here when the stack's ``dbBackend``
is ``rds`` (scripts/dataops/backup.py owns the command). ``--from-repo 1`` restores from the primary
region's automated backups, ``--from-repo 2`` from the automated backups replicated into the DR
region (the RDS twin of pgBackRest's repo2).

Safety:
- dry run unless ``--execute``; ``--yes`` without a TTY (scripts.common.confirm_execute);
- the only mutating call is RestoreDBInstanceToPointInTime with a *new* target identifier; the
  target must not exist unless it is this very restore (same source and time tags: a resume);
- a target time outside [earliest, latest] restorable time is refused before any call is made;
- restoring "latest" when the latest restorable time is older than the critical RPO would lose
  more than the objective: refused unless ``--accept-data-loss``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scripts.common import DrctlError, ExitCode, parse_instant, progress

TAG_SOURCE = "drctl-restore-source"
TAG_TIME = "drctl-restore-time"
_IDENTIFIER = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")


@dataclass(frozen=True)
class RdsSource:
    """Where the database lives, as the stack declares it."""

    identifier: str
    region: str
    dr_region: str
    critical_rpo_s: int
    pitr_window_days: int


@dataclass(frozen=True)
class RestoreWindow:
    earliest: datetime
    latest: datetime
    # "restore-window": RDS reported it (DescribeDBInstanceAutomatedBackups.RestoreWindow).
    # "retention-estimate": RDS gave no window (moto does not); earliest is estimated as
    # max(instance creation, latest - retention period), which can only be later than the truth.
    basis: str

    def contains(self, when: datetime) -> bool:
        return self.earliest <= when <= self.latest


@dataclass
class RestorePlan:
    source: str
    target: str
    region: str
    from_repo: int
    restore_time: datetime | None  # None: the latest restorable time
    window: RestoreWindow
    request: dict[str, Any] = field(default_factory=dict)
    status: str = "planned"  # planned | restored | already-restored

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["restore_time"] = _iso(self.restore_time) if self.restore_time else "latest"
        data["window"] = {
            "earliest": _iso(self.window.earliest),
            "latest": _iso(self.window.latest),
            "basis": self.window.basis,
        }
        data["request"] = {
            k: _iso(v) if isinstance(v, datetime) else v for k, v in self.request.items()
        }
        return data


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_target_time(value: str) -> datetime | None:
    """'latest' -> None; ISO 8601 with an explicit offset or Z -> aware datetime (UTC)."""
    if value.strip().lower() == "latest":
        return None
    # the future is refused later, against the newest restorable point
    return parse_instant(value, "--target-time", allow_future=True)


def check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise DrctlError(
            f"--to {value!r} is not valid: an RDS instance identifier (1-63 letters, digits or "
            "hyphens, starting with a letter, no '--', not ending with '-')",
            ExitCode.INVALID_CONFIG,
        )
    return value


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _describe_instance(rds, identifier: str) -> dict[str, Any] | None:
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    except rds.exceptions.DBInstanceNotFoundFault:
        return None


def _automated_backup(rds, identifier: str, source_region: str) -> dict[str, Any] | None:
    """The automated backup of ``identifier`` taken in ``source_region``, or None.

    Listed unfiltered: the API's DBInstanceIdentifier filter must name an instance that exists
    in the region asked, and in the DR region only the replicated backup exists. Backups of
    deleted namesakes ("retained") lose to the live one; among equals the latest point wins.
    """
    found = []
    paginator = rds.get_paginator("describe_db_instance_automated_backups")
    for page in paginator.paginate():
        for backup in page.get("DBInstanceAutomatedBackups", []):
            if backup.get("DBInstanceIdentifier") != identifier:
                continue
            if backup.get("Region") not in (None, source_region):
                continue
            found.append(backup)
    if not found:
        return None

    def rank(backup: dict[str, Any]) -> tuple[bool, datetime]:
        latest = (backup.get("RestoreWindow") or {}).get("LatestTime")
        never = datetime.min.replace(tzinfo=UTC)
        return (backup.get("Status") != "retained", _aware(latest) if latest else never)

    return max(found, key=rank)


def restore_window(
    instance: dict[str, Any] | None, backup: dict[str, Any] | None, retention_days: int
) -> RestoreWindow:
    """The interval a point-in-time restore can target."""
    window = (backup or {}).get("RestoreWindow") or {}
    if window.get("EarliestTime") and window.get("LatestTime"):
        return RestoreWindow(
            _aware(window["EarliestTime"]), _aware(window["LatestTime"]), "restore-window"
        )
    if instance is None or not instance.get("LatestRestorableTime"):
        raise DrctlError(
            "RDS reports no restorable time for the source: automated backups are off or not "
            "yet taken (BackupRetentionPeriod must be at least 1)",
            ExitCode.PRECONDITION_FAILED,
        )
    latest = _aware(instance["LatestRestorableTime"])
    retention = int(instance.get("BackupRetentionPeriod") or retention_days)
    earliest = latest - timedelta(days=retention)
    if instance.get("InstanceCreateTime"):
        earliest = max(earliest, _aware(instance["InstanceCreateTime"]))
    return RestoreWindow(earliest, latest, "retention-estimate")


def plan_restore(
    session,
    source: RdsSource,
    *,
    target: str,
    target_time: datetime | None,
    from_repo: int = 1,
    accept_data_loss: bool = False,
    now: datetime | None = None,
) -> RestorePlan:
    """Everything is checked here, before any mutating call. Raises DrctlError on refusal."""
    check_identifier(target)
    if target == source.identifier:
        raise DrctlError(
            f"--to {target!r} is the source instance: a restore always goes to a new instance",
            ExitCode.INVALID_CONFIG,
        )
    if from_repo not in (1, 2):
        raise DrctlError(
            f"--from-repo {from_repo!r} is not valid: 1 (primary region) or 2 (DR region)",
            ExitCode.INVALID_CONFIG,
        )
    region = source.region if from_repo == 1 else source.dr_region
    rds = session.client("rds", region_name=region)
    request: dict[str, Any] = {"TargetDBInstanceIdentifier": target}
    if from_repo == 1:
        instance = _describe_instance(rds, source.identifier)
        if instance is None:
            raise DrctlError(
                f"source instance {source.identifier!r} not found in {region}; to restore after "
                "losing it, use --from-repo 2 (the automated backups replicated to the DR region)",
                ExitCode.PRECONDITION_FAILED,
            )
        backup = _automated_backup(rds, source.identifier, source.region)
        request["SourceDBInstanceIdentifier"] = source.identifier
        request.update(_settings_from(instance))
    else:
        # In the DR region only the replicated automated backup exists; it carries its own window.
        instance = None
        backup = _automated_backup(rds, source.identifier, source.region)
        if backup is None or not backup.get("DBInstanceAutomatedBackupsArn"):
            raise DrctlError(
                f"no automated backups of {source.identifier!r} replicated into {region}: "
                "is InstanceAutomatedBackupsReplication deployed?",
                ExitCode.PRECONDITION_FAILED,
            )
        request["SourceDBInstanceAutomatedBackupsArn"] = backup["DBInstanceAutomatedBackupsArn"]
        request.update(_settings_from(backup))
    window = restore_window(instance, backup, source.pitr_window_days)

    if target_time is None:
        age = (now or datetime.now(UTC)) - window.latest
        if age.total_seconds() > source.critical_rpo_s and not accept_data_loss:
            raise DrctlError(
                f"the latest restorable time {_iso(window.latest)} is {int(age.total_seconds())}s "
                f"old, beyond the critical RPO of {source.critical_rpo_s}s; restoring would lose "
                "more than the objective. Add --accept-data-loss to proceed anyway",
                ExitCode.REFUSED,
            )
        request["UseLatestRestorableTime"] = True
    else:
        if not window.contains(target_time):
            raise DrctlError(
                f"--target-time {_iso(target_time)} is outside the restorable window of "
                f"{source.identifier!r} in {region}: earliest {_iso(window.earliest)}, latest "
                f"{_iso(window.latest)} ({window.basis})",
                ExitCode.INVALID_CONFIG,
            )
        request["RestoreTime"] = target_time
    request["Tags"] = [
        {"Key": TAG_SOURCE, "Value": source.identifier},
        {"Key": TAG_TIME, "Value": _iso(target_time) if target_time else "latest"},
        *[
            t
            for t in (instance or {}).get("TagList", [])
            if t["Key"] not in (TAG_SOURCE, TAG_TIME) and not t["Key"].startswith("aws:")
        ],
    ]
    plan = RestorePlan(source.identifier, target, region, from_repo, target_time, window, request)
    existing = _describe_instance(rds, target)
    if existing is not None:
        tags = {t["Key"]: t["Value"] for t in existing.get("TagList", [])}
        wanted = {t["Key"]: t["Value"] for t in request["Tags"][:2]}
        if all(tags.get(k) == v for k, v in wanted.items()):
            plan.status = "already-restored"
        else:
            raise DrctlError(
                f"--to {target!r} already exists in {region} and is not this restore; "
                "choose a new instance identifier",
                ExitCode.REFUSED,
            )
    return plan


def _settings_from(described: dict[str, Any]) -> dict[str, Any]:
    """Keep the restored copy as protected and as private as the source.

    RestoreDBInstanceToPointInTime does not carry the parameter group (rds.force_ssl), log
    exports, security groups or deletion protection over by itself.
    """
    settings: dict[str, Any] = {
        "DeletionProtection": True,
        "CopyTagsToSnapshot": True,
        "PubliclyAccessible": False,
    }
    groups = described.get("DBParameterGroups") or []
    if groups:
        settings["DBParameterGroupName"] = groups[0]["DBParameterGroupName"]
    if described.get("EnabledCloudwatchLogsExports"):
        settings["EnableCloudwatchLogsExports"] = list(described["EnabledCloudwatchLogsExports"])
    subnet = (described.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
    if subnet:
        settings["DBSubnetGroupName"] = subnet
    sgs = [g["VpcSecurityGroupId"] for g in described.get("VpcSecurityGroups") or []]
    if sgs:
        settings["VpcSecurityGroupIds"] = sgs
    if described.get("DBInstanceClass"):
        settings["DBInstanceClass"] = described["DBInstanceClass"]
    return settings


def execute_restore(session, plan: RestorePlan) -> RestorePlan:
    """The one mutating call. Idempotent: an already-restored target is reported, not redone."""
    if plan.status == "already-restored":
        progress.print(f"{plan.target} already restored from {plan.source}; nothing to do")
        return plan
    rds = session.client("rds", region_name=plan.region)
    progress.print(f"restoring {plan.source} to {plan.target} in {plan.region}")
    rds.restore_db_instance_to_point_in_time(**plan.request)
    plan.status = "restored"
    return plan


def source_from_stack(stack: str, overrides: dict[str, Any] | None = None) -> RdsSource:
    """Read the RDS instance the stack declares (scripts.local.evaluate, no cloud access)."""
    from scripts.local.evaluate import evaluate_stack

    evaluation = evaluate_stack(stack, overrides=overrides)
    # The primary instance PostgresBackup declares (a DR read replica is another instance).
    instances = [
        r for r in evaluation.of_type("aws:rds/instance:Instance") if r.name == "database-instance"
    ]
    if not instances:
        raise DrctlError(
            f"stack {stack!r} declares no RDS instance (dbBackend is not rds)",
            ExitCode.INVALID_CONFIG,
        )
    from components.objectives import Objectives

    record = next(
        r for r in evaluation.resources if r.type == "platform-dr:objectives:ObjectivesRecord"
    )
    objectives = Objectives.from_record(record.inputs["objectives"])
    instance = instances[0]
    return RdsSource(
        identifier=instance.inputs["identifier"],
        region=instance.region,
        dr_region=objectives.regions.dr,
        critical_rpo_s=objectives.of("critical").rpo_s,
        pitr_window_days=objectives.pitr_window_days,
    )


def run(
    *,
    stack: str,
    target_time: str,
    to: str,
    from_repo: int = 1,
    execute: bool = False,
    yes: bool = False,
    as_json: bool = False,
    accept_data_loss: bool = False,
    source: RdsSource | None = None,
    session=None,
) -> RestorePlan:
    """What `drctl restore` runs for an rds stack. ``source``/``session`` are injected by tests."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from scripts.common import confirm_execute, out, print_json

    when = parse_target_time(target_time)
    source = source or source_from_stack(stack)
    if session is None:
        import boto3

        session = boto3.Session()
    try:
        plan = plan_restore(
            session,
            source,
            target=to,
            target_time=when,
            from_repo=from_repo,
            accept_data_loss=accept_data_loss,
        )
        what = (
            f"restore {plan.source} ({plan.region}) to {_iso(when) if when else 'latest'} "
            f"as new instance {plan.target}"
        )
        if plan.status == "already-restored" or confirm_execute(execute, yes, what):
            execute_restore(session, plan)
    except NoCredentialsError:
        raise DrctlError(
            "no AWS credentials for the RDS API", ExitCode.PRECONDITION_FAILED
        ) from None
    except ClientError as err:
        error = err.response.get("Error", {})
        raise DrctlError(
            f"RDS {err.operation_name} failed: {error.get('Code')}: {error.get('Message')}",
            ExitCode.STEP_FAILED,
        ) from None
    except BotoCoreError as err:
        raise DrctlError(f"RDS API call failed: {err}", ExitCode.STEP_FAILED) from None
    if as_json:
        print_json(plan.to_json())
    else:
        out.print(
            f"{plan.status}: {plan.source} -> {plan.target} in {plan.region} at "
            f"{plan.to_json()['restore_time']} (window {_iso(plan.window.earliest)} .. "
            f"{_iso(plan.window.latest)}, {plan.window.basis})"
        )
    return plan
