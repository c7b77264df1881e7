"""Find the newest complete S3 Inventory report of a copy, and fetch its files, as S3 delivers them.

S3 User Guide, "Locating your inventory list": each report has a folder named by the time its scan
started (``<prefix>/<source>/<config>/YYYY-MM-DDTHH-MMZ/``) holding ``manifest.json`` and
``manifest.checksum`` (the MD5 of the manifest), and a Hive partition ``hive/dt=...``. The manifest
names every data file with its size and MD5. A report whose manifest or checksum is missing or does
not match is still being written (or damaged) and is skipped; a data file whose size or MD5 does not
match its manifest is refused.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.inventory import HIVE_PARTITION_FORMAT, SNAPSHOT_FOLDER_FORMAT, report_prefix
from scripts.checks.audit.sql import COLUMNS
from scripts.common import DrctlError, ExitCode
from scripts.dataops.inventory_store import NotFound, Store


@dataclass(frozen=True)
class Snapshot:
    """One delivered report of one copy."""

    region: str
    source_bucket: str
    store_bucket: str
    started: dt.datetime  # the manifest's creationTimestamp: when S3 began scanning the copy
    manifest_key: str
    files: tuple[dict, ...]  # {"key", "size", "MD5checksum"} as the manifest lists them

    @property
    def partition(self) -> str:
        """The Hive ``dt`` partition of this report (the Glue tables' partition key)."""
        return self.started.strftime(HIVE_PARTITION_FORMAT)

    @property
    def size(self) -> int:
        return sum(int(f["size"]) for f in self.files)


def _folder_time(folder: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(folder.rstrip("/"), SNAPSHOT_FOLDER_FORMAT).replace(
            tzinfo=dt.UTC
        )
    except ValueError:
        return None  # data/, hive/ and anything else S3 did not write as a report folder


def _check_manifest(manifest: dict, where: str, source_bucket: str) -> None:
    if manifest.get("fileFormat") != "Parquet":
        raise DrctlError(
            f"{where}: fileFormat is {manifest.get('fileFormat')!r}; the audit reads the Parquet "
            "reports ObjectInventory configures",
            ExitCode.PRECONDITION_FAILED,
        )
    if manifest.get("sourceBucket") != source_bucket:
        raise DrctlError(
            f"{where}: lists {manifest.get('sourceBucket')!r}, not {source_bucket!r}",
            ExitCode.PRECONDITION_FAILED,
        )
    named = set(re.findall(r"[a-z_]+", str(manifest.get("fileSchema", ""))))
    missing = [c for c in COLUMNS if c not in named]
    if missing:
        raise DrctlError(
            f"{where}: the report has no {', '.join(missing)}: the inventory configuration lacks "
            "fields the audit compares (or lists current versions only)",
            ExitCode.PRECONDITION_FAILED,
        )


def latest_snapshot(
    store: Store, region: str, store_bucket: str, source_bucket: str, config: str
) -> Snapshot:
    """The newest report of ``source_bucket`` whose manifest is complete and intact."""
    base = report_prefix(source_bucket, config)
    folders = [(t, f) for f in store.folders(region, store_bucket, base) if (t := _folder_time(f))]
    for _, folder in sorted(folders, reverse=True):
        key = f"{base}{folder}manifest.json"
        try:
            body = store.get(region, store_bucket, key)
            checksum = store.get(region, store_bucket, f"{base}{folder}manifest.checksum")
        except NotFound:
            continue  # S3 is still writing this report
        if checksum.decode().strip().lower() != hashlib.md5(body).hexdigest():
            continue
        manifest = json.loads(body)
        where = f"s3://{store_bucket}/{key}"
        _check_manifest(manifest, where, source_bucket)
        started = dt.datetime.fromtimestamp(int(manifest["creationTimestamp"]) / 1000, dt.UTC)
        return Snapshot(
            region, source_bucket, store_bucket, started, key, tuple(manifest.get("files", []))
        )
    raise DrctlError(
        f"no complete inventory report of s3://{source_bucket} under "
        f"s3://{store_bucket}/{base}: S3 delivers the first report within 48 hours of the "
        "inventory configuration, then daily",
        ExitCode.PRECONDITION_FAILED,
    )


def fetch(
    store: Store,
    snapshot: Snapshot,
    cache: Path,
    deferred: list[Callable[[], None]] | None = None,
) -> list[Path]:
    """The report's data files, each checked against the size and MD5 its manifest gives.

    Downloads go to ``cache`` and are checked once (a ``.md5`` marker records it, so a rerun on
    the same report reuses them); a store with the files on this machine is read in place. With
    ``deferred``, the checks of files read in place are appended there instead of run now, so the
    caller can run them while it reads the files (and must run them before trusting the result).
    """
    paths = []
    local = getattr(store, "local_path", None)
    for entry in snapshot.files:
        key, size, md5 = entry["key"], int(entry["size"]), entry["MD5checksum"]
        if local is not None:
            path = local(snapshot.region, snapshot.store_bucket, key)
            check = functools.partial(_verify, path, size, md5, snapshot.store_bucket, key)
            if deferred is None:
                check()
            else:
                deferred.append(check)
            paths.append(path)
            continue
        path = cache / snapshot.store_bucket / key
        marker = path.with_name(path.name + ".md5")
        reusable = path.is_file() and path.stat().st_size == size and marker.is_file()
        if not (reusable and marker.read_text() == md5):
            store.download(snapshot.region, snapshot.store_bucket, key, path)
            _verify(path, size, md5, snapshot.store_bucket, key, remove=True)
            marker.write_text(md5)
        paths.append(path)
    return paths


def _verify(path: Path, size: int, md5: str, bucket: str, key: str, remove: bool = False) -> None:
    if path.stat().st_size == size and _md5(path) == md5:
        return
    if remove:
        path.unlink()
    raise DrctlError(
        f"s3://{bucket}/{key} does not match its manifest (size or MD5): refusing to audit from a "
        "damaged report",
        ExitCode.PRECONDITION_FAILED,
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
