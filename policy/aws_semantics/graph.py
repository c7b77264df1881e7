"""The declared stack as a graph the rules can walk: names, ARNs, buckets, keys and their policies.

Both callers hand the rules resources as (type, name, props): CrossGuard gives a stack policy each
resource's outputs, and ``drctl posture`` gives the inputs recorded under Pulumi's mocks. ARNs of
new resources are not inputs, so ARNs are found in the outputs each component registers
(``MultiRegionKey.arns``, ``AlertTopics.topic_arns``, ``ReplicatedBucket.bucket_arns``...) and in
an ``arn`` property where the engine provides one. References by id follow the same idea: a
resource is known by its Pulumi name, its ``id``/``name``/``arn`` properties, and the id Pulumi's
mocks give it (``<name>-id``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .iam_eval import as_list, policy_doc

KEY_TYPES = ("aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey")
BUCKET_TYPE = "aws:s3/bucket:Bucket"
BUCKET_POLICY_TYPE = "aws:s3/bucketPolicy:BucketPolicy"
ENCRYPTION_TYPE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
LIFECYCLE_TYPE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
OBJECT_LOCK_TYPE = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
VERSIONING_TYPE = "aws:s3/bucketVersioning:BucketVersioning"
REPLICATION_TYPE = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
ROLE_TYPE = "aws:iam/role:Role"
ROLE_POLICY_TYPE = "aws:iam/rolePolicy:RolePolicy"
TOPIC_TYPE = "aws:sns/topic:Topic"
TOPIC_POLICY_TYPE = "aws:sns/topicPolicy:TopicPolicy"
ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
EVENT_TARGET_TYPE = "aws:cloudwatch/eventTarget:EventTarget"

MULTI_REGION_KEY = "platform-dr:keys:MultiRegionKey"
ALERT_TOPICS = "platform-dr:alerts:AlertTopics"
REPLICATED_BUCKET = "platform-dr:replicated_bucket:ReplicatedBucket"
OBJECT_INVENTORY = "platform-dr:inventory:ObjectInventory"

# Types whose ``arn`` property names another resource (the topic, the target), not themselves.
ARN_IS_A_REFERENCE = (TOPIC_POLICY_TYPE, EVENT_TARGET_TYPE)

_ACCOUNT_ROOT = re.compile(r"arn:aws:iam::(\d{12}):root")
_ACCOUNT_IN_ARN = re.compile(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")


def get(props: Mapping[str, Any] | None, *path: Any, default: Any = None) -> Any:
    value: Any = props
    for key in path:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list | tuple) and isinstance(key, int):
            value = value[key] if key < len(value) else None
        else:
            return default
        if value is None:
            return default
    return value


def known(props: Mapping[str, Any] | None, key: str) -> Any:
    """``props[key]``, or None when it is not known yet.

    During a preview CrossGuard hands the rules values that raise when read (pulumi_policy's
    UnknownValueError: a new resource's ARN or id). Indexing every resource must not make every
    rule "unable to run"; a rule that needs the value itself still reads it with ``get`` and is
    deferred to the update by the SDK, as it should be.
    """
    try:
        return get(props, key)
    except Exception:  # noqa: BLE001 - the SDK's UnknownValueError; this module is stdlib-only
        return None


def known_items(mapping: Any) -> list[tuple[Any, Any]]:
    """The entries of a mapping whose values are known (see ``known``)."""
    found = []
    for key in list(mapping or {}):
        try:
            found.append((key, mapping[key]))
        except Exception:  # noqa: BLE001 - an unknown value during a preview
            continue
    return found


def whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def arn_region(arn: str) -> str:
    parts = str(arn).split(":")
    return parts[3] if len(parts) > 3 else ""


class Stack:
    """Indexes over one stack's resources (anything with ``type``, ``name`` and ``props``)."""

    def __init__(self, resources: Iterable[Any]):
        self.resources = list(resources)
        self.named = {r.name: r for r in self.resources}
        self.by_type: dict[str, list[Any]] = {}
        for r in self.resources:
            self.by_type.setdefault(r.type, []).append(r)
        self.by_arn: dict[str, Any] = {}
        self.by_ref: dict[str, Any] = {}
        for r in self.resources:
            own_arn = None if r.type in ARN_IS_A_REFERENCE else known(r.props, "arn")
            for ref in (r.name, f"{r.name}-id", known(r.props, "id"), own_arn):
                if isinstance(ref, str) and ref:
                    self.by_ref.setdefault(ref, r)
            if isinstance(own_arn, str):
                self.by_arn[own_arn] = r
        # Component outputs that name their children's ARNs: (component type, output, child).
        for comp_type, output in (
            (MULTI_REGION_KEY, "arns"),
            (ALERT_TOPICS, "topic_arns"),
            (REPLICATED_BUCKET, "bucket_arns"),
        ):
            for comp in self.of(comp_type):
                for region, arn in known_items(known(comp.props, output)):
                    child = self.named.get(f"{comp.name}-{region}")
                    if child is not None and isinstance(arn, str):
                        self.by_arn.setdefault(arn, child)
                        self.by_ref.setdefault(arn, child)
        # The inventory buckets' keys (components/inventory.py): children "<name>-<region>-key".
        for comp in self.of(OBJECT_INVENTORY):
            for region, arn in known_items(known(comp.props, "keyArns")):
                child = self.named.get(f"{comp.name}-{region}-key")
                if child is not None and isinstance(arn, str):
                    self.by_arn.setdefault(arn, child)
                    self.by_ref.setdefault(arn, child)
        for comp in self.of(REPLICATED_BUCKET):
            role_arn = known(comp.props, "replication_role_arn")
            role = self.named.get(f"{comp.name}-replication-role")
            if isinstance(role_arn, str) and role is not None:
                self.by_arn.setdefault(role_arn, role)
                self.by_ref.setdefault(role_arn, role)
        self.buckets: dict[str, Any] = {}
        for comp in self.of(REPLICATED_BUCKET):
            for region, bucket in known_items(known(comp.props, "bucket_names")):
                child = self.named.get(f"{comp.name}-{region}")
                if child is not None and isinstance(bucket, str):
                    self.buckets.setdefault(bucket, child)
        for r in self.of(BUCKET_TYPE):
            name = known(r.props, "bucket") or known(r.props, "id")
            if isinstance(name, str):
                self.buckets.setdefault(name, r)
        self.account = self._account()

    def of(self, *types: str) -> list[Any]:
        return [r for t in types for r in self.by_type.get(t, [])]

    def ref(self, value: Any) -> Any:
        return self.by_ref.get(value) if isinstance(value, str) else None

    def _account(self) -> str:
        for r in self.of(*KEY_TYPES):
            match = _ACCOUNT_ROOT.search(str(known(r.props, "policy") or ""))
            if match:
                return match.group(1)
        for r in self.resources:
            match = _ACCOUNT_IN_ARN.search(str(r.props))
            if match:
                return match.group(1)
        return ""

    # -- keys ------------------------------------------------------------------------------

    def key(self, arn: Any) -> Any:
        found = self.by_arn.get(arn) if isinstance(arn, str) else None
        return found if found is not None and found.type in KEY_TYPES else None

    def key_policy(self, arn: Any) -> dict | None:
        """The key's policy document, or None when the key is not declared in this stack."""
        key = self.key(arn)
        return policy_doc(get(key.props, "policy")) if key is not None else None

    # -- buckets ---------------------------------------------------------------------------

    def _for_bucket(self, type_: str, bucket: str) -> Any:
        for r in self.of(type_):
            if get(r.props, "bucket") == bucket:
                return r
        return None

    def bucket_policy(self, bucket: str) -> dict:
        found = self._for_bucket(BUCKET_POLICY_TYPE, bucket)
        return policy_doc(get(found.props, "policy")) if found is not None else {}

    def bucket_encryption(self, bucket: str) -> tuple[str | None, bool | None] | None:
        """(key ARN, bucket keys on) of a bucket's default encryption; None if not declared."""
        found = self._for_bucket(ENCRYPTION_TYPE, bucket)
        if found is None:
            return None
        for rule in as_list(get(found.props, "rules")):
            default = get(rule, "applyServerSideEncryptionByDefault") or {}
            return default.get("kmsMasterKeyId"), get(rule, "bucketKeyEnabled")
        return None, None

    def bucket_lifecycle(self, bucket: str) -> Any:
        return self._for_bucket(LIFECYCLE_TYPE, bucket)

    def bucket_object_lock(self, bucket: str) -> Any:
        return self._for_bucket(OBJECT_LOCK_TYPE, bucket)

    def bucket_arn(self, bucket: str) -> str:
        return f"arn:aws:s3:::{bucket}"

    # -- IAM -------------------------------------------------------------------------------

    def role_policies(self, role: Any) -> list[dict]:
        """Inline policies attached to ``role`` (a Role resource)."""
        refs = {role.name, f"{role.name}-id", get(role.props, "id"), get(role.props, "name")}
        return [
            policy_doc(get(p.props, "policy"))
            for p in self.of(ROLE_POLICY_TYPE)
            if get(p.props, "role") in refs
        ]

    def role(self, arn_or_ref: Any) -> Any:
        found = self.ref(arn_or_ref)
        return found if found is not None and found.type == ROLE_TYPE else None
