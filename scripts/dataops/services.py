"""What ``drctl recover`` does to one service: verify (or restore) the data it depends on in the
target region, point its DNS record at the target region, and check its health endpoint.

Every check returns a verdict that can fail, with a one-line reason an operator can act on:

- database: connects with the DSN given, and is verified only when it is a primary that takes
  writes (``pg_is_in_recovery()`` false, ``default_transaction_read_only`` off). A standby is
  not verified: ``drctl failover`` promotes it.
- dataset:<name>: the stack's copy in the target region exists and is versioned (the bucket a
  rebuild adopted, or the replica a failover serves from). A missing copy cannot be restored
  here; ``drctl restore-objects`` and the rebuild do that.
- secret:<name>: the secret exists in the target region. When it does not but its primary
  region still answers, it is **restored** by replicating it into the target region (the value
  never passes through drctl).
- config: every SSM parameter the stack declares exists in the target region.

Cloud access goes through the injected ``Aws`` (one client per service and region), health
checks through an injected HTTP client, so tests point the same code at moto and local servers.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from components.services import Dependency, Service
from scripts.dataops.notify import scrub


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str
    action: str | None = None  # what was done to make it ok ("replicated into us-west-2")

    def to_record(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "action": self.action}


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return scrub(f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__)


class DependencyChecker:
    """Verifies (or restores) dependencies in ``region`` from the stack's outputs."""

    def __init__(
        self,
        aws: Any,
        region: str,
        outputs: Mapping[str, Any],
        *,
        database_dsn: str | None = None,
        connect_timeout_s: int = 5,
    ):
        self.aws, self.region, self.outputs = aws, region, outputs
        self.database_dsn = database_dsn
        self.connect_timeout_s = connect_timeout_s

    def check(self, dependency: Dependency) -> Verdict:
        try:
            return getattr(self, f"_{dependency.kind}")(dependency.name)
        except Exception as exc:  # noqa: BLE001 - any failure is a verdict, never a crash
            return Verdict(False, _reason(exc))

    def _database(self, _: str) -> Verdict:
        if not self.database_dsn:
            return Verdict(False, "no database DSN given (--database-dsn / DRCTL_DATABASE_DSN)")
        import psycopg

        with psycopg.connect(
            self.database_dsn, connect_timeout=self.connect_timeout_s, autocommit=True
        ) as conn:
            in_recovery, read_only = conn.execute(
                "select pg_is_in_recovery(), current_setting('default_transaction_read_only')"
            ).fetchone()
        if in_recovery:
            return Verdict(False, "the database is a standby; promote it (drctl failover)")
        if read_only == "on":
            return Verdict(False, "fenced read-only (default_transaction_read_only is on)")
        return Verdict(True, "primary, takes writes")

    def _dataset(self, name: str) -> Verdict:
        bucket = ((self.outputs.get("buckets") or {}).get(name) or {}).get(self.region)
        if not bucket:
            return Verdict(False, f"the stack keeps no copy of {name} in {self.region}")
        s3 = self.aws.client("s3", self.region)
        s3.head_bucket(Bucket=bucket)
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != "Enabled":
            return Verdict(False, f"{bucket}: versioning is {status or 'off'}")
        return Verdict(True, f"{bucket} answers, versioned")

    def _secret(self, name: str) -> Verdict:
        arns = self.outputs.get("secretArns") or {}
        full = next((k for k in arns if k.rsplit("/", 1)[-1] == name), None)
        if full is None:
            return Verdict(False, f"the stack declares no secret named {name}")
        here = self.aws.client("secretsmanager", self.region)
        try:
            detail = here.describe_secret(SecretId=full)
            if detail.get("DeletedDate"):
                return Verdict(False, f"{full} is scheduled for deletion in {self.region}")
            return Verdict(True, f"{full} present in {self.region}")
        except here.exceptions.ResourceNotFoundException:
            pass
        # Restore: replicate from the region that still holds it (its primary).
        for region in arns[full]:
            if region == self.region:
                continue
            source = self.aws.client("secretsmanager", region)
            try:
                primary = source.describe_secret(SecretId=full)
            except Exception:  # noqa: BLE001 - that region is down too: try the next
                continue
            replica = {"Region": self.region}
            key = (self.outputs.get("secretsKeyArns") or {}).get(self.region)
            if key:
                replica["KmsKeyId"] = key
            source.replicate_secret_to_regions(SecretId=primary["ARN"], AddReplicaRegions=[replica])
            here.describe_secret(SecretId=full)
            return Verdict(True, f"{full} present in {self.region}", f"replicated from {region}")
        return Verdict(False, f"{full} is in no region that answers")

    def _config(self, _: str) -> Verdict:
        expected = set(self.outputs.get("configParameterNames") or [])
        prefix = self.outputs.get("configParameterPrefix")
        if not prefix:
            return Verdict(False, "the stack exports no configParameterPrefix")
        ssm = self.aws.client("ssm", self.region)
        found: set[str] = set()
        for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path=prefix, Recursive=True, WithDecryption=False
        ):
            found |= {p["Name"] for p in page.get("Parameters", [])}
        missing = sorted(expected - found)
        if missing:
            return Verdict(
                False,
                f"{len(missing)} parameter(s) missing in {self.region}: {', '.join(missing[:5])}"
                " (drctl config import)",
            )
        return Verdict(True, f"{len(found)} parameters under {prefix}")


def switch_endpoint(aws: Any, zone_id: str, zone: str, service: Service, region: str) -> dict:
    """Point ``<record>.<zone>`` at the service's endpoint in ``region`` (idempotent UPSERT)."""
    r53 = aws.client("route53", "us-east-1")
    name = f"{service.record}.{zone}"
    target = service.endpoint(region, zone)
    before = None
    sets = r53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType="CNAME", MaxItems="1"
    )["ResourceRecordSets"]
    if sets and sets[0]["Name"].rstrip(".") == name and sets[0]["Type"] == "CNAME":
        before = sets[0]["ResourceRecords"][0]["Value"]
    if before != target:
        r53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Comment": f"drctl recover: {service.name} served from {region}",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": "CNAME",
                            "TTL": 60,
                            "ResourceRecords": [{"Value": target}],
                        },
                    }
                ],
            },
        )
    return {"record": name, "from": before, "to": target, "changed": before != target}


class HttpClient(Protocol):
    def get(self, url: str, timeout: float) -> int: ...


class UrllibClient:
    """GET with the standard library; returns the HTTP status (errors raise)."""

    def get(self, url: str, timeout: float) -> int:
        request = urllib.request.Request(url, headers={"User-Agent": "drctl-recover"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                response.read(4096)
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


def check_health(http: HttpClient, url: str, timeout: float) -> Verdict:
    """Healthy means a 2xx answer within ``timeout``."""
    try:
        status = http.get(url, timeout)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, DNS: all unhealthy
        return Verdict(False, _reason(exc))
    if 200 <= status < 300:
        return Verdict(True, f"HTTP {status}")
    return Verdict(False, f"HTTP {status}")
