"""The database under the critical class: what bounds the writes a region loss takes, per backend.

Registered in ``rules.MECHANISM_EXTRACTORS`` when imported (rules.py imports it at its end), so
the CrossGuard pack and ``drctl posture`` apply the same extractors. Every bound is a
``bounds.Bound``: enforced ones make the class verdict, alarms are shown with their detection
delay and never become the declared worst case.

- **self-managed**: the bound is read from the files the primary's host receives (the
  component's ``artefacts`` output, parsed by policy/artefacts.py): archive_timeout from the
  postgresql.conf fragment, archive-timeout (the push timeout) and the repositories from
  pgbackrest.conf, and the backup timers and cron lines. Enforced: archive_timeout + push timeout,
  when archive-push writes a repository in another region. A synchronous standby named in
  postgresql.conf is a ``synchronous`` bound of 0 s.
- **rds**: cross-region automated-backup replication has no published lag bound, and the DR read
  replica is asynchronous: nothing *enforces* a region-loss bound, so the critical class is not
  met on this backend unless something synchronous is added. The replica's lag alarm detects.
- **supabase**: the daily logical dump, read from its rendered timers and cron lines, is a
  ``schedule`` bound; the subscription's lag alarm only detects.
- **DR standby** (every backend): ``drctl failover`` refuses to promote a standby whose measured
  lag exceeds the critical RPO unless ``--accept-data-loss``. That is a *guard*
  (``bounds.GUARD``), shown but never counted: on a real region loss the writes behind the lag are
  gone with the primary, and refusing only makes the operator wait for a region that may not come
  back. It needs a sound standby in the DR region.

Standard library only: the CrossGuard pack loads this file standalone from inside policy/.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

if __package__:
    from . import artefacts as art
    from . import rules
    from .bounds import DETECTED, Bound, alarm_detection_s
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import artefacts as art  # type: ignore[no-redef]
    import rules  # type: ignore[no-redef]
    from bounds import DETECTED, Bound, alarm_detection_s  # type: ignore[no-redef]

Resource, Mechanism = rules.Resource, rules.Mechanism
_get, _whole, _as_list, by_name, fmt_s = (
    rules._get,
    rules._whole,
    rules._as_list,
    rules.by_name,
    rules.fmt_s,
)

# What the supabase subscriber's lag monitor publishes (components/postgres_backup.py).
SUBSCRIPTION_LAG_NAMESPACE, SUBSCRIPTION_LAG_METRIC = "platform-dr", "SubscriptionLagSeconds"
RDS_LOG_UPLOAD_S = 300  # RDS uploads transaction logs to S3 every 5 minutes
# RDS sends its metrics to CloudWatch in 1-minute periods (Amazon RDS User Guide, "Monitoring
# Amazon RDS metrics with Amazon CloudWatch": https://docs.aws.amazon.com/AmazonRDS/latest/
# UserGuide/monitoring-cloudwatch.html).
RDS_METRIC_PUBLICATION_S = 60
# The application_name the DR standby connects with (components/dr_standby.py
# render_standby_config): a synchronous standby only bounds a region loss if it is this one.
DR_STANDBY_APPLICATION_NAME = "dr_standby"
LAG_ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
_ABOVE = ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")
BACKUP_SCHEDULE_KEYS = {"full": "full_s", "diff": "differential_s", "incr": "log_backup_s"}


def lag_alarm(
    alarm: Resource | None,
    namespace: str,
    metric: str,
    dimension: str,
    region: str | None,
    publication_s: int,
) -> tuple[Bound | None, str]:
    """(a detected Bound, why) for an alarm on a copy's lag; (None, why) when it cannot page.

    It pages only when it watches the right metric of the copy in its region, takes the maximum,
    fires above a threshold, notifies someone, and treats missing data as breaching (a copy or
    monitor that stops reporting is not in sync). It detects; it bounds nothing.
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
    detection = alarm_detection_s(props, publication_s)
    via = f"{metric} alarm in {props.get('region')} at {fmt_s(int(threshold))}"
    return Bound(DETECTED, int(threshold), via, detection_s=detection), via


def _detected_text(bound: Bound | None, why: str) -> str:
    return bound.describe() if bound else f"detected: nothing ({why})"


# ---------------------------------------------------------------------------------------------
# PostgresBackup


def _self_managed(
    name: str, dataset: str, props: Mapping, named: Mapping, objectives: Mapping
) -> tuple[list[Bound], list[str], str]:
    regions = _get(objectives, "regions", default={})
    primary = regions.get("primary")
    files = props["artefacts"]
    found: list[Bound] = []
    problems = []
    archive = art.archiving(files)
    problems += [f"{dataset}: {p}" for p in archive.problems]
    away = [r for r in archive.repos if r.type == "s3" and r.region and r.region != primary]
    if archive.repos and not away:
        problems.append(
            f"{dataset}: pgbackrest.conf archives only to {primary} (or to local disk): the "
            "archive does not survive losing the primary region"
        )
    if not archive.problems and away:
        loss = math.ceil(archive.archive_timeout_s + archive.push_timeout_s)
        where = ", ".join(f"repo{r.index} in {r.region}" for r in away)
        found.append(
            Bound(
                "archive",
                loss,
                f"archive-push to {where}: archive_timeout {fmt_s(archive.archive_timeout_s)} "
                f"(postgresql.conf) + archive-timeout {fmt_s(archive.push_timeout_s)} "
                "(pgbackrest.conf)",
                holds_while="each push succeeds within its timeout (a failing push is retried "
                "and its WAL waits on the primary, lost with it: verify's "
                "pgbackrest-archive-lag measures that; no alarm watches it)",
            )
        )
    synchronous = art.synchronous_standbys(files)
    if synchronous.region_safe(DR_STANDBY_APPLICATION_NAME):
        found.append(
            Bound(
                "synchronous",
                0,
                f"synchronous_standby_names = '{synchronous.text}': a commit returns once the "
                f"DR standby ({DR_STANDBY_APPLICATION_NAME}) has its WAL",
                holds_while="the DR standby is connected (without it, commits wait)",
                price="a round trip to the DR region on every commit; writes stop while the DR "
                "standby is unreachable",
            )
        )
    problems += _schedule_problems(dataset, files, archive, objectives)
    locks = set()
    for i, role in ((1, "primary"), (2, "dr")):
        bucket = named.get(f"{name}-repo{i}-{regions.get(role)}")
        lock = named.get(f"{bucket.name}-object-lock") if bucket else None
        retention = _get(getattr(lock, "props", {}), "rule", "defaultRetention")
        if bucket is None:
            problems.append(f"{dataset}: no pgBackRest repo{i} bucket")
        elif not bucket.props.get("objectLockEnabled") or not retention:
            problems.append(f"{dataset}: repo{i} bucket has no object lock")
        else:
            locks.add(f"{retention.get('mode')} {_whole(retention.get('days'))} d")
    repos = (
        " + ".join(f"repo{r.index} {r.region or r.type}" for r in archive.repos) or "no repository"
    )
    description = (
        f"{dataset} (self-managed, pgBackRest, as the host's files say): {repos} (object lock "
        f"{', '.join(sorted(locks)) or 'none'}), PITR {props.get('pitrWindowDays')} d"
    )
    return found, problems, description


def _schedule_problems(
    dataset: str, files: Mapping[str, str], archive: art.Archiving, objectives: Mapping
) -> list[str]:
    """Every repository gets each backup level at least as often as the schedule asks, through
    the timers and through the cron lines (a host runs one or the other)."""
    schedule = _get(objectives, "schedule", default={})
    jobs, problems = art.scheduled_jobs(files)
    problems = [f"{dataset}: {p}" for p in problems]
    sources = sorted({j.source.split("/", 1)[0] + "/" for j in jobs if j.kind.startswith("backup")})
    if not sources:
        return [*problems, f"{dataset}: no backup timer or cron line is rendered for the host"]
    for repo in archive.repos:
        for via in sources:
            gaps = art.backup_gaps(jobs, repo.index, via)
            for level, gap in gaps.items():
                wanted = schedule.get(BACKUP_SCHEDULE_KEYS[level])
                if gap is None:
                    problems.append(
                        f"{dataset}: no {level} backup reaches repo{repo.index} ({via})"
                    )
                elif wanted and gap > wanted:
                    problems.append(
                        f"{dataset}: {via} backs repo{repo.index} up at {level} level at most "
                        f"every {fmt_s(gap)}; the schedule asks for {fmt_s(wanted)}"
                    )
    return problems


def _supabase(
    name: str,
    dataset: str,
    props: Mapping,
    resources: Sequence[Resource],
    named: Mapping,
    objectives: Mapping,
) -> tuple[list[Bound], list[str], str]:
    regions = _get(objectives, "regions", default={})
    files = props["artefacts"]
    found: list[Bound] = []
    problems = []
    has_sub = any(r.type.endswith("/subscription:Subscription") for r in resources)
    has_pub = any(r.type.endswith("/publication:Publication") for r in resources)
    if not (has_sub and has_pub):
        problems.append(f"{dataset}: no publication/subscription to a DR-region Postgres")
    jobs, unreadable = art.scheduled_jobs(files)
    problems += [f"{dataset}: {p}" for p in unreadable]
    dumps = [j for j in jobs if j.kind == "dump"]
    gaps = [
        art.max_gap_s(s for j in dumps if j.source.startswith(via) for s in j.schedules)
        for via in sorted({j.source.split("/", 1)[0] + "/" for j in dumps})
    ]
    if not dumps or None in gaps:
        problems.append(f"{dataset}: no scheduled logical dump is rendered for the host")
        dump = "no scheduled dump"
    else:
        gap = max(gaps)
        # A dump that started one interval ago may still be running when the region goes: the
        # newest complete one can be two intervals old, then RTC replicates it out.
        found.append(
            Bound(
                "schedule",
                2 * gap + rules.RTC_SLA_S,
                f"pg_dump every {fmt_s(gap)} (timers and cron) into the replicated dump bucket",
                holds_while="each dump finishes within its interval and replicates under RTC",
            )
        )
        dump = f"pg_dump every {fmt_s(gap)} to a replicated bucket"
    monitor = [j for j in jobs if j.kind == "lag-monitor"]
    publication = art.max_gap_s(s for j in monitor for s in j.schedules) if monitor else None
    alarm, why = lag_alarm(
        named.get(f"{name}-subscription-lag"),
        SUBSCRIPTION_LAG_NAMESPACE,
        SUBSCRIPTION_LAG_METRIC,
        "Subscription",
        regions.get("dr"),
        publication or 0,
    )
    if alarm is not None and publication is None:
        alarm, why = None, f"{why}, but no lag monitor timer publishes the metric"
    if alarm is not None:
        found.append(alarm)
    description = (
        f"{dataset} (supabase): hosted PITR in one region (add-on, checked by drctl supabase "
        f"check); logical replication to a DR-region subscriber; {dump}; "
        f"{_detected_text(alarm, why)}"
    )
    return found, problems, description


def _rds(
    name: str, dataset: str, props: Mapping, resources: Sequence[Resource], named: Mapping
) -> tuple[list[Bound], list[str], str]:
    window = props.get("pitrWindowDays")
    instance = named.get(f"{name}-instance")
    replication = [
        r
        for r in resources
        if r.type.endswith(":InstanceAutomatedBackupsReplication")
        and r.name.startswith(f"{name}-backups-")
    ]
    retention = _whole(_get(getattr(instance, "props", {}), "backupRetentionPeriod"))
    problems = []
    if instance is None:
        problems.append(f"{dataset}: no RDS instance")
    else:
        if not retention or (window and retention < window):
            problems.append(
                f"{dataset}: backup retention {retention} d is under the PITR window {window} d"
            )
        if not instance.props.get("storageEncrypted"):
            problems.append(f"{dataset}: RDS storage not encrypted")
    if replication:
        where = "/".join(sorted(r.props.get("region", "?") for r in replication))
        copy = (
            f"automated backups replicated to {where} (no published lag bound; drctl verify "
            "measures it)"
        )
    else:
        copy = "NO cross-region copy of the automated backups"
        problems.append(f"{dataset}: automated backups are not replicated out of region")
    description = (
        f"{dataset} (rds): PITR {retention} d, logs shipped every {fmt_s(RDS_LOG_UPLOAD_S)} "
        f"in-region; {copy}"
    )
    return [], problems, description


def rendered_files(component: Resource) -> dict[str, str]:
    """The component's rendered host files (path -> text), each value read through the
    resource's own mapping, so the pack's unknown-checking properties see every read."""
    files = component.props.get("artefacts") or {}
    return {path: files[path] for path in files} if isinstance(files, Mapping) else {}


def postgres_backup_mechanisms(resources: Sequence[Resource], objectives: Mapping) -> list:
    """The database under the critical class, with the bounds its rendered settings enforce."""
    named = by_name(resources)
    found = []
    for component in (r for r in resources if r.type == rules.POSTGRES_BACKUP_TYPE):
        props = _whole(dict(component.props))
        # Read through the resource itself: in the pack, a file not known during a preview
        # raises the SDK's UnknownValueError (an advisory) instead of being parsed as text.
        props["artefacts"] = rendered_files(component)
        name, backend = component.name, props.get("backend")
        dataset = props.get("dataset", "database")
        if backend == "self-managed":
            bounds, problems, text = _self_managed(name, dataset, props, named, objectives)
        elif backend == "rds":
            bounds, problems, text = _rds(name, dataset, props, resources, named)
        elif backend == "supabase":
            bounds, problems, text = _supabase(name, dataset, props, resources, named, objectives)
        else:
            continue
        found.append(Mechanism(dataset, "critical", text, None, True, problems, bounds))
    return found


# ---------------------------------------------------------------------------------------------
# DrStandby: its posture, what failover needs, and the failover refusal it makes possible


def standby_target(
    props: Mapping, name: str, resources: Sequence[Resource], named: Mapping
) -> tuple[str | None, list[str], tuple[Bound | None, str]]:
    """(what a failover promotes or None, why not, the standby's lag alarm) per backend."""
    dr = props.get("drRegion")
    problems: list[str] = []
    backend = props.get("backend")
    if backend == "rds":
        replica = named.get(f"{name}-replica")
        if replica is None or not replica.props.get("replicateSourceDb"):
            problems.append("no cross-region read replica")
        elif replica.props.get("region") != dr:
            problems.append("the read replica is not in the DR region")
        elif not replica.props.get("storageEncrypted"):
            problems.append("the read replica is not encrypted")
        alarm = lag_alarm(
            named.get(f"{name}-replica-lag"),
            "AWS/RDS",
            "ReplicaLag",
            "DBInstanceIdentifier",
            dr,
            RDS_METRIC_PUBLICATION_S,
        )
        return (None if problems else f"read replica in {dr}"), problems, alarm
    no_alarm = (None, "no lag alarm on the standby")
    if backend == "self-managed":
        slot = any(
            r.type.endswith("/physicalReplicationSlot:PhysicalReplicationSlot") for r in resources
        )
        address = named.get(f"{name}-db-address")
        if not slot:
            problems.append("no physical replication slot for the DR standby")
        if address is not None and address.props.get("region") != dr:
            problems.append("the DR standby's address is not in the DR region")
        return (None if problems else f"streaming standby in {dr}"), problems, no_alarm
    if backend == "supabase":
        if not any(r.type.endswith("/subscription:Subscription") for r in resources):
            problems.append("no DR-region subscriber")
        return (None if problems else f"logical subscriber in {dr}"), problems, no_alarm
    return None, [f"unknown backend {backend!r}"], no_alarm


def dr_standby_mechanisms(resources: Sequence[Resource], objectives: Mapping) -> list[Mechanism]:
    """The DR standby of the database: its posture and reason, what failover needs, and the
    failover refusal at the critical RPO (the threshold ``drctl failover`` applies; a guard)."""
    found = []
    named = by_name(resources)
    classes = objectives.get("classes") or {}
    rpo = _get(classes, "critical", "rpo_s")
    for component in (r for r in resources if r.type == rules.DR_STANDBY_TYPE):
        props, name = component.props, component.name
        problems = []
        recovery = props.get("pilotLightRecoveryS")
        if classes and recovery:
            tightest = min(classes.values(), key=lambda c: c["rto_s"])
            expected = rules.standby_mode(tightest["rto_s"], recovery)
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
        if alarm is None or alarm.props.get("region") != rules.ROUTE53_METRICS_REGION:
            problems.append("no health-check alarm in us-east-1, where Route 53 metrics live")
        elif not _as_list(alarm.props.get("alarmActions")):
            problems.append("the health-check alarm notifies no one")
        target, unsound, (lag, why) = standby_target(props, name, resources, named)
        problems += unsound
        bounds: list[Bound] = []
        if target and rpo and all(roles.values()):
            bounds.append(
                Bound(
                    "failover-refusal",
                    int(rpo),
                    f"drctl failover refuses to promote the {target} while its measured lag "
                    f"exceeds the critical RPO {fmt_s(rpo)}, unless --accept-data-loss",
                    price="RTO: while the lag is above the RPO the failover waits; if the "
                    "primary is gone for good, the loss is the lag, now an explicit decision",
                )
            )
        if lag is not None:
            bounds.append(lag)
        description = (
            f"database (DR standby in {props.get('drRegion')}): {props.get('mode')}, because "
            f"{props.get('reason')}; Route 53 failover records with a health check; "
            f"{target or 'no sound standby'}; {_detected_text(lag, why)}"
        )
        found.append(
            Mechanism(
                "database",
                "critical",
                description,
                None,
                True,
                [f"{name}: {p}" for p in problems],
                bounds,
            )
        )
    return found


rules.MECHANISM_EXTRACTORS += [postgres_backup_mechanisms, dr_standby_mechanisms]

__all__: list[Any] = [
    "DR_STANDBY_APPLICATION_NAME",
    "dr_standby_mechanisms",
    "lag_alarm",
    "postgres_backup_mechanisms",
]
