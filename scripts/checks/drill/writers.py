"""The continuous writers: the application's writes that run across every failure.

Each writer remembers every write it sent, with the wall-clock time it was sent and the time its
acknowledgement arrived. A write whose outcome is unknown (the connection died under it) is kept
with ``acked_at = None``; a write the server refused with an error (relation missing, read-only
standby) is known not to have happened and is forgotten. Ids are never reused, so every row and
key names one write.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from scripts.checks.drill.model import Write

WRITE_INTERVAL_S = 0.01  # one ledger row every 10 ms: ~100 commits/s, light on 2 cores
UPLOAD_INTERVAL_S = 0.05
INSERT_SQL = "insert into ledger (id, payload) values (%s, %s) returning pg_current_xact_id()::text"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Loop(threading.Thread):
    def __init__(self, name: str, interval_s: float):
        super().__init__(name=name, daemon=True)
        self.interval_s = interval_s
        self.writes: list[Write] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def acked(self) -> list[Write]:
        return [w for w in self.writes if w.acked_at is not None]

    def first_ack_after(self, after: float, where: str | None = None) -> float | None:
        """When the first write *sent* after ``after`` (to ``where``, if given) was acknowledged:
        a write in flight at ``after`` does not prove the service is back."""
        return next(
            (
                w.acked_at
                for w in self.writes
                if w.acked_at is not None
                and w.sent_at > after
                and (where is None or w.position.get("where") == where)
            ),
            None,
        )

    def _pace(self, next_at: float) -> float:
        next_at += self.interval_s
        self._halt.wait(max(0.0, next_at - time.time()))
        return next_at


class DbWriter(_Loop):
    """Inserts one ``ledger`` row per interval through ``connect`` (-> connection, endpoint).

    With ``reconnect`` it keeps trying after a failure (the outage and human-error scenarios
    measure when writes are accepted again); otherwise it stops at the first failure.
    """

    def __init__(
        self,
        connect: Callable[[], tuple[Any, str]],
        first_id: int,
        *,
        reconnect: bool,
        interval_s: float = WRITE_INTERVAL_S,
    ):
        super().__init__("drill-db-writer", interval_s)
        self.connect = connect
        self.next_id = first_id
        self.reconnect = reconnect
        self.refused = 0

    def run(self) -> None:
        import psycopg

        conn, where = None, ""
        next_at = time.time()
        while not self._halt.is_set():
            if conn is None:
                try:
                    conn, where = self.connect()
                except Exception:  # noqa: BLE001 - nothing was sent: not a write
                    if not self.reconnect:
                        return
                    next_at = self._pace(next_at)
                    continue
            row_id, payload = self.next_id, secrets.token_hex(12)
            self.next_id += 1
            sent = time.time()
            try:
                xid = conn.execute(INSERT_SQL, (row_id, payload)).fetchone()[0]
            except psycopg.Error as exc:
                refused = exc.sqlstate is not None and not conn.broken
                if refused:
                    self.refused += 1  # the server said no: the write did not happen
                else:
                    self.writes.append(Write(str(row_id), payload, sent, None, {"where": where}))
                if conn.broken or not refused:
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                if not self.reconnect:
                    return
            else:
                position = {"xid": int(xid) % 2**32, "where": where}
                self.writes.append(Write(str(row_id), payload, sent, time.time(), position))
            next_at = self._pace(next_at)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class ObjectUploader(_Loop):
    """PUTs a new creator track per interval (new keys only, under ``audio/``)."""

    def __init__(self, s3: Any, bucket: str, size: int, interval_s: float = UPLOAD_INTERVAL_S):
        super().__init__("drill-uploader", interval_s)
        self.s3, self.bucket, self.size = s3, bucket, size

    def run(self) -> None:
        n = 0
        next_at = time.time()
        while not self._halt.is_set():
            key = f"audio/creator-{n % 7:02d}/live-{n:04d}.wav"
            n += 1
            body = secrets.token_bytes(self.size)
            sent = time.time()
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="audio/wav")
            except Exception:  # noqa: BLE001 - the answer never came: outcome unknown
                self.writes.append(Write(key, sha256(body), sent, None))
            else:
                self.writes.append(Write(key, sha256(body), sent, time.time()))
            next_at = self._pace(next_at)
