"""The database lease, operator side: read it, take it for the DR region, read guards' acks.

The lease object and the host agent that renews it are described in components/failover_control.py
and components/agents/fence_guard.py. Taking the lease is one S3 conditional write: ``If-Match``
on the ETag just read (``If-None-Match: *`` when there is none yet), raising the epoch. If anyone
else changed the lease in between (a renewal, another operator), S3 answers 412 and nothing is
overwritten; the caller reads again and decides again.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from scripts.common import DrctlError, ExitCode
from scripts.dataops.s3_conditional import is_missing, is_precondition_failure, put_json


@dataclass(frozen=True)
class Lease:
    doc: dict[str, Any]
    etag: str

    @property
    def epoch(self) -> int:
        return int(self.doc.get("epoch") or 0)

    @property
    def holder(self) -> str | None:
        return self.doc.get("holder")

    @property
    def guarded(self) -> bool:
        """Has a fence guard ever renewed this lease (is anyone on the hosts enforcing it)?"""
        previous = self.doc.get("previous") or {}
        return bool(self.doc.get("renewed_at") or previous.get("renewed_at"))

    def summary(self) -> dict[str, Any]:
        keep = ("epoch", "holder", "ttl_s", "renewed_at", "renewed_by", "granted_at", "run_id")
        return {k: self.doc.get(k) for k in keep}


class LeaseStore:
    """One stack's lease in the control bucket. ``s3``: a client for the bucket's region."""

    def __init__(self, s3: Any, bucket: str, key: str, ack_prefix: str):
        self.s3, self.bucket, self.key, self.ack_prefix = s3, bucket, key, ack_prefix
        self.where = f"s3://{bucket}/{key}"

    def read(self) -> Lease | None:
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as err:
            if is_missing(err):
                return None
            raise
        return Lease(json.loads(got["Body"].read()), got["ETag"])

    def take(
        self, holder: str, run_id: str, granted_by: str, ttl_s: float
    ) -> tuple[Lease, dict[str, Any]]:
        """The lease for ``holder`` under a new epoch; idempotent for the same run.

        Returns (the lease now, what it was before: the previous holder's summary or {}).
        """
        current = self.read()
        if current is not None and current.holder == holder and current.doc.get("run_id") == run_id:
            return current, current.doc.get("previous") or {}
        previous = current.summary() if current is not None else {}
        doc = {
            "version": 1,
            "epoch": (current.epoch if current else 0) + 1,
            "holder": holder,
            "ttl_s": float((current.doc.get("ttl_s") if current else None) or ttl_s),
            "granted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "granted_by": granted_by,
            "run_id": run_id,
            "previous": previous,
            "renewed_at": None,
        }
        try:
            etag = put_json(self.s3, self.bucket, self.key, doc, current.etag if current else None)
        except Exception as err:
            if is_precondition_failure(err):
                now = self.read()
                held = f"epoch {now.epoch} held by {now.holder}" if now else "gone"
                raise DrctlError(
                    f"the lease {self.where} changed while this run was taking it (now {held}); "
                    "nothing was overwritten. Rerun to look again",
                    ExitCode.REFUSED,
                ) from None
            raise
        return Lease(doc, etag), previous

    def acknowledgements(self, epoch: int) -> list[dict[str, Any]]:
        """Guards' acknowledgements that they stopped their server under ``epoch``."""
        prefix = f"{self.ack_prefix}epoch-{epoch}/"
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        acks = []
        for obj in listing.get("Contents") or []:
            body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
            try:
                acks.append(json.loads(body))
            except json.JSONDecodeError:
                continue
        return acks
