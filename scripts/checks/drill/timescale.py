"""The drill's time scale and the mechanism intervals it scales, read from what prod declares.

At time scale N every objective *and* every mechanism interval is divided by N, so a run of a
few minutes stands for hours of production and an objective can be missed: a 15 min RPO becomes
9 s at N = 100, and so does a 300 s ``archive_timeout`` become 3 s. What does not scale is the
machine: restores, replay and promotion take the time they take here, which is why RTO
objectives stay meaningful only while N is moderate (docs/drill.md).

The intervals come from evaluating the real program for prod under Pulumi's mocks
(scripts/local/evaluate.py), the way ``drctl render`` and posture read it, and the rendered host
files are parsed by the same code posture and the policy pack use (policy/artefacts.py):

- ``archive_timeout`` from the rendered postgresql.conf fragment, and pgBackRest's push timeout
  (``archive-timeout`` as archive-push reads it) from the rendered ``pgbackrest.conf``;
- the backup schedule from the rendered systemd timers: the longest gap between backups reaching
  repo2 (the DR region), per level;
- how long detection takes and the DNS TTL from the declared Route 53 health check, its alarm and
  the failover records (``detection_from_declared``: the one place in the drill that knows how a
  health check turns into a detection delay).

A count (the health check's failure threshold, the alarm's evaluation periods) does not scale:
detection time scales through the intervals it multiplies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from policy import artefacts as art
from policy.recovery import PROBE_INTERVAL_S, ROUTE53_METRIC_PUBLICATION_S
from scripts.common import DrctlError, ExitCode

DEFAULT_TIME_SCALE = 100.0
MIN_TIME_SCALE, MAX_TIME_SCALE = 1.0, 3600.0

POSTGRES_CONF = "postgresql/conf.d/pgbackrest-archiving.conf"
DR_REPO = 2  # backup gaps are read for repo2, the repository that survives the primary region

HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
RECORD = "aws:route53/record:Record"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
# Route 53's own defaults (CreateHealthCheck): RequestInterval 30 s, FailureThreshold 3.
ROUTE53_DEFAULT_INTERVAL_S, ROUTE53_DEFAULT_THRESHOLD = 30, 3
ENDPOINT_CHECK_TYPES = ("TCP", "HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH")
# Postgres keeps archive_timeout in whole seconds; pgBackRest's archive-timeout takes 0.1 s steps.
MIN_ARCHIVE_TIMEOUT_S, MIN_PUSH_TIMEOUT_S = 1, 0.1


def check_time_scale(value: float) -> float:
    if not (MIN_TIME_SCALE <= value <= MAX_TIME_SCALE) or math.isnan(value):
        raise DrctlError(
            f"--time-scale {value:g} is not valid: a factor from {MIN_TIME_SCALE:g} (real time) "
            f"to {MAX_TIME_SCALE:g}",
            ExitCode.INVALID_CONFIG,
        )
    return float(value)


@dataclass(frozen=True)
class Detection:
    """How the loss of the primary is noticed, and how long that takes at most.

    ``poll_interval_s`` x ``failure_threshold`` is the health check turning unhealthy (Route 53
    then answers the SECONDARY record); the status reaches CloudWatch at the next publication
    (every ``publication_s``), and ``alarm_period_s`` x ``alarm_periods`` more is the alarm that
    pages whoever runs `drctl failover`. The worst case is the sum, as posture states it.
    """

    by: str
    poll_interval_s: float
    failure_threshold: int
    alarm_period_s: float
    alarm_periods: int
    alarm: str
    publication_s: float = 0.0

    @property
    def worst_case_s(self) -> float:
        return (
            self.poll_interval_s * self.failure_threshold
            + self.publication_s
            + self.alarm_period_s * self.alarm_periods
        )

    def scaled(self, factor: float) -> Detection:
        return replace(
            self,
            poll_interval_s=self.poll_interval_s / factor,
            alarm_period_s=self.alarm_period_s / factor,
            publication_s=self.publication_s / factor,
        )


def _num(inputs: Mapping[str, Any], key: str, default: float) -> float:
    value = inputs.get(key)
    return default if value is None else float(value)


def detection_from_declared(resources: Iterable[Any]) -> Detection:
    """The detection the stack declares for its primary database endpoint.

    Follows the PRIMARY failover record to its health check. An endpoint check (TCP, HTTP) polls
    at ``requestInterval`` and turns unhealthy after ``failureThreshold`` failures in a row; the
    CloudWatch alarm on its ``HealthCheckStatus`` pages after ``evaluationPeriods`` (or
    ``datapointsToAlarm``) periods. A ``CLOUDWATCH_METRIC`` check follows the alarm on the in-VPC
    probe's metric instead (components/health_probe.py): the probe runs every
    ``PROBE_INTERVAL_S`` and one failed run is a breaching datapoint, the alarm (which pages
    itself) needs its breaching periods, as posture states it. Change this function, and only
    this one, when the stack's health check changes kind.
    """
    resources = list(resources)
    checks = {r.id: r for r in resources if r.type == HEALTH_CHECK}
    primary = [
        r
        for r in resources
        if r.type == RECORD
        and any(p.get("type") == "PRIMARY" for p in r.inputs.get("failoverRoutingPolicies") or [])
    ]
    checked = [r for r in primary if r.inputs.get("healthCheckId") in checks]
    if not checked:
        raise DrctlError(
            "the stack declares no PRIMARY failover record with a health check: nothing would "
            "detect the loss of the primary database, so the drill cannot time detection",
            ExitCode.PRECONDITION_FAILED,
        )
    check = checks[checked[0].inputs["healthCheckId"]]
    kind = str(check.inputs.get("type", ""))
    alarms = [r for r in resources if r.type == METRIC_ALARM]
    if kind in ENDPOINT_CHECK_TYPES:
        watching = [
            a for a in alarms if (a.inputs.get("dimensions") or {}).get("HealthCheckId") == check.id
        ]
        alarm = watching[0] if watching else None
        return Detection(
            by=f"Route 53 {kind} health check {check.name}",
            poll_interval_s=_num(check.inputs, "requestInterval", ROUTE53_DEFAULT_INTERVAL_S),
            failure_threshold=int(
                _num(check.inputs, "failureThreshold", ROUTE53_DEFAULT_THRESHOLD)
            ),
            alarm_period_s=_num(alarm.inputs, "period", 0) if alarm else 0.0,
            alarm_periods=_alarm_periods(alarm) if alarm else 0,
            alarm=alarm.name if alarm else "none declared: nobody is paged",
            # Route 53 publishes HealthCheckStatus to CloudWatch once a minute (policy.recovery).
            publication_s=float(ROUTE53_METRIC_PUBLICATION_S) if alarm else 0.0,
        )
    if kind == "CLOUDWATCH_METRIC":
        name = check.inputs.get("cloudwatchAlarmName")
        named = [a for a in alarms if name in (a.inputs.get("name"), a.name)]
        if not named:
            raise DrctlError(
                f"health check {check.name} follows alarm {name!r}, which the stack does not "
                "declare",
                ExitCode.PRECONDITION_FAILED,
            )
        alarm = named[0]
        return Detection(
            by=f"Route 53 CLOUDWATCH_METRIC health check {check.name} on alarm {alarm.name}",
            poll_interval_s=float(PROBE_INTERVAL_S),
            failure_threshold=1,
            alarm_period_s=_num(alarm.inputs, "period", 60),
            alarm_periods=_alarm_periods(alarm),
            alarm=alarm.name,
        )
    raise DrctlError(
        f"health check {check.name} is of type {kind!r}; the drill knows how "
        f"{', '.join(ENDPOINT_CHECK_TYPES)} and CLOUDWATCH_METRIC checks detect a failure",
        ExitCode.PRECONDITION_FAILED,
    )


def _alarm_periods(alarm: Any) -> int:
    inputs = alarm.inputs
    return int(_num(inputs, "datapointsToAlarm", _num(inputs, "evaluationPeriods", 1)))


def dns_ttl_from_declared(resources: Iterable[Any]) -> float:
    """The longest TTL of the database failover records (what a resolver may cache)."""
    ttls = [
        float(r.inputs.get("ttl") or 0)
        for r in resources
        if r.type == RECORD and r.inputs.get("failoverRoutingPolicies")
    ]
    if not ttls:
        raise DrctlError(
            "the stack declares no failover records for the database",
            ExitCode.PRECONDITION_FAILED,
        )
    return max(ttls)


@dataclass(frozen=True)
class Mechanisms:
    """The mechanism intervals the drill runs with, in seconds; ``sources`` says where each was
    read. ``scaled`` divides every interval by the time scale."""

    archive_timeout_s: float
    push_timeout_s: float
    detection: Detection
    dns_ttl_s: float
    backup_interval_s: Mapping[str, float | None]
    sources: Mapping[str, str]

    def scaled(self, factor: float) -> Mechanisms:
        return replace(
            self,
            archive_timeout_s=self.archive_timeout_s / factor,
            push_timeout_s=self.push_timeout_s / factor,
            detection=self.detection.scaled(factor),
            dns_ttl_s=self.dns_ttl_s / factor,
            backup_interval_s={
                k: None if v is None else v / factor for k, v in self.backup_interval_s.items()
            },
        )

    @property
    def effective_archive_timeout_s(self) -> int:
        """What Postgres can run: whole seconds, rounded up (never faster than scaled)."""
        return max(MIN_ARCHIVE_TIMEOUT_S, math.ceil(self.archive_timeout_s - 1e-9))

    @property
    def effective_push_timeout_s(self) -> float:
        return max(MIN_PUSH_TIMEOUT_S, math.ceil(self.push_timeout_s * 10 - 1e-9) / 10)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["detection"]["worst_case_s"] = self.detection.worst_case_s
        return record


def mechanisms_from_evaluation(evaluation: Any) -> Mechanisms:
    """Read every interval from one evaluation of the stack (``scripts.local.evaluate``)."""
    artefacts = dict(evaluation.outputs.get("databaseArtefacts") or {})
    archive = art.archiving(artefacts)
    if archive.archive_timeout_s is None or archive.push_timeout_s is None:
        raise DrctlError(
            f"stack {evaluation.stack}: the rendered host files give no archive timing the "
            f"local drill can run ({'; '.join(archive.problems) or 'no databaseArtefacts'}); "
            "the drill runs the self-managed backend's rendered files",
            ExitCode.PRECONDITION_FAILED,
        )
    jobs, _ = art.scheduled_jobs(artefacts)
    where = f"Pulumi.{evaluation.stack}.yaml, evaluated under mocks"
    return Mechanisms(
        archive_timeout_s=archive.archive_timeout_s,
        push_timeout_s=archive.push_timeout_s,
        detection=detection_from_declared(evaluation.resources),
        dns_ttl_s=dns_ttl_from_declared(evaluation.resources),
        backup_interval_s=art.backup_gaps(jobs, DR_REPO, "systemd/"),
        sources={
            "archive_timeout_s": f"{where}: the rendered postgresql.conf fragment",
            "push_timeout_s": f"{where}: the rendered {art.PGBACKREST_CONF}, as archive-push "
            "reads it",
            "detection": f"{where}: the PRIMARY failover record's health check and its alarm",
            "dns_ttl_s": f"{where}: TTL of the failover records",
            "backup_interval_s": f"{where}: longest gap between backups reaching repo{DR_REPO} "
            "in the rendered systemd timers",
        },
    )
