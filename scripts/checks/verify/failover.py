"""Verify checks of what a database failover depends on (self-managed backend).

- ``cipher-passphrase-dr``: the pgBackRest cipher passphrase has a copy in the DR region with a
  current value (a Secrets Manager replica InSync, or the standalone secret a failover promoted).
  Without it repo2 cannot be decrypted once the primary region and its host are gone.
- ``fence-lease``: the database lease in the DR-region control bucket exists, names the region
  the platform serves from (the SSM ``runtime/active-region`` parameter in the DR region), and was
  renewed by that region's fence guard within its TTL, timed on S3's own clock (Last-Modified
  against the Date header). A stale lease means no guard is running, so nothing would stop the
  old primary in a region loss; verify says so in seconds, not at 3 a.m.

Two groups (``CIPHER_PASSPHRASE``, ``FENCE_LEASE``) in verify's ``CHECKS``; both apply to the
self-managed backend only, and a missing stack output fails them naming it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json

from components.failover_control import lease_key
from components.secrets_backup import namespace_of, parameter_name
from scripts.checks.verify.model import Check, CheckGroup, Context, need, passed

DATABASE_CLASS = "critical"


def _check(name: str, target: str, measured, objective, ok: bool, detail: str) -> Check:
    return Check(name, DATABASE_CLASS, target, measured, objective, passed(ok), detail)


def _self_managed(ctx: Context) -> bool:
    return (ctx.outputs.get("database") or {}).get("backend") == "self-managed"


def cipher_secret_checks(ctx: Context) -> list[Check]:
    objectives, clients = ctx.objectives, ctx.clients
    arns = need(ctx.outputs, "database", "cipherSecretArns")
    primary, dr = objectives.regions.primary, objectives.regions.dr
    name = "cipher-passphrase-dr"
    if not arns.get(dr):
        return [_check(name, "-", None, "a DR-region copy", False, "the stack exports no DR copy")]
    sm_dr = clients("secretsmanager", dr)
    detail = sm_dr.describe_secret(SecretId=arns[dr])
    current = any("AWSCURRENT" in s for s in (detail.get("VersionIdsToStages") or {}).values())
    if not current:
        return [
            _check(name, arns[dr], "no value", "AWSCURRENT", False, f"no current value in {dr}")
        ]
    if detail.get("PrimaryRegion") in (None, dr):
        return [
            _check(
                name,
                arns[dr],
                "standalone",
                "InSync or standalone",
                True,
                f"standalone in {dr} (promoted by a failover), current value present",
            )
        ]
    replica = next(
        (
            r
            for r in clients("secretsmanager", primary)
            .describe_secret(SecretId=arns[primary])
            .get("ReplicationStatus", [])
            if r.get("Region") == dr
        ),
        None,
    )
    status = (replica or {}).get("Status")
    return [
        _check(
            name,
            arns[dr],
            status,
            "InSync",
            status == "InSync",
            f"replica in {dr}: {status}"
            + (f" ({replica.get('StatusMessage')})" if replica and status != "InSync" else ""),
        )
    ]


def _s3_age(s3, bucket: str, key: str) -> float:
    """Seconds since the lease was written: S3's Date header against its Last-Modified (no
    clock of ours involved); this machine's clock only if the response has no Date."""
    head = s3.head_object(Bucket=bucket, Key=key)
    server_now = head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    now = email.utils.parsedate_to_datetime(server_now) if server_now else dt.datetime.now(dt.UTC)
    return (now - head["LastModified"]).total_seconds()


def fence_lease_checks(ctx: Context) -> list[Check]:
    objectives, clients = ctx.objectives, ctx.clients
    control = {"bucket": need(ctx.outputs, "failoverControl", "bucket")}
    name = "fence-lease"
    dr = objectives.regions.dr
    key = lease_key(objectives.stack)
    target = f"s3://{control['bucket']}/{key}"
    s3 = clients("s3", dr)
    try:
        lease = json.loads(s3.get_object(Bucket=control["bucket"], Key=key)["Body"].read())
    except Exception as err:  # NoSuchKey: no guard ever ran
        code = getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)
        return [
            _check(
                name,
                target,
                None,
                "a renewed lease",
                False,
                f"no lease ({code}): no fence guard has run on the database hosts",
            )
        ]
    ssm = clients("ssm", dr)
    try:
        active = ssm.get_parameter(
            Name=parameter_name(namespace_of(objectives), "runtime/active-region")
        )["Parameter"]["Value"]
    except Exception:
        active = objectives.regions.primary
    ttl = float(lease.get("ttl_s") or 0)
    age = _s3_age(s3, control["bucket"], key)
    problems = []
    if lease.get("holder") != active:
        problems.append(f"held by {lease.get('holder')} but the platform serves from {active}")
    if not lease.get("renewed_at"):
        problems.append("never renewed by a guard")
    elif age is None or age > ttl:
        problems.append(
            f"last renewed {age:.0f}s ago, TTL {ttl:.0f}s: the guard is not running"
            if age is not None
            else "renewal age unknown"
        )
    return [
        _check(
            name,
            target,
            None if age is None else round(age, 1),
            ttl,
            not problems,
            f"epoch {lease.get('epoch')} held by {lease.get('holder')}, renewed by "
            f"{lease.get('renewed_by')}" + ("; " + "; ".join(problems) if problems else ""),
        )
    ]


CIPHER_PASSPHRASE = CheckGroup(
    "cipher-passphrase-dr",
    cipher_secret_checks,
    needs=("database.cipherSecretArns",),
    applies=_self_managed,
    data_class=DATABASE_CLASS,
)
FENCE_LEASE = CheckGroup(
    "fence-lease",
    fence_lease_checks,
    needs=("failoverControl.bucket",),
    applies=_self_managed,
    data_class=DATABASE_CLASS,
)
