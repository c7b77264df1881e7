"""The app config of a stack as AWS holds it: where it lives (prefix, namespace, regions) and
what one region has, read without ever keeping a secret value. The base of `drctl config`
(scripts/dataops/config_sync.py: the commands and diff; config_snapshot.py: export and import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from components.objectives import AWS_REGIONS, PROJECT, parse_objectives
from components.secrets_backup import (
    config_regions,
    namespace_of,
    parameter_prefix,
)
from scripts.common import DrctlError, ExitCode
from scripts.local.evaluate import read_stack_config

SessionFactory = Callable[[str], Any]


def default_sessions(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


@dataclass(frozen=True)
class ConfigTarget:
    stack: str
    namespace: str
    prefix: str
    primary: str
    dr: str


def target_of(stack: str, root: Path | None = None) -> ConfigTarget:
    """Names and regions of a stack's app config, from its stack file (no AWS call)."""
    raw = read_stack_config(stack, root)
    # Only the project's own keys describe objectives; secret values and provider keys do not.
    own = {k: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
    objectives = parse_objectives(own, stack)
    namespace = namespace_of(objectives)
    primary, dr = config_regions(objectives)
    return ConfigTarget(stack, namespace, parameter_prefix(namespace), primary, dr)


def check_region(option: str, region: str) -> None:
    if region not in AWS_REGIONS:
        raise DrctlError(
            f"{option} {region!r} is not valid: an AWS region name, one of "
            f"{', '.join(AWS_REGIONS)}",
            ExitCode.INVALID_CONFIG,
        )


def read_parameters(ssm, prefix: str) -> dict[str, dict[str, Any]]:
    """name -> {type, version, value, key_id, last_modified, data_type}. Values in memory only."""
    params: dict[str, dict[str, Any]] = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=prefix, Recursive=True, WithDecryption=True
    ):
        for p in page["Parameters"]:
            params[p["Name"]] = {
                "type": p["Type"],
                "version": p["Version"],
                "value": p["Value"],
                "data_type": p.get("DataType", "text"),
                "last_modified": iso_time(p.get("LastModifiedDate")),
                "key_id": None,
            }
    if any(p["type"] == "SecureString" for p in params.values()):
        for page in ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [prefix]}]
        ):
            for d in page["Parameters"]:
                if d["Name"] in params:
                    params[d["Name"]]["key_id"] = d.get("KeyId")
    return params


def read_secrets(sm, namespace: str) -> dict[str, dict[str, Any]]:
    """name -> metadata of every secret under ``<namespace>/``. Never reads a value."""
    found: dict[str, dict[str, Any]] = {}
    for page in sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [f"{namespace}/"]}]
    ):
        for s in page["SecretList"]:
            if not s["Name"].startswith(f"{namespace}/"):
                continue
            d = sm.describe_secret(SecretId=s["ARN"])
            stages = d.get("VersionIdsToStages") or s.get("SecretVersionsToStages") or {}
            current = [v for v, st in stages.items() if "AWSCURRENT" in st]
            found[d["Name"]] = {
                "name": d["Name"],
                "arn": d["ARN"],
                "kms_key_id": d.get("KmsKeyId"),
                "current_version_id": current[0] if current else None,
                "version_ids": sorted(stages),
                "last_changed": iso_time(d.get("LastChangedDate")),
                "last_rotated": iso_time(d.get("LastRotatedDate")),
                "rotation_enabled": bool(d.get("RotationEnabled")),
                "primary_region": d.get("PrimaryRegion"),
                "replication": [
                    {
                        "region": r["Region"],
                        "status": r.get("Status"),
                        "kms_key_id": r.get("KmsKeyId"),
                    }
                    for r in d.get("ReplicationStatus", [])
                ],
            }
    return found


def iso_time(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def error_code(err: Exception) -> str:
    if isinstance(err, ClientError):
        return err.response.get("Error", {}).get("Code", "ClientError")
    return type(err).__name__
