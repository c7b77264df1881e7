"""scripts/checks/backup_audit.py against AWS Backup's API.

moto 5 implements backup vaults, vault lock configuration and backup plans, so those readers run
on moto. It does not implement ListRecoveryPointsByBackupVault, backup selections, restore
testing or Audit Manager frameworks: those tests use botocore.stub.Stubber, which validates every
request against the real AWS Backup service model, and each says so in its docstring.
"""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from components.backup_plan import (
    audit_controls,
    backup_rules,
    framework_name,
    plan_name,
    restore_testing_plan_name,
    vault_lock_settings,
    vault_name,
)
from components.objectives import parse_objectives
from scripts.checks import backup_audit

OBJ = parse_objectives(
    {"primaryRegion": "us-east-1", "drRegion": "us-west-2", "thirdRegion": "eu-west-1"}, "prod"
)
PRIMARY, DR = "us-east-1", "us-west-2"
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
KEY = "arn:aws:kms:us-east-1:111122223333:key/mrk-0123"


@pytest.fixture
def moto_clients(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": PRIMARY,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield {r: boto3.client("backup", region_name=r) for r in (PRIMARY, DR)}


def stubbed(region: str = PRIMARY):
    client = boto3.client(
        "backup",
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client, Stubber(client)


def declare_vaults(clients, *, mode="COMPLIANCE", bounds=None) -> dict[str, str]:
    """What the BackupPlan component declares: a vault per region with the derived lock."""
    lock = vault_lock_settings(OBJ)
    low, high = bounds or (lock.min_retention_days, lock.max_retention_days)
    arns = {}
    for region in (PRIMARY, DR):
        name = vault_name(OBJ, region)
        arns[region] = clients[region].create_backup_vault(
            BackupVaultName=name, EncryptionKeyArn=KEY
        )["BackupVaultArn"]
        params = {"BackupVaultName": name, "MinRetentionDays": low, "MaxRetentionDays": high}
        if mode == "COMPLIANCE":
            params["ChangeableForDays"] = lock.changeable_for_days
        clients[region].put_backup_vault_lock_configuration(**params)
    return arns


def declare_plans(client, dr_vault_arn: str, *, drop_copy_from: str | None = None) -> dict:
    ids = {}
    for cls in ("critical", "important", "operational"):
        rules = []
        for spec in backup_rules(OBJ, cls):
            rule = {
                "RuleName": spec.name,
                "TargetBackupVaultName": vault_name(OBJ, PRIMARY),
                "ScheduleExpression": spec.schedule,
                "Lifecycle": {"DeleteAfterDays": spec.delete_after_days},
                "EnableContinuousBackup": spec.continuous,
            }
            if spec.name != drop_copy_from:
                rule["CopyActions"] = [
                    {
                        "DestinationBackupVaultArn": dr_vault_arn,
                        "Lifecycle": {"DeleteAfterDays": spec.delete_after_days},
                    }
                ]
            rules.append(rule)
        ids[cls] = client.create_backup_plan(
            BackupPlan={"BackupPlanName": plan_name(OBJ, cls), "Rules": rules}
        )["BackupPlanId"]
    return ids


# --- moto: vaults, vault lock and plans -------------------------------------------------------


def test_vault_lock_in_compliance_mode_reads_bounds_and_lock_date(moto_clients):
    declare_vaults(moto_clients)
    lock = backup_audit.vault_lock(moto_clients[PRIMARY], vault_name(OBJ, PRIMARY))
    assert lock["mode"] == "COMPLIANCE"
    assert lock["locked"] is True
    assert lock["lock_date"] is not None
    assert (lock["min_retention_days"], lock["max_retention_days"]) == (7, 365)
    assert lock["encryption_key_arn"] == KEY


def test_vault_lock_without_grace_period_is_governance(moto_clients):
    declare_vaults(moto_clients, mode="GOVERNANCE")
    assert backup_audit.vault_lock(moto_clients[DR], vault_name(OBJ, DR))["mode"] == "GOVERNANCE"


def test_unlocked_and_missing_vaults(moto_clients):
    moto_clients[PRIMARY].create_backup_vault(BackupVaultName="bare")
    assert backup_audit.vault_lock(moto_clients[PRIMARY], "bare")["mode"] is None
    assert backup_audit.vault_lock(moto_clients[PRIMARY], "no-such-vault") is None


def test_plan_rules_and_copy_destinations(moto_clients):
    arns = declare_vaults(moto_clients)
    ids = declare_plans(moto_clients[PRIMARY], arns[DR])
    assert backup_audit.plan_ids_by_name(moto_clients[PRIMARY]) == {
        plan_name(OBJ, c): ids[c] for c in ids
    }
    rules = backup_audit.plan_rules(moto_clients[PRIMARY], ids["critical"])
    assert [r["name"] for r in rules] == ["hourly", "continuous", "daily", "weekly", "monthly"]
    assert all(r["copy_to"] == [arns[DR]] for r in rules)
    assert [r["name"] for r in rules if r["continuous"]] == ["continuous"]
    assert rules[0]["schedule"] == "cron(0 * * * ? *)"


# --- Stubber: APIs moto does not implement ----------------------------------------------------


def _point(arn, created, status="COMPLETED", resource="arn:aws:rds:us-east-1:1:db:app"):
    return {
        "RecoveryPointArn": arn,
        "BackupVaultName": "v",
        "ResourceArn": resource,
        "ResourceType": "RDS",
        "CreationDate": created,
        "Status": status,
    }


def test_newest_recovery_point_across_pages_skips_incomplete_ones():
    """Stubber: moto has no ListRecoveryPointsByBackupVault."""
    client, stub = stubbed()
    older = NOW - dt.timedelta(hours=5)
    newer = NOW - dt.timedelta(minutes=40)
    stub.add_response(
        "list_recovery_points_by_backup_vault",
        {
            "RecoveryPoints": [_point("rp-old", older), _point("rp-running", NOW, "PARTIAL")],
            "NextToken": "page2",
        },
        {"BackupVaultName": "v", "ByBackupPlanId": "plan-critical"},
    )
    stub.add_response(
        "list_recovery_points_by_backup_vault",
        {"RecoveryPoints": [_point("rp-new", newer)]},
        {"BackupVaultName": "v", "ByBackupPlanId": "plan-critical", "NextToken": "page2"},
    )
    with stub:
        newest = backup_audit.newest_recovery_point(client, "v", plan_id="plan-critical")
    stub.assert_no_pending_responses()
    assert newest.arn == "rp-new"
    assert newest.age_s(NOW) == 40 * 60


def test_no_completed_recovery_point_is_none():
    """Stubber: moto has no ListRecoveryPointsByBackupVault."""
    client, stub = stubbed()
    stub.add_response(
        "list_recovery_points_by_backup_vault",
        {"RecoveryPoints": [_point("rp", NOW, "EXPIRED")]},
        {"BackupVaultName": "v", "ByResourceArn": "arn:aws:s3:::bucket"},
    )
    with stub:
        assert (
            backup_audit.newest_recovery_point(client, "v", resource_arn="arn:aws:s3:::bucket")
            is None
        )


def _selection_stubs(stub, plan_id: str, cls: str, *, tag_value: str | None = None):
    stub.add_response(
        "list_backup_selections",
        {"BackupSelectionsList": [{"SelectionId": f"sel-{cls}", "SelectionName": cls}]},
        {"BackupPlanId": plan_id},
    )
    stub.add_response(
        "get_backup_selection",
        {
            "BackupSelection": {
                "SelectionName": cls,
                "IamRoleArn": "arn:aws:iam::111122223333:role/backup",
                "ListOfTags": [
                    {
                        "ConditionType": "STRINGEQUALS",
                        "ConditionKey": "backup-class",
                        "ConditionValue": tag_value or cls,
                    }
                ],
            },
            "SelectionId": f"sel-{cls}",
            "BackupPlanId": plan_id,
        },
        {"BackupPlanId": plan_id, "SelectionId": f"sel-{cls}"},
    )


def test_selections_read_their_tag_conditions():
    """Stubber: moto has no backup selections API."""
    client, stub = stubbed()
    _selection_stubs(stub, "plan-1", "important")
    with stub:
        found = backup_audit.selections(client, "plan-1")
    assert found == [{"name": "important", "tags": [("backup-class", "important")]}]


def _restore_testing_stubs(stub, types=("RDS", "S3")):
    name = restore_testing_plan_name(OBJ)
    stub.add_response(
        "get_restore_testing_plan",
        {
            "RestoreTestingPlan": {
                "CreationTime": NOW,
                "RecoveryPointSelection": {
                    "Algorithm": "LATEST_WITHIN_WINDOW",
                    "IncludeVaults": ["arn:aws:backup:us-east-1:1:backup-vault:v"],
                    "RecoveryPointTypes": ["SNAPSHOT"],
                },
                "RestoreTestingPlanArn": f"arn:aws:backup:us-east-1:1:restore-testing-plan:{name}",
                "RestoreTestingPlanName": name,
                "ScheduleExpression": "cron(0 8 2 * ? *)",
            }
        },
        {"RestoreTestingPlanName": name},
    )
    stub.add_response(
        "list_restore_testing_selections",
        {
            "RestoreTestingSelections": [
                {
                    "CreationTime": NOW,
                    "IamRoleArn": "arn:aws:iam::1:role/restore",
                    "ProtectedResourceType": t,
                    "RestoreTestingPlanName": name,
                    "RestoreTestingSelectionName": f"critical_{t.lower()}",
                    "ValidationWindowHours": 1,
                }
                for t in types
            ]
        },
        {"RestoreTestingPlanName": name},
    )


def test_restore_testing_plan_and_selections():
    """Stubber: moto has no restore testing API."""
    client, stub = stubbed()
    _restore_testing_stubs(stub)
    with stub:
        found = backup_audit.restore_testing(client, restore_testing_plan_name(OBJ))
    assert found["schedule"] == "cron(0 8 2 * ? *)"
    assert {s["resource_type"] for s in found["selections"]} == {"RDS", "S3"}


def test_missing_restore_testing_plan_is_none():
    """Stubber: moto has no restore testing API."""
    client, stub = stubbed()
    stub.add_client_error("get_restore_testing_plan", "ResourceNotFoundException")
    with stub:
        assert backup_audit.restore_testing(client, "nope") is None


def _framework_stubs(stub, cls: str, *, override: dict | None = None):
    lock = vault_lock_settings(OBJ)
    controls = []
    for control in audit_controls(OBJ, cls, lock):
        params = dict(control.parameters)
        params.update((override or {}).get(control.name, {}))
        controls.append(
            {
                "ControlName": control.name,
                "ControlInputParameters": [
                    {"ParameterName": k, "ParameterValue": v} for k, v in params.items()
                ],
                "ControlScope": {"Tags": control.scope_tags},
            }
        )
    stub.add_response(
        "describe_framework",
        {"FrameworkName": framework_name(OBJ, cls), "FrameworkControls": controls},
        {"FrameworkName": framework_name(OBJ, cls)},
    )


def test_framework_controls_read_parameters():
    """Stubber: moto has no Audit Manager frameworks."""
    client, stub = stubbed()
    _framework_stubs(stub, "critical")
    with stub:
        found = backup_audit.framework_controls(client, framework_name(OBJ, "critical"))
    assert found["BACKUP_LAST_RECOVERY_POINT_CREATED"] == {
        "recoveryPointAgeUnit": "hours",
        "recoveryPointAgeValue": "1",
    }
    assert found["RESTORE_TIME_FOR_RESOURCES_MEET_TARGET"] == {"maxRestoreTime": "60"}
    assert found["BACKUP_RECOVERY_POINT_ENCRYPTED"] == {}


# --- the whole audit: moto for vaults and plans, Stubber for the rest ------------------------

MOTO_OPS = {"describe_backup_vault", "list_backup_plans", "get_backup_plan"}


class Routed:
    """One client whose vault/plan calls go to moto and every other call to a Stubber client."""

    def __init__(self, moto_client, stub_client):
        self.moto, self.stub = moto_client, stub_client

    def _target(self, op: str):
        return self.moto if op in MOTO_OPS else self.stub

    def get_paginator(self, op: str):
        return self._target(op).get_paginator(op)

    def __getattr__(self, op: str):
        return getattr(self._target(op), op)


def _audit_stubs(stub, ids, *, ages=None, framework_override=None, rt_types=("RDS", "S3")):
    ages = ages or {}
    for cls in ("critical", "important", "operational"):
        _selection_stubs(stub, ids[cls], cls)
        created = NOW - ages.get(cls, dt.timedelta(minutes=30))
        stub.add_response(
            "list_recovery_points_by_backup_vault",
            {"RecoveryPoints": [_point(f"rp-{cls}", created)]},
            {"BackupVaultName": vault_name(OBJ, PRIMARY), "ByBackupPlanId": ids[cls]},
        )
        _framework_stubs(stub, cls, override=(framework_override or {}).get(cls))
    _restore_testing_stubs(stub, rt_types)


def test_audit_of_a_matching_deployment_is_all_ok(moto_clients):
    """Stubber for selections, recovery points, frameworks and restore testing (not in moto)."""
    arns = declare_vaults(moto_clients)
    ids = declare_plans(moto_clients[PRIMARY], arns[DR])
    client, stub = stubbed()
    _audit_stubs(stub, ids)
    clients = {PRIMARY: Routed(moto_clients[PRIMARY], client), DR: moto_clients[DR]}
    with stub:
        findings = backup_audit.audit(OBJ, clients, now=NOW)
    stub.assert_no_pending_responses()
    bad = [f for f in findings if not f.ok]
    assert bad == []
    checks = {(f.check, f.subject) for f in findings}
    assert ("recovery-point", "critical") in checks
    assert ("framework", "operational") in checks
    assert len([f for f in findings if f.check == "vault-lock"]) == 2


def test_audit_reports_drift(moto_clients):
    """Stubber for selections, recovery points, frameworks and restore testing (not in moto).

    Drift: governance-mode locks, a weekly rule without its DR copy, a critical recovery point
    older than the audited hour, an important framework with a 2-day RPO control, and a restore
    testing plan without its S3 selection.
    """
    arns = declare_vaults(moto_clients, mode="GOVERNANCE")
    ids = declare_plans(moto_clients[PRIMARY], arns[DR], drop_copy_from="weekly")
    client, stub = stubbed()
    _audit_stubs(
        stub,
        ids,
        ages={"critical": dt.timedelta(hours=2)},
        framework_override={
            "important": {"BACKUP_LAST_RECOVERY_POINT_CREATED": {"recoveryPointAgeValue": "48"}}
        },
        rt_types=("RDS",),
    )
    clients = {PRIMARY: Routed(moto_clients[PRIMARY], client), DR: moto_clients[DR]}
    with stub:
        findings = backup_audit.audit(OBJ, clients, now=NOW)
    bad = {(f.check, f.subject): f.detail for f in findings if not f.ok}
    assert set(bad) == {
        ("vault-lock", vault_name(OBJ, PRIMARY)),
        ("vault-lock", vault_name(OBJ, DR)),
        ("plan-dr-copy", "critical"),
        ("plan-dr-copy", "important"),
        ("recovery-point", "critical"),
        ("framework", "important"),
        ("restore-testing", restore_testing_plan_name(OBJ)),
    }
    assert "weekly" in bad[("plan-dr-copy", "critical")]
    assert "2h old" in bad[("recovery-point", "critical")]
    assert "BACKUP_LAST_RECOVERY_POINT_CREATED" in bad[("framework", "important")]
    assert "S3" in bad[("restore-testing", restore_testing_plan_name(OBJ))]


def test_audit_of_an_empty_account_finds_nothing_deployed(moto_clients):
    """Stubber for the restore testing lookup (not in moto); vaults and plans are moto's."""
    client, stub = stubbed()
    stub.add_client_error("get_restore_testing_plan", "ResourceNotFoundException")
    clients = {PRIMARY: Routed(moto_clients[PRIMARY], client), DR: moto_clients[DR]}
    with stub:
        findings = backup_audit.audit(OBJ, clients, now=NOW)
    assert findings and not any(f.ok for f in findings)
    assert {f.check for f in findings} == {"vault", "plan", "restore-testing"}
