"""Secure defaults of the RDS backend (PostgresBackup with dbBackend rds): one small function per
rule, ``props -> [problem]``. rules.py adds ``RULES`` to its ``RESOURCE_RULES``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# rules.py imports this module at its end, as policy.rules (drctl, tests) or as the top-level
# module rules (the policy host runs the pack from inside policy/).
if __package__:
    from .rules import ResourceRule, _as_list, _whole
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    from rules import ResourceRule, _as_list, _whole  # type: ignore[no-redef]


def rds_encrypted_with_cmk(props: Mapping[str, Any]) -> list[str]:
    if props.get("storageEncrypted") is not True:
        return ["storage is not encrypted"]
    return [] if props.get("kmsKeyId") else ["storage is encrypted with the AWS managed key"]


def rds_keeps_pitr_window(props: Mapping[str, Any]) -> list[str]:
    # The spec's 7-day PITR; the stack's own window is checked by the database mechanism.
    days = _whole(props.get("backupRetentionPeriod")) or 0
    return [] if days >= 7 else [f"backup retention {days} d is under the spec's 7-day PITR"]


def rds_protected(props: Mapping[str, Any]) -> list[str]:
    problems = []
    if props.get("deletionProtection") is not True:
        problems.append("deletion protection is off")
    if props.get("publiclyAccessible") is True:
        problems.append("the instance is publicly accessible")
    if props.get("skipFinalSnapshot") is True:
        problems.append("deleting it would take no final snapshot")
    return problems


def rds_postgres_forces_tls(props: Mapping[str, Any]) -> list[str]:
    family = str(props.get("family") or "")
    if family and not family.startswith("postgres"):
        return []  # rds.force_ssl is a PostgreSQL parameter
    values = {p.get("name"): str(p.get("value")) for p in _as_list(props.get("parameters"))}
    return [] if values.get("rds.force_ssl") == "1" else ["rds.force_ssl is not 1"]


def rds_backup_copy_encrypted(props: Mapping[str, Any]) -> list[str]:
    return [] if props.get("kmsKeyId") else ["replicated backups have no customer key"]


RULES: list[ResourceRule] = [
    ResourceRule(
        "rds-sse-cmk",
        "RDS storage is encrypted with a customer managed key.",
        "aws:rds/instance:Instance",
        rds_encrypted_with_cmk,
    ),
    ResourceRule(
        "rds-pitr-7d",
        "RDS keeps automated backups for at least 7 days.",
        "aws:rds/instance:Instance",
        rds_keeps_pitr_window,
    ),
    ResourceRule(
        "rds-protected",
        "RDS instances have deletion protection and a final snapshot, and are not public.",
        "aws:rds/instance:Instance",
        rds_protected,
    ),
    ResourceRule(
        "rds-force-ssl",
        "PostgreSQL parameter groups set rds.force_ssl=1.",
        "aws:rds/parameterGroup:ParameterGroup",
        rds_postgres_forces_tls,
    ),
    ResourceRule(
        "rds-backup-replication-cmk",
        "Automated backups replicated to another region are encrypted with a customer key.",
        "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication",
        rds_backup_copy_encrypted,
    ),
]
