"""AWS Backup: the newest recovery point of each class, and each vault's lock against the
bounds the program derives (components/backup_plan.py ``vault_lock_settings``)."""

from __future__ import annotations

from components.backup_plan import audit_hours, vault_lock_settings
from scripts.checks import backup_audit
from scripts.checks.verify.model import (
    Check,
    CheckGroup,
    Context,
    Status,
    age_s,
    fmt_s,
    need,
    passed,
)


def recovery_point_checks(ctx: Context) -> list[Check]:
    primary = ctx.objectives.regions.primary
    vault = need(ctx.outputs, "backupVaultNames", primary)
    checks = []
    for cls, objective in ctx.objectives.classes.items():
        plan_id = need(ctx.outputs, "backupPlanIds", cls)
        # AWS Backup schedules whole hours; a finer RPO is measured by the database and
        # replication checks (the audit framework rounds the same way).
        limit = audit_hours(objective.rpo_s) * 3600
        target = f"{vault}/{plan_id}"
        point = backup_audit.newest_recovery_point(
            ctx.clients("backup", primary), vault, plan_id=plan_id
        )
        if point is None:
            checks.append(
                Check(
                    "backup-recovery-point",
                    cls,
                    target,
                    None,
                    limit,
                    Status.FAIL,
                    "no completed recovery point: the plan has never backed this class up",
                )
            )
            continue
        age = age_s(ctx.now, point.created)
        checks.append(
            Check(
                "backup-recovery-point",
                cls,
                target,
                round(age, 1),
                limit,
                passed(age <= limit),
                f"newest {point.resource_type} point {fmt_s(age)} old ({point.resource_arn}); "
                f"limit {fmt_s(limit)} for RPO {fmt_s(objective.rpo_s)}",
            )
        )
    return checks


def vault_lock_checks(ctx: Context) -> list[Check]:
    """Mode, minimum and maximum retention, and the grace period, each as the program derives.

    DescribeBackupVault reports the grace period only as LockDate, the moment the lock becomes
    immutable: while it is ahead, the time left must not exceed the derived changeable-for days
    (a longer grace leaves the lock removable longer than the program declares).
    """
    expected = vault_lock_settings(ctx.objectives)
    checks = []
    for region, vault in sorted(need(ctx.outputs, "backupVaultNames").items()):
        lock = backup_audit.vault_lock(ctx.clients("backup", region), vault)
        target = f"{region}/{vault}"
        if lock is None:
            checks.append(
                Check(
                    "vault-lock", "all", target, None, expected.mode, Status.FAIL, "no such vault"
                )
            )
            continue
        wrong = []
        if lock["mode"] != expected.mode:
            wrong.append(f"mode {lock['mode'] or 'none'}, the program declares {expected.mode}")
        for field, want in (
            ("min_retention_days", expected.min_retention_days),
            ("max_retention_days", expected.max_retention_days),
        ):
            if lock[field] != want:
                wrong.append(
                    f"{field.replace('_', ' ')} {lock[field]}, the program declares {want}"
                )
        grace = _grace_left(ctx, lock.get("lock_date"))
        if expected.changeable_for_days is not None and grace is not None:
            if grace > expected.changeable_for_days * 86400:
                wrong.append(
                    f"changeable for {fmt_s(grace)} more, the program declares at most "
                    f"{expected.changeable_for_days} d"
                )
        state = (
            "immutable"
            if lock.get("lock_date") and not grace
            else (f"changeable for {fmt_s(grace)} more" if grace else "removable (no lock date)")
        )
        measured = (
            f"{lock['mode'] or 'none'} {lock['min_retention_days']}-{lock['max_retention_days']} d"
        )
        checks.append(
            Check(
                "vault-lock",
                "all",
                target,
                measured,
                f"{expected.mode} {expected.min_retention_days}-{expected.max_retention_days} d",
                passed(not wrong),
                "; ".join(wrong) if wrong else f"lock {measured}, {state}",
            )
        )
    return checks


def _grace_left(ctx: Context, lock_date) -> float | None:
    """Seconds until the lock becomes immutable (0 once it is), None without a lock date."""
    if lock_date is None:
        return None
    return age_s(lock_date, ctx.now)  # lock_date - now, timezone-aware either way


RECOVERY_POINTS = CheckGroup(
    "backup-recovery-point", recovery_point_checks, needs=("backupVaultNames", "backupPlanIds")
)
VAULT_LOCKS = CheckGroup("vault-lock", vault_lock_checks, needs=("backupVaultNames",))
