"""Where inventory reports, Batch Operations manifests and reports are read and written.

``S3Store`` talks to the regional inventory buckets with a boto3 client per region (injected, so
tests point it at moto); ``DirStore`` keeps the same keys under a local directory
(``<root>/<bucket>/<key>``) for the benchmark and for audits of reports copied by hand. The audit
and the Batch Operations jobs only use these calls.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class NotFound(Exception):
    """The object does not exist (yet)."""


class Store(Protocol):
    def folders(self, region: str, bucket: str, prefix: str) -> list[str]:
        """Names of the "folders" directly under ``prefix`` (each ending in '/')."""

    def get(self, region: str, bucket: str, key: str) -> bytes: ...

    def download(self, region: str, bucket: str, key: str, path: Path) -> None: ...

    def put(self, region: str, bucket: str, key: str, data: bytes, **extra: Any) -> dict: ...

    def keys(self, region: str, bucket: str, prefix: str) -> list[str]: ...


class S3Store:
    """The real thing: ``client_for(region)`` returns an S3 client for that region."""

    def __init__(self, client_for: Callable[[str], Any]):
        self._client_for = client_for

    def folders(self, region: str, bucket: str, prefix: str) -> list[str]:
        paginator = self._client_for(region).get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            found += [p["Prefix"][len(prefix) :] for p in page.get("CommonPrefixes", [])]
        return found

    def keys(self, region: str, bucket: str, prefix: str) -> list[str]:
        paginator = self._client_for(region).get_paginator("list_objects_v2")
        return [
            o["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]

    def get(self, region: str, bucket: str, key: str) -> bytes:
        client = self._client_for(region)
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise NotFound(f"s3://{bucket}/{key}") from None

    def download(self, region: str, bucket: str, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._client_for(region).download_file(bucket, key, str(path))

    def put(self, region: str, bucket: str, key: str, data: bytes, **extra: Any) -> dict:
        response = self._client_for(region).put_object(Bucket=bucket, Key=key, Body=data, **extra)
        return {"ETag": response["ETag"].strip('"'), "VersionId": response.get("VersionId")}


class DirStore:
    """The same layout under a directory: ``<root>/<bucket>/<key>``; regions are ignored."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"key {key!r} escapes the store")
        return path

    def folders(self, region: str, bucket: str, prefix: str) -> list[str]:
        base = self._path(bucket, prefix) if prefix else self.root / bucket
        if not base.is_dir():
            return []
        return sorted(f"{p.name}/" for p in base.iterdir() if p.is_dir())

    def keys(self, region: str, bucket: str, prefix: str) -> list[str]:
        base = self.root / bucket
        return sorted(
            str(p.relative_to(base))
            for p in base.rglob("*")
            if p.is_file() and str(p.relative_to(base)).startswith(prefix)
        )

    def get(self, region: str, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        if not path.is_file():
            raise NotFound(f"{self.root}/{bucket}/{key}")
        return path.read_bytes()

    def download(self, region: str, bucket: str, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(bucket, key), path)

    def local_path(self, region: str, bucket: str, key: str) -> Path:
        """Where the object already is on this machine: the audit reads it in place."""
        return self._path(bucket, key)

    def put(self, region: str, bucket: str, key: str, data: bytes, **extra: Any) -> dict:
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {"ETag": hashlib.md5(data).hexdigest(), "VersionId": None}

    def writer(self, region: str = "") -> Callable[[str, str, bytes], None]:
        """A ``put(bucket, key, data)`` for scripts/local/inventory.py."""
        return lambda bucket, key, data: self.put(region, bucket, key, data) and None
