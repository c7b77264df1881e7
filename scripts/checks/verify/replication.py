"""S3 replication: the live rules field by field against what the program declares, and their
CloudWatch metrics against the class RPO.

What the program declares comes from the same function the component uses
(components/replicated_bucket.py ``replication_rules``), filled with the real bucket and key ARNs
of the stack outputs (``bucketArns``, ``bucketKeyArns``), so a rule edited in the console, a
missing destination, a dropped delete-marker or replica-modification setting, a replica key that
is not the DR copy's, or RTC or metrics switched off, each fails its rule's check.

Metrics: ``ReplicationLatency`` (maximum) and ``OperationsFailedReplication`` (sum) over the last
hour. No datapoints means nothing was measured: UNKNOWN, never a pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from components.objectives import TAG_CLASS
from components.replicated_bucket import replication_rules, uses_rtc
from scripts.checks.verify.model import (
    Check,
    CheckGroup,
    Context,
    MissingOutput,
    Status,
    error_detail,
    fmt_s,
    need,
    passed,
)

METRIC_WINDOW_S = 3600  # how far back the replication metrics are read
# The pulumi-aws argument names that do not camel-case into the S3 API's names.
_API_NAMES = {"id": "ID", "replica_kms_key_id": "ReplicaKmsKeyID"}
# Compared apart: the order of rules (Priority) is the program's own; Filter is checked for V2.
_NOT_COMPARED = {"Priority", "Filter"}


def _bucket_class(s3, bucket: str) -> str:
    try:
        tags = s3.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
    except ClientError:
        return "unknown"
    return next((t["Value"] for t in tags if t["Key"] == TAG_CLASS), "unknown")


def api_shape(value: Any) -> Any:
    """A rule as pulumi-aws takes it (snake_case) in the S3 API's names (PascalCase)."""
    if isinstance(value, Mapping):
        return {
            _API_NAMES.get(k, "".join(p.capitalize() for p in k.split("_"))): api_shape(v)
            for k, v in value.items()
        }
    return value


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        found: dict[str, Any] = {}
        for key, item in value.items():
            found |= _leaves(item, f"{prefix}.{key}" if prefix else key)
        return found
    return {prefix: value}


def rule_differences(expected: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Every declared field the live rule does not carry with the declared value."""
    want = {
        k: v
        for k, v in _leaves(api_shape(expected)).items()
        if k.split(".")[0] not in _NOT_COMPARED
    }
    have = _leaves(live)
    wrong = [
        f"{path} is {have.get(path, 'absent')!r}, the program declares {value!r}"
        for path, value in sorted(want.items())
        if have.get(path) != value
    ]
    live_filter = live.get("Filter")
    if live_filter is None:
        wrong.append("not a V2 rule (no Filter): delete markers and RTC need V2")
    elif live_filter.get("Prefix") or live_filter.get("Tag") or live_filter.get("And"):
        wrong.append(f"Filter {live_filter!r} limits the rule; the program replicates everything")
    return wrong


def _metric(cloudwatch, metric: str, statistic: str, dims, now: dt.datetime) -> float | None:
    """Max (or sum) of an S3 replication metric over the window; None when it has no data."""
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/S3",
        MetricName=metric,
        Dimensions=dims,
        StartTime=now - dt.timedelta(seconds=METRIC_WINDOW_S),
        EndTime=now,
        Period=300,
        Statistics=[statistic],
    ).get("Datapoints", [])
    values = [p[statistic] for p in points]
    if not values:
        return None
    return max(values) if statistic == "Maximum" else sum(values)


def _metrics_check(ctx: Context, cls: str, rpo, source: str, destination: str, rule_id: str):
    dims = [
        {"Name": "SourceBucket", "Value": source},
        {"Name": "DestinationBucket", "Value": destination},
        {"Name": "RuleId", "Value": rule_id},
    ]
    cloudwatch = ctx.clients("cloudwatch", ctx.objectives.regions.primary)
    latency = _metric(cloudwatch, "ReplicationLatency", "Maximum", dims, ctx.now)
    failed = _metric(cloudwatch, "OperationsFailedReplication", "Sum", dims, ctx.now)
    missing = [
        name
        for name, value in (
            ("ReplicationLatency", latency),
            ("OperationsFailedReplication", failed),
        )
        if value is None
    ]
    if failed:
        status = Status.FAIL
    elif missing:
        status = Status.UNKNOWN  # nothing measured is not a pass
    else:
        status = passed(rpo is not None and latency <= rpo)
    detail = (
        f"last {fmt_s(METRIC_WINDOW_S)}: max latency "
        + ("no datapoints" if latency is None else fmt_s(latency))
        + ", "
        + ("no datapoints" if failed is None else f"{int(failed)} failed operation(s)")
    )
    if missing:
        detail += (
            f"; no {' or '.join(missing)} datapoints: nothing replicated in the window, or the "
            "rule's metrics are off"
        )
    return Check(
        "s3-replication-metrics",
        cls,
        f"{source} -> {destination}",
        latency,
        rpo,
        status,
        detail,
    )


def replication_checks(ctx: Context) -> list[Check]:
    primary = ctx.objectives.regions.primary
    checks = []
    for dataset, copies in sorted(need(ctx.outputs, "buckets").items()):
        source = need(ctx.outputs, "buckets", dataset, primary)
        arns = need(ctx.outputs, "bucketArns", dataset)
        keys = need(ctx.outputs, "bucketKeyArns", dataset)
        s3 = ctx.clients("s3", primary)
        cls = _bucket_class(s3, source)
        objective = ctx.objectives.classes.get(cls)
        rpo = objective.rpo_s if objective else None
        order = list(ctx.objectives.regions.replicas)
        replicas = sorted((r for r in copies if r != primary), key=lambda r: (order + [r]).index(r))
        for region in replicas:
            for output, values in (("bucketArns", arns), ("bucketKeyArns", keys)):
                if not values.get(region):
                    raise MissingOutput(f"{output}.{dataset}.{region}")
        expected = replication_rules(replicas, arns, keys, uses_rtc(objective))
        try:
            config = s3.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]
        except ClientError as err:
            checks.append(
                Check("s3-replication", cls, source, None, None, Status.FAIL, error_detail(err))
            )
            continue
        live = {r.get("ID"): r for r in config.get("Rules", [])}
        absent = [
            e["destination"]["bucket"]
            for e in expected
            if live.get(e["id"], {}).get("Status") != "Enabled"
        ]
        checks.append(
            Check(
                "s3-replication",
                cls,
                source,
                len(expected) - len(absent),
                len(expected),
                passed(not absent and rpo is not None),
                f"enabled rules to {', '.join(sorted(r for r in live if r)) or 'nothing'}"
                + (f"; missing {', '.join(b.split(':::')[-1] for b in absent)}" if absent else "")
                # Untagged, the bucket has no objective here and AWS Backup never selects it.
                + ("" if rpo is not None else f"; no {TAG_CLASS} tag naming a data class"),
            )
        )
        for rule in expected:
            destination = str(rule["destination"]["bucket"]).split(":::")[-1]
            target = f"{source} -> {destination}"
            found = live.get(rule["id"])
            if found is None:
                continue  # reported as missing above
            wrong = rule_differences(rule, found)
            checks.append(
                Check(
                    "s3-replication-rule",
                    cls,
                    target,
                    len(wrong),
                    0,
                    passed(not wrong),
                    "; ".join(wrong)
                    or f"rule {rule['id']} as declared: delete markers, replica modifications, "
                    "KMS objects to the replica key, "
                    + ("RTC 15 min, " if uses_rtc(objective) else "")
                    + "metrics",
                )
            )
            checks.append(_metrics_check(ctx, cls, rpo, source, destination, rule["id"]))
    return checks


S3_REPLICATION = CheckGroup(
    "s3-replication", replication_checks, needs=("buckets", "bucketArns", "bucketKeyArns")
)
