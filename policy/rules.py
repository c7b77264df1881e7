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

OBJECTIVES_TYPE = "platform-dr:objectives:ObjectivesRecord"
REPLICATED_BUCKET_TYPE = "platform-dr:replicated_bucket:ReplicatedBucket"
RTC_SLA_S = 900  # S3 Replication Time Control: 99.99% of objects within 15 minutes
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
    problems: requirements this mechanism fails (they make the class not met).
    """

    dataset: str
    data_class: str
    description: str
    rpo_s: int | None
    covers_region_loss: bool = True
    problems: list[str] = field(default_factory=list)


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


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "unbounded"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


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
        unversioned = [
            region
            for region in regions
            if s3_versioning_enabled(getattr(named.get(f"{name}-{region}-versioning"), "props", {}))
        ]
        if unversioned:
            problems.append(f"{dataset}: copies without versioning in {', '.join(unversioned)}")
        need = MIN_COPIES.get(data_class, 2)
        if len(regions) < need:
            problems.append(f"{dataset}: {len(regions)} copies, {data_class} needs {need}")

        replication = named.get(f"{name}-replication")
        bounds: list[int | None] = []
        modes = []
        for rule in _as_list(getattr(replication, "props", {}).get("rules")):
            region = str(rule.get("id", "")).removeprefix("to-")
            if _get(rule, "destination", "replicationTime", "status") == "Enabled":
                bounds.append(RTC_SLA_S)
                modes.append("RTC 15 min")
                continue
            alarm = named.get(f"{name}-latency-{region}")
            threshold = alarm and alarm.props.get("threshold")
            bounds.append(int(threshold) if threshold else None)
            modes.append(
                f"CRR without SLA, latency alarm at {fmt_s(int(threshold))}"
                if threshold
                else "CRR without SLA or latency alarm"
            )
        if replication is None:
            problems.append(f"{dataset}: no replication")
        known = [b for b in bounds if b is not None]
        rpo = min(known) if known else None

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
        found.append(
            Mechanism(dataset, data_class, f"{dataset}: " + ", ".join(parts), rpo, True, problems)
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
    """Per class: the worst dataset's best region-loss bound, against the class RPO.

    A dataset survives losing its primary region through its best mechanism, so its declared RPO
    is the smallest bound among them; the class is only as good as its worst dataset.
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
# AWS Backup coverage per class (BackupPlan component): what posture shows for each class.

BACKUP_PLAN_TYPE = "aws:backup/plan:Plan"
BACKUP_SELECTION_TYPE = "aws:backup/selection:Selection"
BACKUP_FRAMEWORK_TYPE = "aws:backup/framework:Framework"
BACKUP_AGE_CONTROL = "BACKUP_LAST_RECOVERY_POINT_CREATED"


def _class_tag(props: Mapping[str, Any]) -> str | None:
    return (props.get("tags") or {}).get("backup-class")


def _audited_hours(resources: Sequence[Resource], data_class: str) -> int | None:
    for framework in resources:
        if framework.type != BACKUP_FRAMEWORK_TYPE:
            continue
        for control in _as_list(framework.props.get("controls")):
            scope = _get(control, "scope", "tags", default={})
            if control.get("name") != BACKUP_AGE_CONTROL or scope.get("backup-class") != data_class:
                continue
            params = {
                p.get("name"): p.get("value") for p in _as_list(control.get("inputParameters"))
            }
            value = int(float(params.get("recoveryPointAgeValue", 24)))
            return value * 24 if params.get("recoveryPointAgeUnit") == "days" else value
    return None


def _describe_rule(rule: Mapping[str, Any]) -> str:
    life = _whole(rule.get("lifecycle") or {})
    kept = f"kept {life.get('deleteAfter', '?')} d"
    if life.get("coldStorageAfter"):
        kept = f"cold after {life['coldStorageAfter']} d, {kept}"
    kind = "continuous backup (PITR)" if rule.get("enableContinuousBackup") else rule["ruleName"]
    return f"{kind}, {kept}"


def backup_coverage(resources: Sequence[Resource], objectives: Mapping) -> dict[str, dict]:
    """Per class: AWS Backup's declared protection, the RPO its audit checks, and any gap.

    Returns class -> {mechanisms: [str], rpo_hours_checked: int | None, gap_note: str | None,
    problems: [str]}. ``rpo_hours_checked`` is the age BACKUP_LAST_RECOVERY_POINT_CREATED checks
    for the class (None: not audited). AWS audits whole hours only, so when the objective is finer
    (critical: 15 min), ``gap_note`` names what covers the rest: continuous backup in the class's
    plan (in-region, to the second) and every other declared mechanism whose worst-case loss on
    region loss is within the objective (S3 RTC, WAL archiving...), or says nothing does.
    """
    other = mechanisms(resources, objectives)
    named = by_name(resources)
    coverage: dict[str, dict] = {}
    for name, objective in objectives["classes"].items():
        rpo_s = int(objective["rpo_s"])
        plans = [r for r in resources if r.type == BACKUP_PLAN_TYPE and _class_tag(r.props) == name]
        found, problems = [], []
        continuous = False
        for plan in plans:
            rules = _as_list(plan.props.get("rules"))
            continuous |= any(r.get("enableContinuousBackup") for r in rules)
            found.append(f"AWS Backup plan {plan.name}: " + "; ".join(map(_describe_rule, rules)))
            uncopied = [r["ruleName"] for r in rules if not r.get("copyActions")]
            if uncopied:
                problems.append(f"{plan.name}: rules without a DR copy: {', '.join(uncopied)}")
            else:
                found.append(f"{plan.name}: every rule copies to the DR vault")
            selection = named.get(f"{plan.name}-selection")
            tags = _as_list(getattr(selection, "props", {}).get("selectionTags"))
            if any(t.get("key") == "backup-class" and t.get("value") == name for t in tags):
                found.append(f"{plan.name}: selects resources tagged backup-class={name}")
            else:
                problems.append(f"{plan.name}: no selection on backup-class={name}")
        if not plans:
            problems.append(f"no AWS Backup plan for backup-class={name}")

        checked = _audited_hours(resources, name)
        gap_note = None
        if checked is None:
            gap_note = f"AWS Backup Audit Manager does not check the {fmt_s(rpo_s)} RPO"
        elif checked * 3600 > rpo_s:
            covers = []
            if continuous:
                covers.append("continuous backup (PITR to the second, in-region)")
            covers += [
                f"{m.dataset} (worst case {fmt_s(m.rpo_s)})"
                for m in other
                if m.data_class == name and m.rpo_s is not None and m.rpo_s <= rpo_s
            ]
            audited = f"AWS audits recovery-point age in whole hours ({checked} h)"
            if covers:
                gap_note = f"{audited}; the {fmt_s(rpo_s)} RPO is covered by: " + "; ".join(covers)
            else:
                gap_note = f"{audited}; nothing declared covers the {fmt_s(rpo_s)} RPO"
                problems.append(gap_note)
        coverage[name] = {
            "mechanisms": found,
            "rpo_hours_checked": checked,
            "gap_note": gap_note,
            "problems": problems,
        }
    return coverage


# ---------------------------------------------------------------------------------------------
# Lag alarms: how an asynchronous database copy gets a region-loss bound.

LAG_ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
_ABOVE = ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")


def lag_alarm_bound(
    alarm: Resource | None, namespace: str, metric: str, dimension: str, region: str | None
) -> tuple[int | None, str]:
    """(bound in seconds or None, why) for an alarm on a copy's lag.

    The house rule for asynchronous copies (as for S3 replication without RTC): a lag alarm that
    pages is the declared bound, at its threshold. It only counts when it watches the right metric
    of the copy in its region, takes the maximum, fires above a threshold, notifies someone, and
    treats missing data as breaching (a copy or monitor that stops reporting is not in sync).
    """
    if alarm is None or alarm.type != LAG_ALARM_TYPE:
        return None, f"no {metric} alarm"
    props = _whole(dict(alarm.props))
    threshold = props.get("threshold")
    checks = [
        (
            (props.get("namespace"), props.get("metricName")) == (namespace, metric),
            f"watches {props.get('namespace')}/{props.get('metricName')}",
        ),
        (dimension in (props.get("dimensions") or {}), f"has no {dimension} dimension"),
        (
            region is None or props.get("region") == region,
            f"is in {props.get('region')}, not {region}",
        ),
        (props.get("statistic") == "Maximum", f"takes the {props.get('statistic')}"),
        (props.get("comparisonOperator") in _ABOVE, f"fires {props.get('comparisonOperator')}"),
        (isinstance(threshold, int | float) and threshold > 0, "has no threshold"),
        (bool(_as_list(props.get("alarmActions"))), "notifies no one"),
        (props.get("treatMissingData") == "breaching", "ignores missing data"),
    ]
    failed = [why for ok, why in checks if not ok]
    if failed:
        return None, f"{metric} alarm {', '.join(failed)}"
    return int(threshold), f"{metric} alarm at {fmt_s(int(threshold))}"


# ---------------------------------------------------------------------------------------------
# Database (components/postgres_backup.py): PITR window and worst-case RPO per backend.

POSTGRES_BACKUP_TYPE = "platform-dr:postgres_backup:PostgresBackup"
# What the supabase subscriber's lag monitor publishes (components/postgres_backup.py).
SUBSCRIPTION_LAG_NAMESPACE, SUBSCRIPTION_LAG_METRIC = "platform-dr", "SubscriptionLagSeconds"
RDS_LOG_UPLOAD_S = 300  # RDS uploads transaction logs to S3 every 5 minutes


def postgres_backup_mechanisms(resources: Sequence[Resource], objectives: Mapping) -> list:
    """The database under the critical class, with the data loss its settings imply.

    self-managed: archive-push writes each WAL segment to repo1 and to repo2 in the DR region, so
    the bound is archive_timeout + pgBackRest's push timeout (the same sum as
    components.pgbackrest_config.ArchiveTiming.worst_case_rpo_s, recomputed here from the
    declared values). rds: 5-minute log upload in-region, but cross-region automated-backup
    replication has no published lag bound, so none is claimed here (the DR read replica's lag
    alarm is ``dr_standby_mechanisms``' bound). supabase: the subscription's lag alarm in the DR
    region (``lag_alarm_bound``) when one is declared, else only the daily dump bounds a region
    loss.
    """
    named = by_name(resources)
    regions = _get(objectives, "regions", default={})
    found = []
    for component in (r for r in resources if r.type == POSTGRES_BACKUP_TYPE):
        props = _whole(dict(component.props))
        name, backend = component.name, props.get("backend")
        dataset = props.get("dataset", "database")
        window = props.get("pitrWindowDays")
        problems: list[str] = []
        if backend == "self-managed":
            timeout, push = props.get("archiveTimeoutS"), props.get("archivePushTimeoutS")
            rpo = timeout + push if timeout and push else None
            repos = {
                f"repo{i}": named.get(f"{name}-repo{i}-{regions.get(role)}")
                for i, role in ((1, "primary"), (2, "dr"))
            }
            locks = set()
            for repo, bucket in repos.items():
                lock = named.get(f"{bucket.name}-object-lock") if bucket else None
                retention = _get(getattr(lock, "props", {}), "rule", "defaultRetention")
                if bucket is None:
                    problems.append(f"{dataset}: no pgBackRest {repo} bucket")
                elif not bucket.props.get("objectLockEnabled") or not retention:
                    problems.append(f"{dataset}: {repo} bucket has no object lock")
                else:
                    locks.add(f"{retention.get('mode')} {_whole(retention.get('days'))} d")
            if rpo is None:
                problems.append(f"{dataset}: archive_timeout not declared")
            description = (
                f"{dataset} (self-managed, pgBackRest): repo1 {regions.get('primary')} + repo2 "
                f"{regions.get('dr')} (object lock {', '.join(sorted(locks)) or 'none'}), "
                f"PITR {window} d; archive_timeout {fmt_s(timeout)} + push timeout {fmt_s(push)} "
                f"= worst case {fmt_s(rpo)}"
            )
        elif backend == "rds":
            instance = named.get(f"{name}-instance")
            replication = [
                r
                for r in resources
                if r.type.endswith(":InstanceAutomatedBackupsReplication")
                and r.name.startswith(f"{name}-backups-")
            ]
            retention = _whole(_get(getattr(instance, "props", {}), "backupRetentionPeriod"))
            if instance is None:
                problems.append(f"{dataset}: no RDS instance")
            else:
                if not retention or (window and retention < window):
                    problems.append(
                        f"{dataset}: backup retention {retention} d is under the PITR window "
                        f"{window} d"
                    )
                if not instance.props.get("storageEncrypted"):
                    problems.append(f"{dataset}: RDS storage not encrypted")
            rpo = None
            if replication:
                where = "/".join(sorted(r.props.get("region", "?") for r in replication))
                copy = (
                    f"automated backups replicated to {where} (no published lag bound; "
                    "drctl verify measures it)"
                )
            else:
                copy = "NO cross-region copy of the automated backups"
                problems.append(f"{dataset}: automated backups are not replicated out of region")
            description = (
                f"{dataset} (rds): PITR {retention} d, logs shipped every "
                f"{fmt_s(RDS_LOG_UPLOAD_S)} in-region; {copy}"
            )
        elif backend == "supabase":
            has_sub = any(r.type.endswith("/subscription:Subscription") for r in resources)
            has_pub = any(r.type.endswith("/publication:Publication") for r in resources)
            if not (has_sub and has_pub):
                problems.append(f"{dataset}: no publication/subscription to a DR-region Postgres")
            dump_s = props.get("dumpIntervalS")
            lag_s, lag = lag_alarm_bound(
                named.get(f"{name}-subscription-lag"),
                SUBSCRIPTION_LAG_NAMESPACE,
                SUBSCRIPTION_LAG_METRIC,
                "Subscription",
                regions.get("dr"),
            )
            if lag_s is not None and has_sub:
                bound = f"lag bounded by the {lag} in {regions.get('dr')}"
            else:
                bound = f"lag not bounded: {lag}" if has_sub else "no subscription"
                lag_s = None
            known = [v for v in (lag_s, dump_s) if v]
            rpo = min(known) if known else None
            description = (
                f"{dataset} (supabase): hosted PITR in one region (add-on, checked by drctl "
                f"supabase check); logical replication to a DR-region subscriber ({bound}); "
                f"pg_dump every {fmt_s(dump_s)} to a replicated bucket"
            )
        else:
            continue
        found.append(Mechanism(dataset, "critical", description, rpo, True, problems))
    return found


MECHANISM_EXTRACTORS.append(postgres_backup_mechanisms)


# ---------------------------------------------------------------------------------------------
# DR standby (DrStandby component): pilot light or warm standby, sized from the RTOs.

DR_STANDBY_TYPE = "platform-dr:dr_standby:DrStandby"
WARM_STANDBY, PILOT_LIGHT = "warm-standby", "pilot-light"
ROUTE53_METRICS_REGION = "us-east-1"


def standby_mode(tightest_rto_s: int, pilot_light_recovery_s: int) -> str:
    """Warm standby when the tightest class RTO leaves no room for a pilot-light scale-up.

    The one place this decision lives: DrStandby calls it to size the DR region, and
    ``dr_standby_mechanisms`` calls it to check what was declared.
    """
    return WARM_STANDBY if tightest_rto_s <= pilot_light_recovery_s else PILOT_LIGHT


def dr_standby_mechanisms(resources: Sequence[Resource], objectives: Mapping) -> list[Mechanism]:
    """The DR standby of the database: its posture and reason, and what failover needs."""
    found = []
    named = by_name(resources)
    for component in (r for r in resources if r.type == DR_STANDBY_TYPE):
        props, name = component.props, component.name
        problems = []
        classes = objectives.get("classes") or {}
        recovery = props.get("pilotLightRecoveryS")
        if classes and recovery:
            tightest = min(classes.values(), key=lambda c: c["rto_s"])
            expected = standby_mode(tightest["rto_s"], recovery)
            if props.get("mode") != expected:
                problems.append(
                    f"DR standby is {props.get('mode')} but {tightest['name']} RTO "
                    f"{fmt_s(tightest['rto_s'])} needs {expected}"
                )
        roles = {}
        for role in ("primary", "secondary"):
            record = named.get(f"{name}-{role}")
            policies = _as_list(_get(record.props if record else None, "failoverRoutingPolicies"))
            roles[role] = bool(policies) and policies[0].get("type") == role.upper()
        if not all(roles.values()):
            problems.append("no PRIMARY/SECONDARY Route 53 failover records")
        check = named.get(f"{name}-primary-check")
        if check is None or not named[f"{name}-primary"].props.get("healthCheckId"):
            problems.append("the PRIMARY record has no health check")
        alarm = named.get(f"{name}-primary-unhealthy")
        if alarm is None or alarm.props.get("region") != ROUTE53_METRICS_REGION:
            problems.append("no health-check alarm in us-east-1, where Route 53 metrics live")
        elif not _as_list(alarm.props.get("alarmActions")):
            problems.append("the health-check alarm notifies no one")
        rpo, copy = None, ""
        if props.get("backend") == "rds":
            dr = props.get("drRegion")
            replica = named.get(f"{name}-replica")
            sound = False
            if replica is None or not replica.props.get("replicateSourceDb"):
                problems.append("no cross-region read replica")
            elif replica.props.get("region") != dr:
                problems.append("the read replica is not in the DR region")
            elif not replica.props.get("storageEncrypted"):
                problems.append("the read replica is not encrypted")
            else:
                sound = True
            if sound:
                # An asynchronous replica: its lag alarm is the only bound on a region loss.
                rpo, lag = lag_alarm_bound(
                    named.get(f"{name}-replica-lag"),
                    "AWS/RDS",
                    "ReplicaLag",
                    "DBInstanceIdentifier",
                    dr,
                )
                copy = (
                    f"; read replica in {dr}, {lag}"
                    if rpo is not None
                    else f"; read replica in {dr}, lag not bounded: {lag}"
                )
        description = (
            f"database (DR standby in {props.get('drRegion')}): {props.get('mode')}, because "
            f"{props.get('reason')}; Route 53 failover records with a health check{copy}"
        )
        found.append(
            Mechanism(
                "database", "critical", description, rpo, True, [f"{name}: {p}" for p in problems]
            )
        )
    return found


MECHANISM_EXTRACTORS.append(dr_standby_mechanisms)


def rds_encrypted_with_cmk(props: Mapping[str, Any]) -> list[str]:
    if props.get("storageEncrypted") is not True:
        return ["storage is not encrypted"]
    return [] if props.get("kmsKeyId") else ["storage is encrypted with the AWS managed key"]


def rds_keeps_pitr_window(props: Mapping[str, Any]) -> list[str]:
    # The spec's 7-day PITR; the stack's own window is checked by the database mechanism.
    days = _whole(props.get("backupRetentionPeriod")) or 0
    return [] if days >= 7 else [f"backup retention {days} d is under the spec's 7-day PITR"]


def rds_protected(props: Mapping[str, Any]) -> list[str]:
    problems = []
    if props.get("deletionProtection") is not True:
        problems.append("deletion protection is off")
    if props.get("publiclyAccessible") is True:
        problems.append("the instance is publicly accessible")
    if props.get("skipFinalSnapshot") is True:
        problems.append("deleting it would take no final snapshot")
    return problems


def rds_postgres_forces_tls(props: Mapping[str, Any]) -> list[str]:
    family = str(props.get("family") or "")
    if family and not family.startswith("postgres"):
        return []  # rds.force_ssl is a PostgreSQL parameter
    values = {p.get("name"): str(p.get("value")) for p in _as_list(props.get("parameters"))}
    return [] if values.get("rds.force_ssl") == "1" else ["rds.force_ssl is not 1"]


def rds_backup_copy_encrypted(props: Mapping[str, Any]) -> list[str]:
    return [] if props.get("kmsKeyId") else ["replicated backups have no customer key"]


RESOURCE_RULES += [
    ResourceRule(
        "rds-sse-cmk",
        "RDS storage is encrypted with a customer managed key.",
        "aws:rds/instance:Instance",
        rds_encrypted_with_cmk,
    ),
    ResourceRule(
        "rds-pitr-7d",
        "RDS keeps automated backups for at least 7 days.",
        "aws:rds/instance:Instance",
        rds_keeps_pitr_window,
    ),
    ResourceRule(
        "rds-protected",
        "RDS instances have deletion protection and a final snapshot, and are not public.",
        "aws:rds/instance:Instance",
        rds_protected,
    ),
    ResourceRule(
        "rds-force-ssl",
        "PostgreSQL parameter groups set rds.force_ssl=1.",
        "aws:rds/parameterGroup:ParameterGroup",
        rds_postgres_forces_tls,
    ),
    ResourceRule(
        "rds-backup-replication-cmk",
        "Automated backups replicated to another region are encrypted with a customer key.",
        "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication",
        rds_backup_copy_encrypted,
    ),
]


# ---------------------------------------------------------------------------------------------
# AWS semantics of the object-scale audit (S3 Inventory, Athena, Glue): policy/inventory_rules.py
# adds its resource rules and its mechanism extractor to the registries above.

if __package__:
    from . import inventory_rules  # noqa: E402,F401
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import inventory_rules  # type: ignore[no-redef]  # noqa: E402,F401
