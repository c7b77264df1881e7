"""The rules: pure functions over declared resources, shared by the CrossGuard pack and posture.

Standard library only, so the policy pack can load this file on its own. A resource here is what
both callers can give: its type token, its Pulumi name and its input properties (engine names,
camelCase). The objectives come from the stack itself (the ``ObjectivesRecord`` resource the
program declares), so the pack and posture check against exactly the model the program used.

Two kinds of rule:
- ``RESOURCE_RULES``: secure defaults, one small function per rule, ``props -> [problem]``;
- mechanism extractors (``MECHANISM_EXTRACTORS``): read what protects each dataset and the
  worst-case RPO those settings imply; ``class_verdicts`` turns them into a verdict per class.

Linking: children are found by the naming convention every component follows, ``<parent>-<role>``
(for example ``creator-audio-us-east-1-versioning``), because a new bucket's generated name is not
known during a preview.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Imported as policy.rules by drctl and the tests; loaded standalone by the Pulumi policy host from
# inside policy/, where there is no parent package (the same switch as policy/pack.py).
if __package__:
    from . import bounds
    from .bounds import Bound
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import bounds  # type: ignore[no-redef]
    from bounds import Bound  # type: ignore[no-redef]

OBJECTIVES_TYPE = "platform-dr:objectives:ObjectivesRecord"
REPLICATED_BUCKET_TYPE = "platform-dr:replicated_bucket:ReplicatedBucket"
RTC_SLA_S = 900  # S3 Replication Time Control: 99.99% of objects within 15 minutes
# S3 publishes replication metrics to CloudWatch every minute (S3 User Guide, "Monitoring progress
# with replication metrics": https://docs.aws.amazon.com/AmazonS3/latest/userguide/repl-metrics.html).
S3_METRIC_PUBLICATION_S = 60
MIN_COPIES = {"critical": 3, "important": 2, "operational": 2}


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Violation:
    rule: str
    resource: str
    message: str


@dataclass
class Mechanism:
    """One thing that protects a dataset, in words, with the data loss it bounds on region loss.

    rpo_s: worst-case seconds of writes lost if the primary region is lost; None = no bound.
        With ``bounds`` given it is always their tightest *enforced* bound (policy/bounds.py):
        an alarm in ``bounds`` is shown with its detection delay and never becomes ``rpo_s``.
    problems: requirements this mechanism fails (they make the class not met).
    bounds: what enforces the bound and what only detects a breach (``bounds.Bound``).
    """

    dataset: str
    data_class: str
    description: str
    rpo_s: int | None
    covers_region_loss: bool = True
    problems: list[str] = field(default_factory=list)
    bounds: list[Bound] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.bounds:
            self.rpo_s = bounds.enforced_loss_s(self.bounds)


@dataclass
class ClassVerdict:
    name: str
    rpo_objective_s: int
    rto_objective_s: int
    rpo_declared_s: int | None
    met: bool
    mechanisms: list[str]
    problems: list[str]
    datasets: dict[str, int | None]
    backup: dict[str, Any] = field(default_factory=dict)  # backup_coverage() of the class
    bounds: dict[str, list[Bound]] = field(default_factory=dict)  # dataset -> enforced/detected


# ---------------------------------------------------------------------------------------------
# Helpers


def _get(props: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    value: Any = props
    for key in path:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, Sequence) and not isinstance(value, str) and isinstance(key, int):
            value = value[key] if key < len(value) else None
        else:
            return default
        if value is None:
            return default
    return value


def _policy_doc(value: Any) -> dict:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, Mapping) else {}


def _statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = doc.get("Statement") or doc.get("statements") or []
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def by_name(resources: Iterable[Resource]) -> dict[str, Resource]:
    return {r.name: r for r in resources}


def _whole(value: Any) -> Any:
    # Property values cross the engine as JSON numbers: 900 arrives as 900.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_whole(v) for v in value]
    return value


def objectives_of(resources: Iterable[Resource]) -> dict | None:
    for r in resources:
        if r.type == OBJECTIVES_TYPE:
            return _whole(dict(r.props.get("objectives") or {}))
    return None


fmt_s = bounds.fmt


# ---------------------------------------------------------------------------------------------
# Resource rules: secure defaults. Each is props -> list of problems (empty = compliant).


def s3_versioning_enabled(props: Mapping[str, Any]) -> list[str]:
    status = _get(props, "versioningConfiguration", "status")
    return [] if status == "Enabled" else [f"versioning status is {status!r}, must be 'Enabled'"]


def s3_encrypted_with_cmk(props: Mapping[str, Any]) -> list[str]:
    rules = _as_list(props.get("rules"))
    for rule in rules:
        default = _get(rule, "applyServerSideEncryptionByDefault") or {}
        if default.get("sseAlgorithm") in ("aws:kms", "aws:kms:dsse") and default.get(
            "kmsMasterKeyId"
        ):
            return []
    return ["default encryption must be SSE-KMS with a customer managed key (kmsMasterKeyId)"]


def s3_public_access_fully_blocked(props: Mapping[str, Any]) -> list[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    off = [f for f in flags if props.get(f) is not True]
    return [f"public access block flags not true: {', '.join(off)}"] if off else []


def s3_owner_enforced(props: Mapping[str, Any]) -> list[str]:
    ownership = _get(props, "rule", "objectOwnership")
    if ownership == "BucketOwnerEnforced":
        return []
    return [f"object ownership is {ownership!r}; must be 'BucketOwnerEnforced' (ACLs off)"]


def s3_policy_denies_insecure_transport(props: Mapping[str, Any]) -> list[str]:
    for statement in _statements(_policy_doc(props.get("policy"))):
        condition = _get(statement, "Condition", "Bool", "aws:SecureTransport")
        if statement.get("Effect") == "Deny" and str(condition).lower() == "false":
            return []
    return ["bucket policy must deny requests where aws:SecureTransport is false"]


def s3_replication_rules_complete(props: Mapping[str, Any]) -> list[str]:
    problems = []
    for rule in _as_list(props.get("rules")):
        rid = rule.get("id", "?")
        if _get(rule, "deleteMarkerReplication", "status") != "Enabled":
            problems.append(f"rule {rid}: delete markers are not replicated")
        if _get(rule, "sourceSelectionCriteria", "replicaModifications", "status") != "Enabled":
            problems.append(f"rule {rid}: replica modification sync is off")
        if _get(rule, "sourceSelectionCriteria", "sseKmsEncryptedObjects", "status") != "Enabled":
            problems.append(f"rule {rid}: KMS-encrypted objects are not replicated")
        if not _get(rule, "destination", "encryptionConfiguration", "replicaKmsKeyId"):
            problems.append(f"rule {rid}: replicas are not encrypted with a destination key")
        if "filter" not in rule:
            problems.append(f"rule {rid}: not a V2 rule (no filter)")
    if not problems and not _as_list(props.get("rules")):
        problems.append("replication configuration has no rules")
    return problems


def kms_rotation_enabled(props: Mapping[str, Any]) -> list[str]:
    return [] if props.get("enableKeyRotation") is True else ["key rotation must be enabled"]


def sns_topic_encrypted(props: Mapping[str, Any]) -> list[str]:
    return [] if props.get("kmsMasterKeyId") else ["topic must be encrypted with a KMS key"]


def iam_no_wildcard_actions(props: Mapping[str, Any]) -> list[str]:
    problems = []
    for statement in _statements(_policy_doc(props.get("policy"))):
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action")):
            if action == "*" or str(action).endswith(":*"):
                problems.append(f"statement {statement.get('Sid', '?')} allows {action!r}")
    return problems


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    resource_type: str
    check: Callable[[Mapping[str, Any]], list[str]]


RESOURCE_RULES: list[ResourceRule] = [
    ResourceRule(
        "s3-versioning-enabled",
        "Every bucket copy keeps versions.",
        "aws:s3/bucketVersioning:BucketVersioning",
        s3_versioning_enabled,
    ),
    ResourceRule(
        "s3-sse-kms-cmk",
        "Buckets encrypt by default with a customer managed KMS key.",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        s3_encrypted_with_cmk,
    ),
    ResourceRule(
        "s3-public-access-blocked",
        "All four public access block flags are on.",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        s3_public_access_fully_blocked,
    ),
    ResourceRule(
        "s3-owner-enforced",
        "ACLs are disabled (BucketOwnerEnforced).",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        s3_owner_enforced,
    ),
    ResourceRule(
        "s3-tls-only",
        "Bucket policies deny non-TLS access.",
        "aws:s3/bucketPolicy:BucketPolicy",
        s3_policy_denies_insecure_transport,
    ),
    ResourceRule(
        "s3-replication-complete",
        "Replication rules are V2 and carry delete markers, replica modifications and KMS objects.",
        "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
        s3_replication_rules_complete,
    ),
    ResourceRule(
        "kms-rotation",
        "Customer managed keys rotate.",
        "aws:kms/key:Key",
        kms_rotation_enabled,
    ),
    ResourceRule(
        "sns-encrypted",
        "Alert topics are KMS-encrypted.",
        "aws:sns/topic:Topic",
        sns_topic_encrypted,
    ),
    ResourceRule(
        "iam-role-policy-no-wildcard",
        "Inline role policies grant no wildcard actions.",
        "aws:iam/rolePolicy:RolePolicy",
        iam_no_wildcard_actions,
    ),
    ResourceRule(
        "iam-policy-no-wildcard",
        "Managed policies grant no wildcard actions.",
        "aws:iam/policy:Policy",
        iam_no_wildcard_actions,
    ),
]


def resource_violations(resources: Iterable[Resource]) -> list[Violation]:
    rules_by_type: dict[str, list[ResourceRule]] = {}
    for rule in RESOURCE_RULES:
        rules_by_type.setdefault(rule.resource_type, []).append(rule)
    found = []
    for resource in resources:
        for rule in rules_by_type.get(resource.type, []):
            found += [Violation(rule.name, resource.name, m) for m in rule.check(resource.props)]
    return found


# ---------------------------------------------------------------------------------------------
# Mechanisms: what protects each dataset, and the worst-case RPO it implies.


def replicated_bucket_mechanisms(resources: Sequence[Resource], objectives: Mapping) -> list:
    """Copies, versioning, replication mode and archival of every ReplicatedBucket."""
    named = by_name(resources)
    found = []
    for component in (r for r in resources if r.type == REPLICATED_BUCKET_TYPE):
        name = component.name
        dataset = component.props.get("dataset", name)
        data_class = component.props.get("dataClass", "critical")
        copies = [
            r
            for r in resources
            if r.type == "aws:s3/bucket:Bucket" and r.name.startswith(f"{name}-")
        ]
        declared = _get(objectives, "regions", default={})
        order = [declared.get(k) for k in ("primary", "dr", "third")]
        regions = sorted(
            (c.name[len(name) + 1 :] for c in copies),
            key=lambda r: order.index(r) if r in order else len(order),
        )
        problems = []
        # An adopted copy's settings belong to the stack that owns it (declared there, not here).
        adopted = set(_as_list(component.props.get("adopted_regions")))
        unversioned = [
            region
            for region in regions
            if region not in adopted
            and s3_versioning_enabled(
                getattr(named.get(f"{name}-{region}-versioning"), "props", {})
            )
        ]
        if unversioned:
            problems.append(f"{dataset}: copies without versioning in {', '.join(unversioned)}")
        need = MIN_COPIES.get(data_class, 2)
        if len(regions) < need:
            problems.append(f"{dataset}: {len(regions)} copies, {data_class} needs {need}")

        replication = named.get(f"{name}-replication")
        found_bounds: list[Bound] = []
        modes = []
        for rule in _as_list(getattr(replication, "props", {}).get("rules")):
            region = str(rule.get("id", "")).removeprefix("to-")
            if _get(rule, "destination", "replicationTime", "status") == "Enabled":
                found_bounds.append(
                    Bound(
                        "service-sla",
                        RTC_SLA_S,
                        f"S3 Replication Time Control to {region}",
                        holds_while="S3 keeps its RTC SLA (99.99% of objects; the SLA pays "
                        "credits, it does not stop writes)",
                    )
                )
                modes.append("RTC 15 min")
            else:
                modes.append("CRR without SLA")
            # Without RTC a latency alarm only notices a copy falling behind; it bounds nothing.
            alarm = named.get(f"{name}-latency-{region}")
            threshold = _whole(alarm.props.get("threshold")) if alarm else None
            if threshold:
                found_bounds.append(
                    Bound(
                        bounds.DETECTED,
                        int(threshold),
                        f"ReplicationLatency alarm to {region} at {fmt_s(int(threshold))}",
                        detection_s=bounds.alarm_detection_s(
                            _whole(dict(alarm.props)), S3_METRIC_PUBLICATION_S
                        ),
                    )
                )
        if replication is None:
            problems.append(f"{dataset}: no replication")

        lifecycle = named.get(f"{name}-{regions[0]}-lifecycle") if regions else None
        transitions = _as_list(_get(lifecycle.props if lifecycle else {}, "rules", default=[]))
        first = min(
            (
                t.get("days", 10**6)
                for rule in transitions
                for t in _as_list(rule.get("transitions"))
            ),
            default=None,
        )
        parts = [f"{len(regions)} copies in {'/'.join(regions)}"]
        if modes:
            parts.append(", ".join(sorted(set(modes))))
        parts.append("versioned" if not unversioned else "NOT versioned everywhere")
        if first is not None:
            parts.append(f"archived after {int(first)} d")
        description = f"{dataset}: " + ", ".join(parts)
        found.append(
            Mechanism(dataset, data_class, description, None, True, problems, found_bounds)
        )
    return found


# Each extractor reads the declared resources and returns Mechanisms; components add theirs here.
MECHANISM_EXTRACTORS: list[Callable[[Sequence[Resource], Mapping], list[Mechanism]]] = [
    replicated_bucket_mechanisms,
]


def mechanisms(resources: Sequence[Resource], objectives: Mapping) -> list[Mechanism]:
    found: list[Mechanism] = []
    for extract in MECHANISM_EXTRACTORS:
        found += extract(resources, objectives)
    return found


def class_verdicts(resources: Sequence[Resource], objectives: Mapping) -> list[ClassVerdict]:
    """Per class: the worst dataset's best *enforced* region-loss bound, against the class RPO.

    A dataset survives losing its primary region through its best mechanism, so its declared RPO
    is the smallest enforced bound among them (alarms only detect and never count); the class is
    only as good as its worst dataset.
    """
    found = mechanisms(resources, objectives)
    coverage = backup_coverage(resources, objectives)
    verdicts = []
    for name, objective in objectives["classes"].items():
        own = [m for m in found if m.data_class == name]
        datasets: dict[str, int | None] = {}
        for m in own:
            if not m.covers_region_loss:
                datasets.setdefault(m.dataset, None)
                continue
            best = datasets.get(m.dataset)
            datasets[m.dataset] = m.rpo_s if best is None else min(best, m.rpo_s or best)
        problems = [p for m in own for p in m.problems]
        unbounded = [d for d, rpo in datasets.items() if rpo is None]
        problems += [f"{d}: nothing bounds data loss on region loss" for d in unbounded]
        declared = None if unbounded or not datasets else max(datasets.values())
        over = [d for d, rpo in datasets.items() if rpo is not None and rpo > objective["rpo_s"]]
        problems += [
            f"{d}: worst case {fmt_s(datasets[d])} exceeds the RPO {fmt_s(objective['rpo_s'])}"
            for d in over
        ]
        backup = coverage.get(name, {})
        problems += backup.get("problems", [])
        met = not problems and (bool(datasets) or not own)
        found_bounds: dict[str, list[Bound]] = {}
        for m in own:
            found_bounds.setdefault(m.dataset, []).extend(m.bounds)
        verdicts.append(
            ClassVerdict(
                name=name,
                rpo_objective_s=objective["rpo_s"],
                rto_objective_s=objective["rto_s"],
                rpo_declared_s=declared,
                met=met,
                mechanisms=[m.description for m in own],
                problems=problems,
                datasets=datasets,
                backup=backup,
                bounds=found_bounds,
            )
        )
    return verdicts


def objective_violations(resources: Sequence[Resource]) -> list[Violation]:
    """Stack rule: every class's declared settings can meet its objectives."""
    objectives = objectives_of(resources)
    if objectives is None:
        return [Violation("objectives-declared", "stack", "no ObjectivesRecord in the stack")]
    found = []
    for verdict in class_verdicts(resources, objectives):
        for problem in verdict.problems:
            found.append(Violation("objectives-met", f"class {verdict.name}", problem))
    return found


# ---------------------------------------------------------------------------------------------
# The database (PostgresBackup) and its DR standby (DrStandby): policy/database.py holds their
# mechanism extractors; what the DR standby component itself decides lives here.

POSTGRES_BACKUP_TYPE = "platform-dr:postgres_backup:PostgresBackup"
DR_STANDBY_TYPE = "platform-dr:dr_standby:DrStandby"
WARM_STANDBY, PILOT_LIGHT = "warm-standby", "pilot-light"
ROUTE53_METRICS_REGION = "us-east-1"


def standby_mode(tightest_rto_s: int, pilot_light_recovery_s: int) -> str:
    """Warm standby when the tightest class RTO leaves no room for a pilot-light scale-up.

    The one place this decision lives: DrStandby calls it to size the DR region, and
    ``database.dr_standby_mechanisms`` calls it to check what was declared.
    """
    return WARM_STANDBY if tightest_rto_s <= pilot_light_recovery_s else PILOT_LIGHT


# AWS Backup coverage per class (policy/backup_coverage.py): class_verdicts reads it.
if __package__:
    from .backup_coverage import backup_coverage  # noqa: E402
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    from backup_coverage import backup_coverage  # type: ignore[no-redef]  # noqa: E402

# The RDS backend's secure defaults (policy/rds_rules.py).
if __package__:
    from . import rds_rules as _rds_rules
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import rds_rules as _rds_rules  # type: ignore[no-redef]
RESOURCE_RULES += _rds_rules.RULES

# The database's extractors register themselves in MECHANISM_EXTRACTORS when imported, and so
# does the audit of the inventoried datasets (detection only).
if __package__:
    from . import database, inventory  # noqa: E402,F401
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import database  # type: ignore[no-redef]  # noqa: E402,F401
    import inventory  # type: ignore[no-redef]  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------
# AWS semantics (policy/aws_semantics/): what each declared mechanism needs to work in AWS.
# Imported the same dual way as pack.py imports this module: the pack loads it standalone.
if __package__:
    from . import aws_semantics
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import aws_semantics  # type: ignore[no-redef]

SEMANTIC_RULES = aws_semantics.RULES


def semantic_violations(resources: Iterable[Resource]) -> list[Violation]:
    return [Violation(*found) for found in aws_semantics.violations(resources)]


# AWS semantics of the status page (CloudFront, OAC, origin failover): policy/status_page_rules.py.
if __package__:
    from . import status_page_rules as _status_page_rules
else:  # pragma: no cover - the policy host loads the pack from inside policy/
    import status_page_rules as _status_page_rules  # type: ignore[no-redef]
RESOURCE_RULES += _status_page_rules.RULES
MECHANISM_EXTRACTORS.append(_status_page_rules.status_page_mechanisms)
