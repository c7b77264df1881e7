"""Where a runbook's journal lives: a local file, or an S3 object in the DR region.

The engine (engine.py) reads and writes the journal through one small interface, so the same
runbook resumes from either:

- ``LocalJournal``: a JSON file plus an ``flock`` lock beside it. For tests, the local drill and a
  single operator on one machine. Another laptop cannot see it.
- ``S3Journal``: a JSON object and a lock object in the failover control bucket in the DR region
  (components/failover_control.py declares it), written with S3 conditional writes, so any operator
  on any machine resumes the same run and two operators can never both run it:

  * the lock is created with ``If-None-Match: *`` and then only replaced with ``If-Match: <ETag>``
    (renewed by a background thread while the run lasts, released by overwriting it); a lock
    whose holder stopped renewing it for ``lock_ttl_s`` can be taken over;
  * every journal save carries ``If-Match`` with the ETag of the version this run last read or
    wrote, so a run that lost its lock cannot overwrite a newer journal (S3 answers 412).

  S3 evaluates the precondition at write time and answers ``412 Precondition Failed`` when it does
  not hold, or ``409 ConditionalRequestConflict`` when two conditional writes race; conditional
  writes need SigV4 signing, which boto3 always uses (Amazon S3 User Guide, "How to prevent object
  overwrites with conditional writes"). The bucket policy requires the condition headers on these
  keys (components/failover_control.py), so a client that forgets them is refused by S3 itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from scripts.common import DrctlError, ExitCode
from scripts.dataops.s3_conditional import is_missing, is_precondition_failure, put_json

JOURNAL_VERSION = 2
DEFAULT_LOCK_TTL_S = 120.0


def operator_identity() -> str:
    """Who holds a lock, for the other operator's error message."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _check_version(doc: Mapping[str, Any], where: str) -> None:
    if doc.get("version") not in (1, JOURNAL_VERSION):
        raise DrctlError(
            f"journal {where} has version {doc.get('version')!r}; this drctl reads versions 1 "
            f"and {JOURNAL_VERSION}",
            ExitCode.PRECONDITION_FAILED,
        )


class JournalStore(Protocol):
    """What the engine needs of a journal. ``where`` is printed; it never holds a secret."""

    where: str

    def load(self) -> dict[str, Any] | None: ...

    def save(self, doc: Mapping[str, Any]) -> None: ...

    def archive(self) -> str: ...

    def locked(self) -> contextlib.AbstractContextManager[None]: ...


class LocalJournal:
    """The JSON journal of one runbook run in a local file, written atomically after every step."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.where = str(self.path)

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            doc = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise DrctlError(
                f"journal {self.path} is not valid JSON ({exc}); inspect it, then move it aside",
                ExitCode.PRECONDITION_FAILED,
            ) from None
        _check_version(doc, self.where)
        return doc

    def save(self, doc: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w") as fh:
            json.dump(doc, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def archive(self) -> str:
        """Move a finished journal aside so a new run can start; returns where it went."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
        os.replace(self.path, target)
        return str(target)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One run of a runbook at a time on this machine."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(self.path.suffix + ".lock")
        with lock_path.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DrctlError(
                    f"another run holds {lock_path}; wait for it to finish",
                    ExitCode.REFUSED,
                ) from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class S3Journal:
    """The journal and its lock as objects in the DR-region control bucket (module docstring).

    ``s3`` is a boto3 S3 client for the control bucket's region. ``lock_ttl_s``: a lock not
    renewed for that long may be taken over by another operator; it is renewed every third of it.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        *,
        lock_ttl_s: float = DEFAULT_LOCK_TTL_S,
        holder: str | None = None,
    ):
        self.s3, self.bucket, self.key = s3, bucket, key
        self.lock_key = key.rsplit(".", 1)[0] + ".lock"
        self.where = f"s3://{bucket}/{key}"
        self.lock_ttl_s = lock_ttl_s
        self.holder = holder or operator_identity()
        self._etag: str | None = None
        self._lost: str | None = None

    # -- the journal object ----------------------------------------------------------------

    def _get(self, key: str) -> tuple[dict[str, Any], str, dt.datetime] | None:
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=key)
        except Exception as err:
            if is_missing(err):
                return None
            raise
        body = got["Body"].read()
        try:
            doc = json.loads(body)
        except json.JSONDecodeError as exc:
            raise DrctlError(
                f"s3://{self.bucket}/{key} is not valid JSON ({exc}); inspect it",
                ExitCode.PRECONDITION_FAILED,
            ) from None
        return doc, got["ETag"], got["LastModified"]

    def load(self) -> dict[str, Any] | None:
        got = self._get(self.key)
        if got is None:
            self._etag = None
            return None
        doc, self._etag, _ = got
        _check_version(doc, self.where)
        return doc

    def _put(self, key: str, doc: Mapping[str, Any], etag: str | None) -> str:
        return put_json(self.s3, self.bucket, key, doc, etag)

    def save(self, doc: Mapping[str, Any]) -> None:
        if self._lost:
            raise DrctlError(
                f"this run lost the journal lock ({self._lost}); stop: another operator may be "
                f"running it. Journal: {self.where}",
                ExitCode.REFUSED,
            )
        try:
            self._etag = self._put(self.key, doc, self._etag)
        except Exception as err:
            if is_precondition_failure(err):
                raise DrctlError(
                    f"the journal {self.where} was changed by someone else since this run read "
                    "it; nothing was overwritten. Rerun to resume from the newer journal",
                    ExitCode.REFUSED,
                ) from None
            raise

    def archive(self) -> str:
        """Copy the finished journal aside (a new key, created conditionally), then delete it
        only if it is still the version this run read (conditional delete)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        stem, _, ext = self.key.rpartition(".")
        target = f"{stem}.{stamp}.{ext}"
        doc = self.load()
        if doc is None:
            raise DrctlError(f"no journal at {self.where} to archive", ExitCode.PRECONDITION_FAILED)
        self._put(target, doc, None)
        self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self._etag)
        self._etag = None
        return f"s3://{self.bucket}/{target}"

    # -- the lock ----------------------------------------------------------------------------

    def _lock_doc(self, released: bool = False) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "released": released,
            "ttl_s": self.lock_ttl_s,
            "renewed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def _acquire(self) -> str:
        current = self._get(self.lock_key)
        if current is None:
            etag = None
        else:
            lock, etag, modified = current
            age = (dt.datetime.now(dt.UTC) - modified).total_seconds()
            ttl = float(lock.get("ttl_s") or self.lock_ttl_s)
            if not lock.get("released") and lock.get("holder") != self.holder and age < ttl:
                raise DrctlError(
                    f"another run holds the journal lock s3://{self.bucket}/{self.lock_key}: "
                    f"{lock.get('holder')}, renewed {age:.0f}s ago (taken over only after "
                    f"{ttl:.0f}s without renewal); wait for it, or ask that operator",
                    ExitCode.REFUSED,
                )
        try:
            return self._put(self.lock_key, self._lock_doc(), etag)
        except Exception as err:
            if is_precondition_failure(err):
                raise DrctlError(
                    f"another operator took the journal lock s3://{self.bucket}/{self.lock_key} "
                    "at the same moment; rerun to see who holds it",
                    ExitCode.REFUSED,
                ) from None
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        etag = self._acquire()
        self._lost = None
        stop = threading.Event()
        state = {"etag": etag}

        def renew() -> None:
            renewed = time.monotonic()
            while not stop.wait(self.lock_ttl_s / 3):
                try:
                    state["etag"] = self._put(self.lock_key, self._lock_doc(), state["etag"])
                    renewed = time.monotonic()
                except Exception as err:  # a lost lock stops the run at its next save
                    if is_precondition_failure(err):
                        self._lost = "someone else replaced the lock"
                        return
                    if time.monotonic() - renewed > self.lock_ttl_s:
                        self._lost = (
                            f"not renewed for {self.lock_ttl_s:.0f}s ({type(err).__name__})"
                        )

        thread = threading.Thread(target=renew, name="journal-lock", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)
            with contextlib.suppress(Exception):
                self._put(self.lock_key, self._lock_doc(released=True), state["etag"])
