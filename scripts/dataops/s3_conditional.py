"""S3 conditional writes: the compare-and-swap the lease and the shared journal are built on.

``put_json`` creates an object only if it does not exist (``If-None-Match: *``) or replaces it
only if it is still the version read (``If-Match: <ETag>``). S3 evaluates the condition when the
write lands: 412 Precondition Failed when it does not hold, 409 ConditionalRequestConflict when
two conditional writes race (retry from a fresh read). Conditional writes need SigV4, which boto3
always signs with (Amazon S3 User Guide, "How to prevent object overwrites with conditional
writes").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _status(err: Exception) -> int | None:
    response = getattr(err, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_precondition_failure(err: Exception) -> bool:
    """412 (the condition did not hold) or 409 (a concurrent conditional write won the race)."""
    return _status(err) in (409, 412) or _code(err) in (
        "PreconditionFailed",
        "ConditionalRequestConflict",
    )


def is_missing(err: Exception) -> bool:
    return _status(err) == 404 or _code(err) in ("NoSuchKey", "404")


def put_json(s3: Any, bucket: str, key: str, doc: Mapping[str, Any], etag: str | None) -> str:
    """Write ``doc``: replace version ``etag``, or create when ``etag`` is None; the new ETag."""
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    return s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(doc, indent=2, default=str).encode(),
        ContentType="application/json",
        **condition,
    )["ETag"]
