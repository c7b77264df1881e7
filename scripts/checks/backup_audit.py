"""Read AWS Backup's live state and compare it with what the objectives derive (for drctl verify).

Every function takes an injected boto3 ``backup`` client, so tests point the same code at moto
(vaults, vault lock, plans) and at botocore's Stubber (recovery points, selections, restore
testing, frameworks: APIs moto does not implement). ``audit()`` is the whole check; it prints
nothing and returns findings, and the caller decides how to show them.

The expected values come from ``components.backup_plan``'s pure derivation functions, the same
ones the Pulumi component declares from: one place knows each number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from components.backup_plan import (
    RESTORE_TEST_RESOURCE_TYPES,
    audit_controls,
    audit_hours,
    backup_rules,
    framework_name,
    plan_name,
    restore_testing_plan_name,
    vault_lock_settings,
    vault_name,
)
from components.objectives import DATA_CLASSES, TAG_CLASS, Objectives, format_duration

NOT_FOUND = ("ResourceNotFoundException", "AccessDeniedException")


@dataclass(frozen=True)
class RecoveryPoint:
    arn: str
    resource_arn: str
    resource_type: str
    created: dt.datetime
    status: str

    def age_s(self, now: dt.datetime) -> float:
        return (now - self.created).total_seconds()


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _missing(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") in NOT_FOUND


# ---------------------------------------------------------------------------------------------
# Readers: one AWS Backup API each, returning plain data.


def newest_recovery_point(
    client, vault: str, *, plan_id: str | None = None, resource_arn: str | None = None
) -> RecoveryPoint | None:
    """The newest COMPLETED recovery point in ``vault``, optionally of one plan or one resource.

    AWS has no tag filter on this API; a class is found through its plan (one plan per class).
    """
    kwargs: dict[str, Any] = {"BackupVaultName": vault}
    if plan_id:
        kwargs["ByBackupPlanId"] = plan_id
    if resource_arn:
        kwargs["ByResourceArn"] = resource_arn
    newest: RecoveryPoint | None = None
    for page in client.get_paginator("list_recovery_points_by_backup_vault").paginate(**kwargs):
        for point in page.get("RecoveryPoints", []):
            if point.get("Status") != "COMPLETED":
                continue
            candidate = RecoveryPoint(
                arn=point["RecoveryPointArn"],
                resource_arn=point.get("ResourceArn", ""),
                resource_type=point.get("ResourceType", ""),
                created=point["CreationDate"],
                status=point["Status"],
            )
            if newest is None or candidate.created > newest.created:
                newest = candidate
    return newest


def vault_lock(client, vault: str) -> dict[str, Any] | None:
    """The vault's lock as AWS reports it, or None if the vault does not exist.

    ``mode`` is COMPLIANCE when the lock has a LockDate (after it, nobody can remove the lock),
    GOVERNANCE when it has retention bounds but no date, None when there is no lock.
    """
    try:
        vault_info = client.describe_backup_vault(BackupVaultName=vault)
    except ClientError as err:
        if _missing(err):
            return None
        raise
    has_bounds = "MinRetentionDays" in vault_info or "MaxRetentionDays" in vault_info
    lock_date = vault_info.get("LockDate")
    return {
        "vault": vault,
        "encryption_key_arn": vault_info.get("EncryptionKeyArn"),
        "locked": bool(vault_info.get("Locked")),
        "mode": "COMPLIANCE" if lock_date else ("GOVERNANCE" if has_bounds else None),
        "lock_date": lock_date,
        "min_retention_days": vault_info.get("MinRetentionDays"),
        "max_retention_days": vault_info.get("MaxRetentionDays"),
    }


def plan_ids_by_name(client) -> dict[str, str]:
    ids = {}
    for page in client.get_paginator("list_backup_plans").paginate():
        for plan in page.get("BackupPlansList", []):
            ids[plan["BackupPlanName"]] = plan["BackupPlanId"]
    return ids


def plan_rules(client, plan_id: str) -> list[dict[str, Any]]:
    """Each rule of a plan: name, schedule, lifecycle, continuous flag and copy destinations."""
    plan = client.get_backup_plan(BackupPlanId=plan_id)["BackupPlan"]
    rules = []
    for rule in plan.get("Rules", []):
        rules.append(
            {
                "name": rule["RuleName"],
                "schedule": rule.get("ScheduleExpression"),
                "delete_after_days": (rule.get("Lifecycle") or {}).get("DeleteAfterDays"),
                "continuous": bool(rule.get("EnableContinuousBackup")),
                "copy_to": [c["DestinationBackupVaultArn"] for c in rule.get("CopyActions", [])],
            }
        )
    return rules


def selections(client, plan_id: str) -> list[dict[str, Any]]:
    """Selections of a plan with their tag conditions as (key, value) pairs."""
    found = []
    for page in client.get_paginator("list_backup_selections").paginate(BackupPlanId=plan_id):
        for item in page.get("BackupSelectionsList", []):
            detail = client.get_backup_selection(
                BackupPlanId=plan_id, SelectionId=item["SelectionId"]
            )["BackupSelection"]
            tags = [(t["ConditionKey"], t["ConditionValue"]) for t in detail.get("ListOfTags", [])]
            found.append({"name": detail["SelectionName"], "tags": tags})
    return found


def restore_testing(client, name: str) -> dict[str, Any] | None:
    """The restore-testing plan and its selections, or None if it does not exist."""
    try:
        plan = client.get_restore_testing_plan(RestoreTestingPlanName=name)["RestoreTestingPlan"]
    except ClientError as err:
        if _missing(err):
            return None
        raise
    chosen = []
    for page in client.get_paginator("list_restore_testing_selections").paginate(
        RestoreTestingPlanName=name
    ):
        for item in page.get("RestoreTestingSelections", []):
            chosen.append(
                {
                    "name": item["RestoreTestingSelectionName"],
                    "resource_type": item["ProtectedResourceType"],
                    "validation_window_hours": item.get("ValidationWindowHours"),
                }
            )
    return {
        "name": plan["RestoreTestingPlanName"],
        "schedule": plan["ScheduleExpression"],
        "selections": chosen,
    }


def framework_controls(client, name: str) -> dict[str, dict[str, str]] | None:
    """control name -> {parameter: value} of a framework, or None if it does not exist."""
    try:
        framework = client.describe_framework(FrameworkName=name)
    except ClientError as err:
        if _missing(err):
            return None
        raise
    return {
        c["ControlName"]: {
            p["ParameterName"]: p["ParameterValue"] for p in c.get("ControlInputParameters", [])
        }
        for c in framework.get("FrameworkControls", [])
    }


# ---------------------------------------------------------------------------------------------
# The audit: live state against the derivation.


def audit(
    objectives: Objectives,
    clients: Mapping[str, Any],
    *,
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Check AWS Backup in the primary and DR regions against what the objectives derive.

    ``clients`` maps region -> boto3 ``backup`` client; both vault regions are needed.
    """
    now = now or dt.datetime.now(dt.UTC)
    primary, dr = objectives.regions.primary, objectives.regions.dr
    findings: list[Finding] = []

    def add(check: str, subject: str, ok: bool, detail: str) -> None:
        findings.append(Finding(check, subject, ok, detail))

    expected_lock = vault_lock_settings(objectives)
    vault_arns: dict[str, str] = {}
    for region in (primary, dr):
        name = vault_name(objectives, region)
        lock = vault_lock(clients[region], name)
        if lock is None:
            add("vault", name, False, f"no vault {name} in {region}")
            continue
        bounds = (lock["min_retention_days"], lock["max_retention_days"])
        want = (expected_lock.min_retention_days, expected_lock.max_retention_days)
        add(
            "vault-lock",
            name,
            lock["mode"] == expected_lock.mode and bounds == want,
            f"mode {lock['mode']}, retention {bounds[0]}-{bounds[1]} d; "
            f"expected {expected_lock.mode}, {want[0]}-{want[1]} d",
        )
        vault_arns[region] = clients[region].describe_backup_vault(BackupVaultName=name)[
            "BackupVaultArn"
        ]

    client = clients[primary]
    ids = plan_ids_by_name(client)
    for cls in DATA_CLASSES:
        name = plan_name(objectives, cls)
        plan_id = ids.get(name)
        if plan_id is None:
            add("plan", cls, False, f"no backup plan {name} in {primary}")
            continue
        rules = plan_rules(client, plan_id)
        expected = [r.name for r in backup_rules(objectives, cls)]
        actual = [r["name"] for r in rules]
        add("plan-rules", cls, actual == expected, f"rules {actual}; expected {expected}")
        no_copy = [r["name"] for r in rules if vault_arns.get(dr) not in r["copy_to"]]
        add(
            "plan-dr-copy",
            cls,
            not no_copy and dr in vault_arns,
            f"rules without a copy to the DR vault: {no_copy}" if no_copy else "every rule",
        )
        tagged = [s for s in selections(client, plan_id) if (TAG_CLASS, cls) in s["tags"]]
        add(
            "selection",
            cls,
            bool(tagged),
            f"selects {TAG_CLASS}={cls}" if tagged else f"no selection on {TAG_CLASS}={cls}",
        )
        newest = newest_recovery_point(client, vault_name(objectives, primary), plan_id=plan_id)
        limit_h = audit_hours(objectives.of(cls).rpo_s)
        if newest is None:
            add("recovery-point", cls, False, "no completed recovery point")
        else:
            age = newest.age_s(now)
            add(
                "recovery-point",
                cls,
                age <= limit_h * 3600,
                f"newest {format_duration(int(age))} old ({newest.resource_arn}); "
                f"audited limit {limit_h}h for RPO {format_duration(objectives.of(cls).rpo_s)}",
            )

        controls = framework_controls(client, framework_name(objectives, cls))
        want_controls = {
            c.name: c.parameters for c in audit_controls(objectives, cls, expected_lock)
        }
        if controls is None:
            add("framework", cls, False, f"no framework {framework_name(objectives, cls)}")
        else:
            wrong = sorted(n for n, p in want_controls.items() if controls.get(n) != p)
            add(
                "framework",
                cls,
                not wrong,
                f"controls differing from the objectives: {wrong}" if wrong else "all controls",
            )

    testing = restore_testing(client, restore_testing_plan_name(objectives))
    if testing is None:
        add("restore-testing", "plan", False, "no restore testing plan")
    else:
        types = {s["resource_type"] for s in testing["selections"]}
        missing = sorted(set(RESTORE_TEST_RESOURCE_TYPES) - types)
        add(
            "restore-testing",
            testing["name"],
            not missing,
            f"schedule {testing['schedule']}; "
            + (f"missing selections for {missing}" if missing else "RDS and S3 selected"),
        )
    return findings
