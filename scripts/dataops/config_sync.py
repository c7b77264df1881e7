"""`drctl config export | import | diff`: back up, restore and compare the app config.

What the SecretsBackup component declares, read back from AWS:

- **export** reads the SSM parameters under the stack's prefix (``/platform-dr/<stack>``), the
  feature flags among them, and the metadata of the stack's Secrets Manager secrets, and writes
  one JSON snapshot into the config snapshot bucket (S3 versioning and object lock keep every
  snapshot; the object is put with SSE-KMS under the bucket's customer key).
- **import** restores a snapshot's parameters into a region; a dry run unless ``--execute``.
- **diff** compares the primary and the DR region by name, version and a hash of the value and
  exits 1 on drift.

Secret handling, decided once here:

- Secrets Manager *values* never leave Secrets Manager: their replication is AWS's job and the
  snapshot records metadata only (ARN, KMS key, version ids, replication status, last change).
- SecureString parameter values are decrypted in memory and at once **re-encrypted with KMS**
  under the parameter's own customer key, with the encryption context
  ``{"platform-dr:parameter": <name>}``, so a ciphertext cannot be replayed onto another
  parameter. The snapshot stores that ciphertext. SSM's own ``WithDecryption=False`` output is
  not used: it is bound to the source parameter's ARN (useless in another region) and moto
  returns the plain value in it. The key is multi-Region, so the DR replica decrypts the
  ciphertext when the source region is gone (``--decrypt-region``). The snapshot object itself is
  then SSE-KMS encrypted as a whole.
- **diff** shows ``sha256:<hex>`` of String values and ``hmac-sha256:<hex>`` of SecureString
  values, keyed with a random key that lives only for the run: equal values compare equal within
  a run, but a low-entropy secret cannot be looked up in a dictionary of precomputed hashes.
- Nothing ever prints a value; the tests capture stdout, stderr and the snapshot to prove it.

AWS access is injected: every function takes ``sessions``, a factory from region name to a boto3
Session, so the tests run the same code on moto.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets as pysecrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from components.objectives import AWS_REGIONS, PROJECT, ConfigError, class_tags, parse_objectives
from components.secrets_backup import (
    APP_DATASET,
    ROLE_FLAG,
    SNAPSHOT_DATASET,
    config_regions,
    namespace_of,
    parameter_prefix,
)
from scripts.common import DrctlError, ExitCode, confirm_execute, fail, out, print_json, progress
from scripts.local.evaluate import read_stack_config

SNAPSHOT_FORMAT = "platform-dr/config-snapshot"
SNAPSHOT_FORMAT_VERSION = 1
SNAPSHOT_ROOT = "config-snapshots"
ENCRYPTION_CONTEXT_KEY = f"{PROJECT}:parameter"
KMS_PLAINTEXT_MAX = 4096  # KMS Encrypt's limit; SSM standard-tier values are at most 4 KB

SessionFactory = Callable[[str], Any]


def default_sessions(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


# ---------------------------------------------------------------------------------------------
# What a stack's config lives under


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


def _check_region(option: str, region: str) -> None:
    if region not in AWS_REGIONS:
        raise DrctlError(
            f"{option} {region!r} is not valid: an AWS region name, one of "
            f"{', '.join(AWS_REGIONS)}",
            ExitCode.INVALID_CONFIG,
        )


# ---------------------------------------------------------------------------------------------
# Reading a region


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
                "last_modified": _iso(p.get("LastModifiedDate")),
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
                "last_changed": _iso(d.get("LastChangedDate")),
                "last_rotated": _iso(d.get("LastRotatedDate")),
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


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# ---------------------------------------------------------------------------------------------
# export


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
    _check_region("--region", region)
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


# ---------------------------------------------------------------------------------------------
# import


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
                f"cannot read {ref}: {_code(err)}", ExitCode.PRECONDITION_FAILED
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
                f"put {step.name} in {region} failed ({_code(err)}); re-run to resume",
                ExitCode.STEP_FAILED,
            ) from None
        desired[step.name] = ""
        step.done = True
        progress.print(f"{step.action}d {step.name} in {region}")


# ---------------------------------------------------------------------------------------------
# diff


class _Hasher:
    """sha256 for String values; HMAC-SHA256 under a per-run random key for SecureStrings."""

    def __init__(self):
        self._key = pysecrets.token_bytes(32)

    def __call__(self, ptype: str, value: str) -> str:
        if ptype == "SecureString":
            return "hmac-sha256:" + hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def diff_regions(sessions: SessionFactory, target: ConfigTarget) -> dict[str, Any]:
    """Compare the primary and DR region's parameters and secrets; never carries a value."""
    hasher = _Hasher()
    sides = {}
    for region in (target.primary, target.dr):
        session = sessions(region)
        params = read_parameters(session.client("ssm"), target.prefix)
        for p in params.values():
            p["hash"] = hasher(p["type"], p["value"])
            p["value"] = None
        sides[region] = (params, read_secrets(session.client("secretsmanager"), target.namespace))
    (pp, ps), (dp, ds) = sides[target.primary], sides[target.dr]
    rows = []
    for name in sorted(set(pp) | set(dp)):
        a, b = pp.get(name), dp.get(name)
        if a is None or b is None:
            status = f"missing-in-{target.primary if a is None else target.dr}"
        elif a["type"] != b["type"] or a["hash"] != b["hash"]:
            status = "differs"
        elif a["version"] != b["version"]:
            status = "version-skew"
        else:
            status = "same"
        rows.append(
            {
                "name": name,
                "status": status,
                "type": {
                    r: (p or {}).get("type") for r, p in ((target.primary, a), (target.dr, b))
                },
                "version": {
                    r: (p or {}).get("version") for r, p in ((target.primary, a), (target.dr, b))
                },
                "hash": {
                    r: (p or {}).get("hash") for r, p in ((target.primary, a), (target.dr, b))
                },
            }
        )
    secret_rows = []
    for name in sorted(set(ps) | set(ds)):
        a, b = ps.get(name), ds.get(name)
        replica = next(
            (r for r in (a or {}).get("replication", []) if r["region"] == target.dr), None
        )
        if a is None or b is None:
            status = f"missing-in-{target.primary if a is None else target.dr}"
        elif a["current_version_id"] != b["current_version_id"]:
            status = "differs"
        elif replica is None or replica["status"] != "InSync":
            status = "not-replicating"
        else:
            status = "same"
        secret_rows.append(
            {
                "name": name,
                "status": status,
                "current_version_id": {
                    target.primary: (a or {}).get("current_version_id"),
                    target.dr: (b or {}).get("current_version_id"),
                },
                "replication_status": replica["status"] if replica else None,
            }
        )
    drift = [r["name"] for r in rows + secret_rows if r["status"] not in ("same", "version-skew")]
    return {
        "stack": target.stack,
        "regions": [target.primary, target.dr],
        "prefix": target.prefix,
        "parameters": rows,
        "secrets": secret_rows,
        "drift": drift,
        "in_sync": not drift,
    }


def _code(err: Exception) -> str:
    if isinstance(err, ClientError):
        return err.response.get("Error", {}).get("Code", "ClientError")
    return type(err).__name__


# ---------------------------------------------------------------------------------------------
# CLI

# Tests replace this with a factory bound to moto; production uses the operator's credentials.
sessions: SessionFactory = default_sessions


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ConfigError as err:
        fail(str(err), ExitCode.INVALID_CONFIG)
    except FileNotFoundError as err:
        fail(str(err), ExitCode.INVALID_CONFIG)
    except DrctlError as err:
        fail(str(err), err.code)
    except NoCredentialsError:
        fail(
            "no AWS credentials: set AWS_PROFILE or the AWS_* variables, then run again",
            ExitCode.PRECONDITION_FAILED,
        )
    except (ClientError, BotoCoreError) as err:
        fail(f"AWS call failed: {_code(err)}", ExitCode.STEP_FAILED)


def _table(title: str, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    from scripts.tables import print_table  # identifiers folded or on plain lines, never cut

    print_table(title, header, rows)


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(
        help="Back up, restore and compare app config (SSM parameters, flags, secret metadata).",
        no_args_is_help=True,
    )
    app.add_typer(config_app, name="config")

    @config_app.command("export")
    def export_cmd(
        stack: str = typer.Option("prod", help="Stack whose config to snapshot."),
        region: str = typer.Option(None, help="Region to read (default: the stack's primary)."),
        bucket: str = typer.Option(
            None, help="Snapshot bucket (default: the tagged config-snapshots bucket in --region)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Write a versioned, SSE-KMS encrypted snapshot of the config into the snapshot bucket."""

        def act():
            target = target_of(stack)
            return export_snapshot(sessions, target, region or target.primary, bucket)

        result = _run(act)
        if as_json:
            print_json(result)
            return
        out.print(
            f"snapshot {result['snapshot']} (version {result['version_id']}, {result['sse']}): "
            f"{result['parameters']} parameters ({result['secure_parameters']} SecureString, "
            f"KMS-encrypted), {result['feature_flags']} feature flags, {result['secrets']} secrets "
            "(metadata only)"
        )

    @config_app.command("import")
    def import_cmd(
        snapshot: str = typer.Argument(
            ..., help="s3://bucket/key (optionally #versionId) or a local file."
        ),
        region: str = typer.Option(..., help="Region to restore into."),
        decrypt_region: str = typer.Option(
            None,
            help="Decrypt SecureStrings with the multi-Region key's replica here "
            "(default: the snapshot's region).",
        ),
        kms_key: str = typer.Option(
            None,
            help="Key for SecureStrings written in --region (default: the existing "
            "parameter's key, else the snapshot key's multi-Region replica there).",
        ),
        execute: bool = typer.Option(False, "--execute", help="Act; without it, a dry run."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask (required without a TTY)."),
        as_json: bool = typer.Option(False, "--json", help="Print the plan/result as JSON."),
    ) -> None:
        """Restore a snapshot's parameters into a region (dry run unless --execute)."""

        def plan():
            _check_region("--region", region)
            if decrypt_region:
                _check_region("--decrypt-region", decrypt_region)
            document = load_snapshot(sessions, snapshot, region)
            return document, *plan_import(sessions, document, region, decrypt_region)

        document, steps, desired, secret_checks = _run(plan)
        changes = [s for s in steps if s.action != "unchanged"]
        what = f"write {len(changes)} parameters into {region}"
        if changes and confirm_execute(execute, yes, what):
            _run(lambda: apply_import(sessions, document, region, steps, desired, kms_key))
        desired.clear()
        result = {
            "snapshot": snapshot,
            "source_region": document["region"],
            "region": region,
            "executed": any(s.done for s in steps),
            "parameters": [s.to_record() for s in steps],
            "secrets": secret_checks,
            "summary": {
                a: sum(1 for s in steps if s.action == a) for a in ("create", "update", "unchanged")
            },
        }
        if as_json:
            print_json(result)
            return
        _table(
            f"import into {region} ({'executed' if result['executed'] else 'dry run'})",
            ("parameter", "type", "action", "reason", "done"),
            ((s.name, s.type, s.action, s.reason, "yes" if s.done else "") for s in steps),
        )
        if secret_checks:
            _table(
                f"secrets in {region} (metadata only)",
                ("secret", "present", "action"),
                ((c["name"], c["present_in_target"], c["action"]) for c in secret_checks),
            )

    @config_app.command("diff")
    def diff_cmd(
        stack: str = typer.Option("prod", help="Stack whose primary and DR regions to compare."),
        as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    ) -> None:
        """Compare primary and DR by name, version and value hash; exit 1 on drift."""
        result = _run(lambda: diff_regions(sessions, target_of(stack)))
        if as_json:
            print_json(result)
        else:
            p, d = result["regions"]
            _table(
                f"parameters {result['prefix']}: {p} vs {d}",
                ("parameter", "status", f"version {p}", f"version {d}", f"hash {p}", f"hash {d}"),
                (
                    (
                        r["name"],
                        r["status"],
                        r["version"][p],
                        r["version"][d],
                        _short(r["hash"][p]),
                        _short(r["hash"][d]),
                    )
                    for r in result["parameters"]
                ),
            )
            _table(
                "secrets (metadata only)",
                ("secret", "status", "replication"),
                ((r["name"], r["status"], r["replication_status"]) for r in result["secrets"]),
            )
        if not result["in_sync"]:
            progress.print(f"drift in {len(result['drift'])} item(s): {', '.join(result['drift'])}")
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))


def _short(h: str | None) -> str:
    if not h:
        return "-"
    algo, _, digest = h.partition(":")
    return f"{algo}:{digest[:12]}"


__all__ = [
    "ConfigTarget",
    "apply_import",
    "build_snapshot",
    "diff_regions",
    "export_snapshot",
    "load_snapshot",
    "plan_import",
    "register",
    "target_of",
]
