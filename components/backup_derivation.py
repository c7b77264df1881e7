"""AWS Backup, derived: the pure functions BackupPlan declares from, and the names it gives.

Every number a backup plan, vault lock or audit framework carries comes from a function here
(``backup_rules``, ``vault_lock_settings``, ``audit_controls``...), so tests, the policy rules and
``drctl verify`` compute the same values without declaring anything (components/backup_plan.py
declares them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from components.objectives import (
    DATA_CLASSES,
    DAY,
    HOUR,
    MINUTE,
    PROJECT,
    TAG_CLASS,
    ConfigError,
    Objectives,
)
from policy.aws_semantics.services import (
    COLD_MIN_DAYS,
    CONTINUOUS_MAX_DAYS,
    LOCK_MIN_CHANGEABLE_DAYS,
)

DATASET = "aws-backup"

# AWS Backup limits that shape the derivation (AWS Backup developer guide). The ones the
# AWS-semantics policies also check live in policy/aws_semantics/services.py, imported above.
START_WINDOW_MIN = 60  # the shortest start window AWS Backup accepts
AUDIT_MAX_AGE_HOURS = 744  # BACKUP_LAST_RECOVERY_POINT_CREATED: at most 744 hours
AUDIT_MAX_FREQUENCY_HOURS = 24  # BACKUP_PLAN_MIN_FREQUENCY...: at most 24 when the unit is hours
VALIDATION_WINDOW_MAX_HOURS = 168
RESTORE_TEST_START_WINDOW_HOURS = 24

VAULT_LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")

MANAGED_BACKUP_POLICIES = (
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Backup",
)
MANAGED_RESTORE_POLICIES = (
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
    "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Restore",
)

# Which tiers of the spec's "Backup Schedule" each class gets (issue 4, "Plans per data class").
CLASS_TIERS: dict[str, tuple[str, ...]] = {
    "critical": ("hourly", "daily", "weekly", "monthly"),
    "important": ("daily", "weekly"),
    "operational": ("daily",),
}
# Staggered so the tiers of one class do not all start on the same minute.
TIER_CRON = {
    "hourly": "cron(0 * * * ? *)",
    "daily": "cron(0 5 * * ? *)",
    "weekly": "cron(0 6 ? * SUN *)",
    "monthly": "cron(0 7 1 * ? *)",
}
CONTINUOUS_CRON = "cron(30 5 * * ? *)"

FAILED_JOB_STATES = ("FAILED", "ABORTED", "EXPIRED", "PARTIAL")
JOB_DETAIL_TYPES = ("Backup Job State Change", "Copy Job State Change", "Restore Job State Change")
RESTORE_TEST_RESOURCE_TYPES = ("RDS", "S3")


# ---------------------------------------------------------------------------------------------
# Derivation: pure functions of the objectives.


@dataclass(frozen=True)
class RuleSpec:
    """One backup rule as derived; the plan declares exactly this."""

    name: str
    schedule: str
    interval_s: int  # seconds between two recovery points of this rule
    delete_after_days: int
    cold_storage_after_days: int | None = None
    continuous: bool = False
    start_window_min: int = START_WINDOW_MIN
    completion_window_min: int = 2 * START_WINDOW_MIN


def audit_hours(seconds: int) -> int:
    """Whole hours for AWS Backup Audit Manager: rounded UP, at least 1.

    AWS's controls only take whole hours; rounding up means a 15-minute objective is audited at
    one hour, so the finer objective has to be covered by another mechanism;
    ``policy.backup_coverage`` names the declared one (continuous backup, S3 RTC, WAL)."""
    return max(1, math.ceil(seconds / HOUR))


def _tier_interval(objectives: Objectives, tier: str) -> int:
    schedule = objectives.schedule
    return {
        "hourly": schedule.log_backup_s,
        "daily": schedule.differential_s,
        "weekly": schedule.full_s,
        "monthly": schedule.archive_s,
    }[tier]


def _completion_window(interval_s: int) -> int:
    # A job may run until the next one of its rule is due (capped at a week), and always at least
    # an hour past its start window; so a slow job never overlaps its successor.
    return max(START_WINDOW_MIN + 60, min(interval_s // MINUTE, 7 * DAY // MINUTE))


def backup_rules(objectives: Objectives, data_class: str) -> list[RuleSpec]:
    """The rules of one class's plan, finest first.

    - Tiers come from the spec's schedule (CLASS_TIERS). If the class RPO, in the whole hours AWS
      audits, is shorter than the class's finest tier, an ``rpo-<n>h`` rule every n hours is
      added, so the BACKUP_LAST_RECOVERY_POINT_CREATED control can pass (with the defaults that
      gives important data an hourly rule: its RPO is 1h but its tiers are daily and weekly).
    - Critical data also gets continuous backup (PITR) for the PITR window (AWS max 35 days).
    - Retention: the coarsest tier keeps the class retention; every finer tier is kept for one
      interval of the next coarser tier plus the PITR window, so two tiers always overlap.
    - Cold storage: the monthly archive moves to cold storage after one archive interval, but only
      when AWS's 90-day cold minimum still fits inside the class retention.
    """
    objective = objectives.of(data_class)
    pitr = objectives.pitr_window_days
    tiers = [(t, _tier_interval(objectives, t), TIER_CRON[t]) for t in CLASS_TIERS[data_class]]
    rpo_hours = audit_hours(objective.rpo_s)
    if rpo_hours * HOUR < tiers[0][1]:
        every = f"cron(0 0/{rpo_hours} * * ? *)" if rpo_hours > 1 else TIER_CRON["hourly"]
        tiers.insert(0, (f"rpo-{rpo_hours}h", rpo_hours * HOUR, every))

    rules: list[RuleSpec] = []
    for i, (tier, interval, schedule) in enumerate(tiers):
        if i + 1 < len(tiers):
            keep = min(objective.retention_days, math.ceil(tiers[i + 1][1] / DAY) + pitr)
        else:
            keep = objective.retention_days
        cold = None
        if tier == "monthly":
            warm = math.ceil(interval / DAY)
            if keep - warm >= COLD_MIN_DAYS:
                cold = warm
        rules.append(
            RuleSpec(
                name=tier,
                schedule=schedule,
                interval_s=interval,
                delete_after_days=keep,
                cold_storage_after_days=cold,
                completion_window_min=_completion_window(interval),
            )
        )
    if data_class == "critical":
        rules.insert(
            len([r for r in rules if r.interval_s < DAY]),
            RuleSpec(
                name="continuous",
                schedule=CONTINUOUS_CRON,
                interval_s=DAY,
                delete_after_days=min(pitr, CONTINUOUS_MAX_DAYS),
                continuous=True,
                completion_window_min=_completion_window(DAY),
            ),
        )
    return rules


@dataclass(frozen=True)
class VaultLockSettings:
    mode: str
    min_retention_days: int
    max_retention_days: int
    changeable_for_days: int | None  # None: governance mode (no grace period, removable)


def vault_lock_settings(
    objectives: Objectives, mode: str = "COMPLIANCE", changeable_for_days: int = 3
) -> VaultLockSettings:
    """Vault lock bounds derived from the rules every class writes into the vaults.

    min_retention_days is the shortest lifecycle any rule (or its DR copy) writes, so no
    scheduled job is refused by the lock and nobody can write a shorter-lived recovery point;
    max_retention_days is the longest class retention, so no recovery point can be kept (and paid
    for) beyond what the objectives ask. Both vaults receive the same lifecycles (copies keep the
    source lifecycle), so they share the bounds.
    """
    if mode not in VAULT_LOCK_MODES:
        raise ConfigError("vaultLockMode", mode, " or ".join(VAULT_LOCK_MODES))
    if mode == "COMPLIANCE" and changeable_for_days < LOCK_MIN_CHANGEABLE_DAYS:
        raise ConfigError(
            "lockChangeableForDays",
            changeable_for_days,
            f"at least {LOCK_MIN_CHANGEABLE_DAYS} days (AWS's compliance-mode grace period)",
        )
    lifecycles = [r.delete_after_days for c in DATA_CLASSES for r in backup_rules(objectives, c)]
    return VaultLockSettings(
        mode=mode,
        min_retention_days=min(lifecycles),
        max_retention_days=max(lifecycles),
        changeable_for_days=changeable_for_days if mode == "COMPLIANCE" else None,
    )


@dataclass(frozen=True)
class ControlSpec:
    name: str
    parameters: dict[str, str] = field(default_factory=dict)
    scope_tags: dict[str, str] = field(default_factory=dict)


def _frequency_parameters(rpo_s: int) -> dict[str, str]:
    hours = audit_hours(rpo_s)
    if hours <= AUDIT_MAX_FREQUENCY_HOURS:
        return {"requiredFrequencyUnit": "hours", "requiredFrequencyValue": str(hours)}
    return {"requiredFrequencyUnit": "days", "requiredFrequencyValue": str(math.ceil(hours / 24))}


def audit_controls(
    objectives: Objectives, data_class: str, lock: VaultLockSettings
) -> list[ControlSpec]:
    """Backup Audit Manager controls of one class, scoped to its backup-class tag.

    RPO goes in whole hours (rounded up, at least 1h; AWS's limit is 744h); RTO in minutes
    (rounded up). Minimum retention is the PITR window: no recovery point of the class may expire
    before a point-in-time restore could need it.
    """
    objective = objectives.of(data_class)
    scope = {TAG_CLASS: data_class}
    age_hours = min(audit_hours(objective.rpo_s), AUDIT_MAX_AGE_HOURS)
    return [
        ControlSpec(
            "BACKUP_LAST_RECOVERY_POINT_CREATED",
            {"recoveryPointAgeUnit": "hours", "recoveryPointAgeValue": str(age_hours)},
            scope,
        ),
        ControlSpec(
            "RESTORE_TIME_FOR_RESOURCES_MEET_TARGET",
            {"maxRestoreTime": str(math.ceil(objective.rto_s / MINUTE))},
            scope,
        ),
        ControlSpec(
            "BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION",
            {"crossRegionList": objectives.regions.dr},
            scope,
        ),
        ControlSpec("BACKUP_RECOVERY_POINT_ENCRYPTED", {}, scope),
        ControlSpec(
            "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK",
            {"requiredRetentionDays": str(objectives.pitr_window_days)},
            scope,
        ),
        ControlSpec(
            "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK",
            {
                **_frequency_parameters(objective.rpo_s),
                "requiredRetentionDays": str(objectives.pitr_window_days),
            },
            scope,
        ),
        ControlSpec(
            "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK",
            {
                "minRetentionDays": str(lock.min_retention_days),
                "maxRetentionDays": str(lock.max_retention_days),
            },
            scope,
        ),
    ]


def restore_test_schedule(restore_test_s: int) -> str:
    """The spec's restore-test cadence as a cron: monthly on the 2nd (after the 1st's archive)."""
    days = restore_test_s / DAY
    if days >= 28:
        return "cron(0 8 2 * ? *)"
    if days >= 7:
        return "cron(0 8 ? * MON *)"
    return "cron(0 8 * * ? *)"


def validation_window_hours(objectives: Objectives, data_class: str) -> int:
    """A restored test copy is kept for the class RTO: validation must finish inside it."""
    hours = math.ceil(objectives.of(data_class).rto_s / HOUR)
    return max(1, min(hours, VALIDATION_WINDOW_MAX_HOURS))


def failed_jobs_pattern() -> str:
    # Backup and copy job events carry `state`, restore job events carry `status` (AWS Backup
    # EventBridge reference); match either.
    states = list(FAILED_JOB_STATES)
    return json.dumps(
        {
            "source": ["aws.backup"],
            "detail-type": list(JOB_DETAIL_TYPES),
            "detail": {"$or": [{"state": states}, {"status": states}]},
        }
    )


def _resource_name(objectives: Objectives, *parts: str, sep: str = "-") -> str:
    # Vault/plan names allow hyphens; framework, report and restore-testing names only underscores.
    words = [PROJECT, objectives.stack, *parts]
    return sep.join(w.replace("-", sep).replace("_", sep) for w in words)


# The AWS names, so drctl can find the resources from the objectives alone.
def vault_name(objectives: Objectives, region: str) -> str:
    return _resource_name(objectives, region)


def plan_name(objectives: Objectives, data_class: str) -> str:
    return _resource_name(objectives, data_class)


def framework_name(objectives: Objectives, data_class: str) -> str:
    return _resource_name(objectives, data_class, sep="_")


def restore_testing_plan_name(objectives: Objectives) -> str:
    return _resource_name(objectives, "restore", "testing", sep="_")


# ---------------------------------------------------------------------------------------------
# Policies


def vault_key_policy(key_arns: list[str], restore: bool) -> str:
    """What AWS Backup needs on the vault keys, and only on those keys."""
    actions = ["kms:Decrypt", "kms:DescribeKey"]
    if not restore:
        actions += ["kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "UseVaultKeys", "Effect": "Allow", "Action": actions, "Resource": key_arns},
                {
                    "Sid": "GrantToBackupOnly",
                    "Effect": "Allow",
                    "Action": "kms:CreateGrant",
                    "Resource": key_arns,
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
            ],
        }
    )


def vault_access_policy(vault_arn: str) -> str:
    """Nobody, root included, deletes or shortens a recovery point or deletes the vault.

    In a vault access policy a Resource of "*" means the recovery points in this vault (their
    ARNs differ per service: EBS snapshots, RDS snapshots, backup recovery points); the vault
    itself is named by its ARN. AWS Backup's own lifecycle expiry is not subject to this policy.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyRecoveryPointDeletion",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "backup:DeleteRecoveryPoint",
                        "backup:UpdateRecoveryPointLifecycle",
                        "backup:DisassociateRecoveryPoint",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "DenyVaultDeletion",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": ["backup:DeleteBackupVault"],
                    "Resource": vault_arn,
                },
            ],
        }
    )
