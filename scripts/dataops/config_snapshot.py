"""`drctl config export` and `import`: one JSON snapshot of a region's app config into the
snapshot bucket, and its parameters back into a region. Secret handling is described once, in
scripts/dataops/config_sync.py; nothing here prints a value.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.objectives import PROJECT, class_tags
from components.secrets_backup import (
    APP_DATASET,
    ROLE_FLAG,
    SNAPSHOT_DATASET,
)
from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops.config_read import (
    ConfigTarget,
    SessionFactory,
    check_region,
    error_code,
    read_parameters,
    read_secrets,
)

SNAPSHOT_FORMAT = "platform-dr/config-snapshot"


SNAPSHOT_FORMAT_VERSION = 1


SNAPSHOT_ROOT = "config-snapshots"


ENCRYPTION_CONTEXT_KEY = f"{PROJECT}:parameter"


KMS_PLAINTEXT_MAX = 4096  # KMS Encrypt's limit; SSM standard-tier values are at most 4 KB


def find_snapshot_bucket(s3, region: str) -> str:
    """The config snapshot bucket in ``region``, found by the tags SecretsBackup puts on it."""
    matches = []
    for b in s3.list_buckets().get("Buckets", []):
        name = b["Name"]
        try:
            location = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
            if location != region:
                continue
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
        except ClientError:
            continue  # untagged or not ours to read
        if tags.get("dr-dataset") == SNAPSHOT_DATASET and tags.get("managed-by") == PROJECT:
            matches.append(name)
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(sorted(matches))
        raise DrctlError(
            f"expected one config snapshot bucket (tag dr-dataset={SNAPSHOT_DATASET}) in {region}, "
            f"found {found}; pass --bucket",
            ExitCode.PRECONDITION_FAILED,
        )
    return matches[0]


def bucket_kms_key(s3, bucket: str) -> str:
    """The bucket's default SSE-KMS customer key; snapshots are written under nothing weaker."""
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
    except ClientError:
        rules = []
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse") and default.get(
            "KMSMasterKeyID"
        ):
            return default["KMSMasterKeyID"]
    raise DrctlError(
        f"bucket {bucket} has no default SSE-KMS customer key; snapshots are written only "
        "under one",
        ExitCode.PRECONDITION_FAILED,
    )


def _encrypt(kms, name: str, value: str, key_id: str) -> str:
    data = value.encode()
    if len(data) > KMS_PLAINTEXT_MAX:
        raise DrctlError(
            f"SecureString {name} is {len(data)} bytes; KMS encrypts at most {KMS_PLAINTEXT_MAX}",
            ExitCode.STEP_FAILED,
        )
    blob = kms.encrypt(
        KeyId=key_id, Plaintext=data, EncryptionContext={ENCRYPTION_CONTEXT_KEY: name}
    )["CiphertextBlob"]
    return base64.b64encode(blob).decode()


def build_snapshot(
    sessions: SessionFactory, target: ConfigTarget, region: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The snapshot document of one region. Contains no plain SecureString or secret value."""
    session = sessions(region)
    ssm, kms, sm = session.client("ssm"), session.client("kms"), session.client("secretsmanager")
    params = read_parameters(ssm, target.prefix)
    records = []
    flags: dict[str, str] = {}
    for name in sorted(params):
        p = params[name]
        record = {k: p[k] for k in ("type", "version", "data_type", "last_modified")}
        record["name"] = name
        if p["type"] == "SecureString":
            key_id = p["key_id"] or "alias/aws/ssm"
            if key_id.endswith("alias/aws/ssm"):
                # AWS-managed keys only work through their own service: no kms:Encrypt here.
                raise DrctlError(
                    f"SecureString {name} is under the AWS-managed key aws/ssm, which only SSM can "
                    "use; put it under the customer key (as SecretsBackup declares it) to export",
                    ExitCode.PRECONDITION_FAILED,
                )
            record["key_id"] = key_id
            record["ciphertext"] = _encrypt(kms, name, p["value"], key_id)
        else:
            record["value"] = p["value"]
            if name.startswith(f"{target.prefix}/{ROLE_FLAG}/"):
                flags[name.rsplit("/", 1)[1]] = p["value"]
        p["value"] = None  # drop the plaintext as soon as it is no longer needed
        records.append(record)
    taken = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return {
        "format": SNAPSHOT_FORMAT,
        "format_version": SNAPSHOT_FORMAT_VERSION,
        "stack": target.stack,
        "namespace": target.namespace,
        "prefix": target.prefix,
        "region": region,
        "taken_at": taken.isoformat(),
        "encryption": {
            "securestring": "kms:Encrypt under the parameter's key, context "
            f"{{{ENCRYPTION_CONTEXT_KEY!r}: <name>}}",
        },
        "parameters": records,
        "feature_flags": flags,
        "secrets": sorted(read_secrets(sm, target.namespace).values(), key=lambda s: s["name"]),
    }


def export_snapshot(
    sessions: SessionFactory,
    target: ConfigTarget,
    region: str,
    bucket: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write a snapshot of ``region`` into the config snapshot bucket; returns where it went."""
    check_region("--region", region)
    s3 = sessions(region).client("s3")
    bucket = bucket or find_snapshot_bucket(s3, region)
    sse_key = bucket_kms_key(s3, bucket)
    progress.print(f"reading {target.prefix} and {target.namespace}/ secrets in {region}")
    document = build_snapshot(sessions, target, region, now)
    stamp = document["taken_at"].replace(":", "").replace("+0000", "Z")
    key = f"{SNAPSHOT_ROOT}/{target.namespace}/{region}/{stamp}.json"
    body = json.dumps(document, indent=2, sort_keys=True).encode()
    put = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=sse_key,
        Tagging=f"dr-dataset={SNAPSHOT_DATASET}&managed-by={PROJECT}",
    )
    secure = sum(1 for p in document["parameters"] if p["type"] == "SecureString")
    return {
        "snapshot": f"s3://{bucket}/{key}",
        "bucket": bucket,
        "key": key,
        "version_id": put.get("VersionId"),
        "sse": put.get("ServerSideEncryption"),
        "sse_kms_key_id": put.get("SSEKMSKeyId", sse_key),
        "region": region,
        "stack": target.stack,
        "parameters": len(document["parameters"]),
        "secure_parameters": secure,
        "feature_flags": len(document["feature_flags"]),
        "secrets": len(document["secrets"]),
    }


def load_snapshot(sessions: SessionFactory, ref: str, region: str) -> dict[str, Any]:
    """A snapshot from ``s3://bucket/key[#versionId]`` or a local file path."""
    if ref.startswith("s3://"):
        location, _, version = ref[len("s3://") :].partition("#")
        bucket, _, key = location.partition("/")
        if not bucket or not key:
            raise DrctlError(
                f"SNAPSHOT {ref!r} is not valid: s3://<bucket>/<key>[#<versionId>] or a file",
                ExitCode.INVALID_CONFIG,
            )
        s3 = sessions(region).client("s3")
        bucket_region = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
        s3 = sessions(bucket_region or "us-east-1").client("s3")
        extra = {"VersionId": version} if version else {}
        try:
            body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except ClientError as err:
            raise DrctlError(
                f"cannot read {ref}: {error_code(err)}", ExitCode.PRECONDITION_FAILED
            ) from None
    else:
        path = Path(ref)
        if not path.is_file():
            raise DrctlError(
                f"SNAPSHOT {ref!r} is not valid: no such file, and not an s3:// URL",
                ExitCode.INVALID_CONFIG,
            )
        body = path.read_bytes()
    try:
        document = json.loads(body)
    except ValueError:
        raise DrctlError(f"SNAPSHOT {ref} is not JSON", ExitCode.INVALID_CONFIG) from None
    if document.get("format") != SNAPSHOT_FORMAT or document.get("format_version") != 1:
        raise DrctlError(
            f"SNAPSHOT {ref} is not a {SNAPSHOT_FORMAT} v{SNAPSHOT_FORMAT_VERSION} document",
            ExitCode.INVALID_CONFIG,
        )
    prefix = document["prefix"]
    for p in document["parameters"]:
        if not p["name"].startswith(prefix + "/"):
            raise DrctlError(
                f"SNAPSHOT {ref}: parameter {p['name']} is outside its prefix {prefix}",
                ExitCode.INVALID_CONFIG,
            )
    return document


def _mrk_in(key_id: str, region: str) -> str | None:
    """A multi-Region key's ARN in another region (replicas share the key id), else None."""
    parts = key_id.split(":")
    if len(parts) == 6 and parts[2] == "kms" and parts[5].startswith("key/mrk-"):
        parts[3] = region
        return ":".join(parts)
    return None


def _decrypt(kms, record: Mapping[str, Any], key_id: str | None) -> str:
    extra = {"KeyId": key_id} if key_id else {}
    plain = kms.decrypt(
        CiphertextBlob=base64.b64decode(record["ciphertext"]),
        EncryptionContext={ENCRYPTION_CONTEXT_KEY: record["name"]},
        **extra,
    )["Plaintext"]
    return plain.decode()


@dataclass
class ParameterStep:
    name: str
    type: str
    action: str  # create | update | unchanged
    reason: str
    snapshot_version: int
    target_version: int | None
    done: bool = False

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_import(
    sessions: SessionFactory,
    snapshot: Mapping[str, Any],
    region: str,
    decrypt_region: str | None = None,
) -> tuple[list[ParameterStep], dict[str, str], list[dict[str, Any]]]:
    """Steps per parameter, the desired values (in memory, for apply), and secret checks."""
    source = snapshot["region"]
    decrypt_region = decrypt_region or source
    kms = sessions(decrypt_region).client("kms")
    target = sessions(region)
    current = read_parameters(target.client("ssm"), snapshot["prefix"])
    steps: list[ParameterStep] = []
    desired: dict[str, str] = {}
    for record in snapshot["parameters"]:
        name, ptype = record["name"], record["type"]
        if ptype == "SecureString":
            key = None if decrypt_region == source else _mrk_in(record["key_id"], decrypt_region)
            if decrypt_region != source and key is None:
                raise DrctlError(
                    f"{name} was encrypted under {record['key_id']}, not a multi-Region key; "
                    f"it can only be decrypted in {source} (omit --decrypt-region)",
                    ExitCode.PRECONDITION_FAILED,
                )
            value = _decrypt(kms, record, key)
        else:
            value = record["value"]
        desired[name] = value
        have = current.get(name)
        if have is None:
            step = ParameterStep(
                name, ptype, "create", "missing in target", record["version"], None
            )
        elif have["type"] != ptype:
            step = ParameterStep(
                name,
                ptype,
                "update",
                f"type {have['type']} -> {ptype}",
                record["version"],
                have["version"],
            )
        elif have["value"] != value:
            step = ParameterStep(
                name, ptype, "update", "value differs", record["version"], have["version"]
            )
        else:
            step = ParameterStep(
                name, ptype, "unchanged", "same type and value", record["version"], have["version"]
            )
        steps.append(step)
        if have is not None:
            have["value"] = None
    for name in sorted(set(current) - {r["name"] for r in snapshot["parameters"]}):
        progress.print(f"note: {name} exists in {region} but not in the snapshot; left alone")
    sm = target.client("secretsmanager")
    in_target = read_secrets(sm, snapshot["namespace"])
    secret_checks = []
    for s in snapshot["secrets"]:
        present = s["name"] in in_target
        secret_checks.append(
            {
                "name": s["name"],
                "present_in_target": present,
                "current_version_matches": present
                and in_target[s["name"]]["current_version_id"] == s["current_version_id"],
                "action": "none"
                if present
                else "missing: promote or re-replicate (values are not in snapshots)",
            }
        )
    return steps, desired, secret_checks


def apply_import(
    sessions: SessionFactory,
    snapshot: Mapping[str, Any],
    region: str,
    steps: list[ParameterStep],
    desired: dict[str, str],
    kms_key: str | None = None,
) -> None:
    """Put every create/update step. Idempotent: a re-run plans the rest as unchanged."""
    ssm = sessions(region).client("ssm")
    records = {r["name"]: r for r in snapshot["parameters"]}
    current = {}
    if any(s.type == "SecureString" and s.action != "unchanged" for s in steps):
        described = ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[
                {"Key": "Path", "Option": "Recursive", "Values": [snapshot["prefix"]]}
            ]
        )
        current = {d["Name"]: d for page in described for d in page["Parameters"]}
    for step in steps:
        if step.action == "unchanged":
            continue
        record = records[step.name]
        args: dict[str, Any] = {
            "Name": step.name,
            "Type": step.type,
            "Value": desired[step.name],
            "DataType": record.get("data_type", "text"),
        }
        if step.type == "SecureString":
            key = (
                kms_key
                or (current.get(step.name) or {}).get("KeyId")
                or _mrk_in(record["key_id"], region)
            )
            if not key:
                raise DrctlError(
                    f"no customer key for {step.name} in {region}: pass --kms-key",
                    ExitCode.PRECONDITION_FAILED,
                )
            args["KeyId"] = key
        if step.action == "create":
            role = step.name[len(snapshot["prefix"]) + 1 :].split("/")[0]
            args["Tags"] = [
                {"Key": k, "Value": v}
                for k, v in class_tags("operational", APP_DATASET, {"config-role": role}).items()
            ]
        else:
            args["Overwrite"] = True
        try:
            ssm.put_parameter(**args)
        except (ClientError, BotoCoreError) as err:
            raise DrctlError(
                f"put {step.name} in {region} failed ({error_code(err)}); re-run to resume",
                ExitCode.STEP_FAILED,
            ) from None
        desired[step.name] = ""
        step.done = True
        progress.print(f"{step.action}d {step.name} in {region}")
