"""BackupPlan under Pulumi's mocks: the real __main__.py per stack, and the derivation directly.

The typed pulumi_aws args reject unknown arguments, so evaluating the program at all proves every
argument name exists in pulumi-aws 7; these tests check the values are the derived ones.
"""

from __future__ import annotations

import functools
import json

import pytest

from components.backup_plan import (
    COLD_MIN_DAYS,
    CONTINUOUS_MAX_DAYS,
    audit_controls,
    audit_hours,
    backup_rules,
    restore_test_schedule,
    vault_lock_settings,
)
from components.objectives import DAY, HOUR, MINUTE, ConfigError, parse_objectives
from scripts.local.evaluate import Evaluation, evaluate_stack

PLAN = "aws:backup/plan:Plan"
VAULT = "aws:backup/vault:Vault"
LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
SELECTION = "aws:backup/selection:Selection"
FRAMEWORK = "aws:backup/framework:Framework"
RT_PLAN = "aws:backup/restoreTestingPlan:RestoreTestingPlan"
RT_SELECTION = "aws:backup/restoreTestingSelection:RestoreTestingSelection"

BASE = {
    "primaryRegion": "us-east-1",
    "drRegion": "us-west-2",
    "thirdRegion": "eu-west-1",
}


def objectives(**overrides):
    return parse_objectives({**BASE, **overrides}, "test")


@functools.cache
def _evaluate(overrides: tuple) -> Evaluation:
    return evaluate_stack("prod", overrides=dict(overrides))


def plan_of(ev: Evaluation, cls: str) -> dict:
    return ev.named(f"backup-{cls}").inputs


def rules_by_name(ev: Evaluation, cls: str) -> dict[str, dict]:
    return {r["ruleName"]: r for r in plan_of(ev, cls)["rules"]}


def controls(ev: Evaluation, cls: str) -> dict[str, dict[str, str]]:
    framework = ev.named(f"backup-{cls}-framework").inputs
    return {
        c["name"]: {p["name"]: p["value"] for p in c.get("inputParameters") or []}
        for c in framework["controls"]
    }


# --- the real program -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_vaults_in_primary_and_dr_region_each_with_its_own_key(stack, request):
    ev: Evaluation = request.getfixturevalue(stack)
    regions = ev.outputs["regions"]
    vaults = {v.inputs["region"]: v.inputs for v in ev.of_type(VAULT)}
    assert set(vaults) == {regions["primary"], regions["dr"]}
    keys = {v["kmsKeyArn"] for v in vaults.values()}
    assert len(keys) == 2 and all(":key/" in k for k in keys)
    assert all(k.split(":")[3] == r for r, v in vaults.items() for k in [v["kmsKeyArn"]])
    assert set(ev.outputs["backupVaultNames"]) == set(vaults)


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_vault_lock_is_compliance_mode_with_bounds_from_the_objectives(stack, request):
    ev: Evaluation = request.getfixturevalue(stack)
    locks = ev.of_type(LOCK)
    assert len(locks) == 2
    for lock in locks:
        # changeable_for_days set = compliance mode; at least AWS's 3-day minimum.
        assert lock.inputs["changeableForDays"] >= 3
        # Defaults: shortest lifecycle is critical's continuous PITR (pitrWindowDays = 7),
        # longest is critical's retention (365 d).
        assert lock.inputs["minRetentionDays"] == 7
        assert lock.inputs["maxRetentionDays"] == 365


def test_vault_policy_denies_recovery_point_deletion_to_everyone(prod):
    for policy in prod.of_type("aws:backup/vaultPolicy:VaultPolicy"):
        doc = json.loads(policy.inputs["policy"])
        deny = [s for s in doc["Statement"] if s["Effect"] == "Deny"]
        actions = {a for s in deny for a in s["Action"]}
        assert {"backup:DeleteRecoveryPoint", "backup:UpdateRecoveryPointLifecycle"} <= actions
        assert all(s["Principal"] == {"AWS": "*"} for s in deny)


def test_rule_tiers_per_class(prod):
    assert list(rules_by_name(prod, "critical")) == [
        "hourly",
        "continuous",
        "daily",
        "weekly",
        "monthly",
    ]
    # important: the spec's daily and weekly, plus an hourly rule because its RPO is 1h.
    assert list(rules_by_name(prod, "important")) == ["rpo-1h", "daily", "weekly"]
    assert list(rules_by_name(prod, "operational")) == ["daily"]


def test_schedules_and_windows(prod):
    critical = rules_by_name(prod, "critical")
    assert critical["hourly"]["schedule"] == "cron(0 * * * ? *)"
    assert critical["daily"]["schedule"] == "cron(0 5 * * ? *)"
    assert critical["weekly"]["schedule"] == "cron(0 6 ? * SUN *)"
    assert critical["monthly"]["schedule"] == "cron(0 7 1 * ? *)"
    for cls in ("critical", "important", "operational"):
        for rule in plan_of(prod, cls)["rules"]:
            assert rule["startWindow"] >= 60
            assert rule["completionWindow"] >= rule["startWindow"] + 60


def test_continuous_backup_covers_the_pitr_window(prod):
    continuous = [r for r in plan_of(prod, "critical")["rules"] if r.get("enableContinuousBackup")]
    assert [r["ruleName"] for r in continuous] == ["continuous"]
    assert continuous[0]["lifecycle"]["deleteAfter"] == 7
    assert "coldStorageAfter" not in continuous[0]["lifecycle"]
    for cls in ("important", "operational"):
        assert not any(r.get("enableContinuousBackup") for r in plan_of(prod, cls)["rules"])


def test_monthly_archive_goes_cold_with_the_90_day_gap(prod):
    monthly = rules_by_name(prod, "critical")["monthly"]["lifecycle"]
    assert monthly["coldStorageAfter"] == 30
    assert monthly["deleteAfter"] == 365
    assert monthly["deleteAfter"] - monthly["coldStorageAfter"] >= COLD_MIN_DAYS
    assert monthly["optInToArchiveForSupportedResources"] is True


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_every_rule_copies_to_the_dr_vault_with_the_same_lifecycle(stack, request):
    ev: Evaluation = request.getfixturevalue(stack)
    regions = ev.outputs["regions"]
    dr_vault_arn = ev.outputs["backupVaultArns"][regions["dr"]]
    primary_vault = ev.outputs["backupVaultNames"][regions["primary"]]
    for plan in ev.of_type(PLAN):
        assert plan.inputs["region"] == regions["primary"]
        for rule in plan.inputs["rules"]:
            assert rule["targetVaultName"] == primary_vault
            copies = rule["copyActions"]
            assert [c["destinationVaultArn"] for c in copies] == [dr_vault_arn], rule["ruleName"]
            assert copies[0]["lifecycle"] == rule["lifecycle"]


def test_retention_follows_the_class_retention(prod):
    assert rules_by_name(prod, "critical")["monthly"]["lifecycle"]["deleteAfter"] == 365
    assert rules_by_name(prod, "important")["weekly"]["lifecycle"]["deleteAfter"] == 90
    assert rules_by_name(prod, "operational")["daily"]["lifecycle"]["deleteAfter"] == 30
    # Finer tiers: next coarser interval + PITR window (daily -> weekly 7 d + 7 d).
    assert rules_by_name(prod, "critical")["daily"]["lifecycle"]["deleteAfter"] == 14
    assert rules_by_name(prod, "critical")["weekly"]["lifecycle"]["deleteAfter"] == 37


def test_selections_by_backup_class_tag_with_the_backup_role(prod):
    selections = {s.name: s.inputs for s in prod.of_type(SELECTION)}
    assert set(selections) == {
        f"backup-{c}-selection" for c in ("critical", "important", "operational")
    }
    role = prod.named("backup-backup-role")
    for cls in ("critical", "important", "operational"):
        selection = selections[f"backup-{cls}-selection"]
        assert selection["selectionTags"] == [
            {"type": "STRINGEQUALS", "key": "backup-class", "value": cls}
        ]
        assert selection["planId"] == prod.outputs["backupPlanIds"][cls]
        assert selection["iamRoleArn"].endswith(role.name)


def test_roles_use_managed_policies_and_no_wildcard_grants(prod):
    attached = {
        r.inputs["policyArn"].rsplit("/", 1)[-1]
        for r in prod.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name.startswith("backup-")
    }
    assert attached == {
        "AWSBackupServiceRolePolicyForBackup",
        "AWSBackupServiceRolePolicyForS3Backup",
        "AWSBackupServiceRolePolicyForRestores",
        "AWSBackupServiceRolePolicyForS3Restore",
        "AWS_ConfigRole",  # the AWS Config recorder's role (awsConfigRecording: stack)
    }
    inline = [
        r
        for r in prod.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name.startswith("backup-") and r.name.endswith("-vault-keys")
    ]
    assert len(inline) == 2
    vault_keys = {v.inputs["kmsKeyArn"] for v in prod.of_type(VAULT)}
    for policy in inline:
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            assert "*" not in json.dumps(statement["Action"])
            assert set(statement["Resource"]) == vault_keys


def test_restore_testing_monthly_with_rds_and_s3_per_class(prod):
    plan = prod.named("backup-restore-testing").inputs
    assert plan["scheduleExpression"] == "cron(0 8 2 * ? *)"
    selection = plan["recoveryPointSelection"]
    assert selection["includeVaults"] == [prod.outputs["backupVaultArns"]["us-east-1"]]
    assert set(selection["recoveryPointTypes"]) == {"SNAPSHOT", "CONTINUOUS"}
    found = {
        (
            s.inputs["protectedResourceType"],
            s.inputs["protectedResourceConditions"]["stringEquals"][0]["value"],
        ): s.inputs
        for s in prod.of_type(RT_SELECTION)
    }
    assert set(found) == {
        (t, c) for t in ("RDS", "S3") for c in ("critical", "important", "operational")
    }
    # Validation window = the class RTO in hours.
    assert found[("RDS", "critical")]["validationWindowHours"] == 1
    assert found[("S3", "important")]["validationWindowHours"] == 4
    assert found[("RDS", "operational")]["validationWindowHours"] == 24
    assert all(s["restoreTestingPlanName"] == plan["name"] for s in found.values())
    assert prod.outputs["restoreTestingPlanName"] == plan["name"]


def test_audit_controls_carry_rpo_hours_and_rto_minutes(prod):
    critical = controls(prod, "critical")
    assert critical["BACKUP_LAST_RECOVERY_POINT_CREATED"] == {
        "recoveryPointAgeUnit": "hours",
        "recoveryPointAgeValue": "1",  # 15 min rounded up to AWS's whole hour
    }
    assert critical["RESTORE_TIME_FOR_RESOURCES_MEET_TARGET"] == {"maxRestoreTime": "60"}
    assert controls(prod, "important")["RESTORE_TIME_FOR_RESOURCES_MEET_TARGET"] == {
        "maxRestoreTime": "240"
    }
    operational = controls(prod, "operational")
    assert operational["BACKUP_LAST_RECOVERY_POINT_CREATED"]["recoveryPointAgeValue"] == "24"
    assert operational["RESTORE_TIME_FOR_RESOURCES_MEET_TARGET"] == {"maxRestoreTime": "1440"}
    assert critical["BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION"] == {
        "crossRegionList": "us-west-2"
    }
    assert critical["BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK"] == {
        "minRetentionDays": "7",
        "maxRetentionDays": "365",
    }
    assert set(critical) == {
        "BACKUP_LAST_RECOVERY_POINT_CREATED",
        "RESTORE_TIME_FOR_RESOURCES_MEET_TARGET",
        "BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION",
        "BACKUP_RECOVERY_POINT_ENCRYPTED",
        "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK",
        "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK",
        "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK",
    }


def test_controls_are_scoped_to_their_class_tag(prod):
    for cls in ("critical", "important", "operational"):
        framework = prod.named(f"backup-{cls}-framework").inputs
        assert all(c["scope"]["tags"] == {"backup-class": cls} for c in framework["controls"])
    assert set(prod.outputs["backupFrameworkArns"]) == {"critical", "important", "operational"}


def test_dr_stack_controls_name_its_own_dr_region(dr):
    assert controls(dr, "critical")["BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION"] == {
        "crossRegionList": "eu-west-1"
    }


def test_failed_jobs_go_to_the_alert_topic_of_each_vault_region(prod):
    alerts = prod.outputs["alertTopicArns"]
    targets = {
        t.inputs["region"]: t.inputs
        for t in prod.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if t.name.startswith("backup-")
    }
    assert set(targets) == {"us-east-1", "us-west-2"}
    for region, target in targets.items():
        assert target["arn"] == alerts[region]
        rule = prod.named(target["rule"]).inputs
        pattern = json.loads(rule["eventPattern"])
        assert pattern["source"] == ["aws.backup"]
        assert set(pattern["detail-type"]) == {
            "Backup Job State Change",
            "Copy Job State Change",
            "Restore Job State Change",
        }
        states = {s for alt in pattern["detail"]["$or"] for v in alt.values() for s in v}
        assert {"FAILED", "ABORTED", "EXPIRED"} <= states


def test_report_plans_deliver_to_a_replicated_bucket(prod):
    reports = [r.inputs for r in prod.of_type("aws:backup/reportPlan:ReportPlan")]
    templates = {r["reportSetting"]["reportTemplate"] for r in reports}
    assert templates == {
        "CONTROL_COMPLIANCE_REPORT",
        "BACKUP_JOB_REPORT",
        "COPY_JOB_REPORT",
        "RESTORE_JOB_REPORT",
    }
    bucket = {r["reportDeliveryChannel"]["s3BucketName"] for r in reports}
    assert len(bucket) == 1
    copies = [
        b for b in prod.of_type("aws:s3/bucket:Bucket") if b.name.startswith("backup-reports-")
    ]
    assert len(copies) == 3  # the ReplicatedBucket's three regions


def test_every_backup_resource_carries_class_tags(prod):
    for r in prod.resources:
        if r.type.startswith("aws:backup/") and "tags" in r.inputs:
            assert r.inputs["tags"]["backup-class"] in ("critical", "important", "operational")


# --- derivation changes with the objectives ---------------------------------------------------


def test_a_2h_critical_rpo_changes_the_audit_but_not_the_hourly_schedule():
    ev = _evaluate((("criticalRpo", "2h"),))
    critical = controls(ev, "critical")
    assert critical["BACKUP_LAST_RECOVERY_POINT_CREATED"]["recoveryPointAgeValue"] == "2"
    assert (
        critical["BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK"]["requiredFrequencyValue"]
        == "2"
    )
    # The spec fixes hourly log backups for critical data whatever the RPO.
    assert "hourly" in rules_by_name(ev, "critical")


def test_a_4h_important_rpo_gives_a_4_hourly_rule():
    ev = _evaluate((("importantRpo", "4h"),))
    rules = rules_by_name(ev, "important")
    assert list(rules) == ["rpo-4h", "daily", "weekly"]
    assert rules["rpo-4h"]["schedule"] == "cron(0 0/4 * * ? *)"
    assert (
        controls(ev, "important")["BACKUP_LAST_RECOVERY_POINT_CREATED"]["recoveryPointAgeValue"]
        == "4"
    )


def test_a_daily_important_rpo_keeps_only_the_spec_tiers():
    ev = _evaluate((("importantRpo", "24h"),))
    assert list(rules_by_name(ev, "important")) == ["daily", "weekly"]


def test_a_longer_pitr_window_moves_the_lock_floor_and_retention_checks():
    ev = _evaluate((("pitrWindowDays", "14"),))
    lock = ev.of_type(LOCK)[0].inputs
    assert lock["minRetentionDays"] == 14
    assert rules_by_name(ev, "critical")["continuous"]["lifecycle"]["deleteAfter"] == 14
    assert controls(ev, "critical")["BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK"] == {
        "requiredRetentionDays": "14"
    }


def test_longer_critical_retention_raises_the_lock_ceiling():
    ev = _evaluate((("criticalRetention", "730d"),))
    assert ev.of_type(LOCK)[0].inputs["maxRetentionDays"] == 730
    assert rules_by_name(ev, "critical")["monthly"]["lifecycle"]["deleteAfter"] == 730


# --- the pure derivation ----------------------------------------------------------------------


def test_audit_hours_rounds_up_to_whole_hours_with_a_1h_floor():
    assert audit_hours(15 * MINUTE) == 1
    assert audit_hours(HOUR) == 1
    assert audit_hours(HOUR + 1) == 2
    assert audit_hours(24 * HOUR) == 24


def test_cold_storage_is_skipped_when_the_90_day_gap_does_not_fit():
    short = objectives(criticalRetention="100d")
    monthly = [r for r in backup_rules(short, "critical") if r.name == "monthly"][0]
    assert monthly.cold_storage_after_days is None
    assert monthly.delete_after_days == 100
    fits = objectives(criticalRetention="120d")
    monthly = [r for r in backup_rules(fits, "critical") if r.name == "monthly"][0]
    assert monthly.cold_storage_after_days == 30


def test_continuous_retention_reaches_aws_maximum_at_the_longest_pitr_window():
    obj = objectives(pitrWindowDays="35", operationalRetention="35d")
    continuous = [r for r in backup_rules(obj, "critical") if r.continuous][0]
    assert continuous.delete_after_days == CONTINUOUS_MAX_DAYS == 35
    assert vault_lock_settings(obj).min_retention_days == 35


def test_every_rule_retention_lies_inside_the_vault_lock():
    for overrides in ({}, {"pitrWindowDays": "3"}, {"operationalRetention": "10d"}):
        obj = objectives(**overrides)
        lock = vault_lock_settings(obj)
        for cls in ("critical", "important", "operational"):
            for rule in backup_rules(obj, cls):
                assert lock.min_retention_days <= rule.delete_after_days <= lock.max_retention_days


def test_vault_lock_rejects_a_grace_period_below_aws_minimum():
    with pytest.raises(ConfigError, match="lockChangeableForDays = 2 .*at least 3 days"):
        vault_lock_settings(objectives(), changeable_for_days=2)
    with pytest.raises(ConfigError, match="vaultLockMode"):
        vault_lock_settings(objectives(), mode="LOOSE")
    assert vault_lock_settings(objectives(), mode="GOVERNANCE").changeable_for_days is None


def test_frequency_control_switches_to_days_beyond_24_hours():
    obj = objectives(operationalRpo="48h", operationalRto="48h")
    lock = vault_lock_settings(obj)
    found = {c.name: c.parameters for c in audit_controls(obj, "operational", lock)}
    assert (
        found["BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK"]["requiredFrequencyUnit"]
        == "days"
    )
    assert (
        found["BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK"]["requiredFrequencyValue"] == "2"
    )
    assert found["BACKUP_LAST_RECOVERY_POINT_CREATED"]["recoveryPointAgeValue"] == "48"


def test_restore_test_cadence_follows_the_schedule():
    assert restore_test_schedule(30 * DAY) == "cron(0 8 2 * ? *)"
    assert restore_test_schedule(7 * DAY) == "cron(0 8 ? * MON *)"
    assert restore_test_schedule(DAY) == "cron(0 8 * * ? *)"


def test_missing_alarm_topic_is_rejected_before_anything_is_declared():
    from components.backup_plan import BackupPlan, BackupPlanArgs

    with pytest.raises(ConfigError, match="alarm_topic_arns.*missing us-west-2"):
        BackupPlan(
            "b", BackupPlanArgs(objectives=objectives(), alarm_topic_arns={"us-east-1": "x"})
        )


def test_describe_prints_the_derivation_the_readme_quotes():
    from components.backup_plan import describe

    text = describe(objectives(criticalRpo="2h"))
    assert text.splitlines()[0] == "vault lock: COMPLIANCE, retention 7-365 d, changeable for 3 d"
    assert any(
        line.split()[:2] == ["critical", "monthly"] and "365" in line for line in text.splitlines()
    )
    critical_audit = [
        line for line in text.splitlines() if line.startswith("critical") and " h " in line
    ]
    assert critical_audit[0].split()[1:4] == ["2", "h", "60"]
