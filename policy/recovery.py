"""Can each recovery path finish inside the RTO? Declared sizes, measured throughput, per path.

``drctl posture`` states, for the database (critical class), the time each recovery path needs:

- **promote the DR standby** (streaming standby, RDS read replica or logical subscriber):
  detection (the Route 53 health check's request interval x failure threshold, then the alarm on
  it: its period x datapoints, plus the minute Route 53 takes to publish the metric), the
  pilot-light scale-up when the DR region is a pilot light, the promotion (measured), and the
  failover record's TTL (resolvers keep the old answer that long);
- **PITR from repo1 / repo2** (self-managed): detection, scale-up, pgBackRest restore of the
  declared database size at the measured restore throughput, then replay of the WAL written since
  the newest backup reaching that repository (the declared WAL rate x the longest gap between
  backups in the host's timers and cron lines) at the measured replay throughput, then the TTL;
- **RDS**: PITR in the primary region, a restore from the automated backups replicated to the DR
  region, and an AWS Backup restore of the recovery point copied to the DR vault; **supabase**:
  hosted PITR and pg_restore of the newest dump in the DR region.

Throughput comes from evidence: the JSON ``bench/restore.py`` writes (or the monthly restore
test, in the same format), with the command, the date, the host and the figures. Missing, stale
(older than the restore-test interval plus a week) or unreadable evidence makes every figure that
needs it UNKNOWN, never silently met. Neither the operator's response time nor the validation
after promotion is modelled; each path says so.

The class verdict for the RTO: met when a path that survives losing the primary region fits the
RTO; NOT MET when none does (or none survives); UNKNOWN when no surviving path fits and the
evidence is missing for at least one of them.

Standard library only (it sits beside the rules), but the CrossGuard pack does not run it: the
pack has no evidence file. Posture passes the evidence in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

if __package__:
    from . import artefacts as art
    from . import database, rules
    from .backup_coverage import BACKUP_PLAN_TYPE
    from .bounds import alarm_detection_s
else:  # pragma: no cover - the pack never imports this module
    import artefacts as art  # type: ignore[no-redef]
    import database  # type: ignore[no-redef]
    import rules  # type: ignore[no-redef]
    from backup_coverage import BACKUP_PLAN_TYPE  # type: ignore[no-redef]
    from bounds import alarm_detection_s  # type: ignore[no-redef]

Resource = rules.Resource
EVIDENCE_SCHEMA = "platform-dr/restore-evidence/1"
EVIDENCE_GRACE_S = 7 * 86400  # a restore test may run a week late before its figures go stale
# Route 53 publishes health-check status to CloudWatch every minute (Route 53 Developer Guide,
# "Monitoring health check status by using CloudWatch": https://docs.aws.amazon.com/Route53/
# latest/DeveloperGuide/monitoring-health-checks.html).
ROUTE53_METRIC_PUBLICATION_S = 60
PROBE_INTERVAL_S = 60  # the primary probe's timer (components/health_probe.py: OnCalendar=minutely)
MET, NOT_MET, UNKNOWN = "met", "not met", "unknown"
# Evidence figures, what they measure, and which paths need them.
FIGURES = {
    "restore_bytes_per_s": "pgBackRest restore throughput (bytes of database per second)",
    "replay_bytes_per_s": "WAL replay throughput during recovery, archive-get included",
    "promotion_s": "promotion of a streaming standby (pg_ctl promote, until it accepts writes)",
    "pg_restore_bytes_per_s": "pg_restore throughput of a custom-format dump",
    "rds_restore_bytes_per_s": "RDS point-in-time restore throughput (from a restore test)",
    "aws_backup_restore_bytes_per_s": "AWS Backup restore of an RDS recovery point (from the "
    "monthly restore-testing plan)",
    "rds_promotion_s": "RDS read replica promotion (from a drill)",
    "logical_promotion_s": "promotion of a logical subscriber (from a drill)",
}


@dataclass
class Evidence:
    """Measured throughput, or why there is none that can be used.

    status: "ok", "missing", "stale" or "invalid"; figures only count when "ok".
    """

    status: str
    why: str = ""
    figures: dict[str, float] = field(default_factory=dict)
    measured_at: dt.datetime | None = None
    command: str = ""
    host: dict[str, Any] = field(default_factory=dict)
    database_bytes: float | None = None
    source: str = ""

    def figure(self, name: str) -> float | None:
        value = self.figures.get(name) if self.status == "ok" else None
        return float(value) if isinstance(value, int | float) and value > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "why": self.why,
            "source": self.source,
            "measured_at": self.measured_at.isoformat() if self.measured_at else None,
            "command": self.command,
            "host": self.host,
            "database_bytes": self.database_bytes,
            "figures": self.figures,
        }


def read_evidence(
    document: Mapping[str, Any] | None, now: dt.datetime, max_age_s: int, source: str = ""
) -> Evidence:
    """Check an evidence document: its schema, an unambiguous time (with a UTC offset, any
    zone), its age against ``max_age_s`` at ``now`` (timezone-aware), and its figures."""
    if document is None:
        return Evidence("missing", f"no evidence file {source}".strip(), source=source)
    if document.get("schema") != EVIDENCE_SCHEMA:
        return Evidence("invalid", f"schema is {document.get('schema')!r}", source=source)
    stamp = document.get("measured_at")
    try:
        measured = dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return Evidence("invalid", f"measured_at {stamp!r} is not an ISO 8601 time", source=source)
    if measured.tzinfo is None:
        return Evidence(
            "invalid", f"measured_at {stamp!r} has no UTC offset: ambiguous", source=source
        )
    figures = {k: v for k, v in (document.get("figures") or {}).items() if k in FIGURES}
    evidence = Evidence(
        "ok",
        figures=figures,
        measured_at=measured,
        command=str(document.get("command") or ""),
        host=dict(document.get("host") or {}),
        database_bytes=(document.get("setup") or {}).get("database_bytes"),
        source=source,
    )
    age = (now - measured).total_seconds()
    if age > max_age_s:
        evidence.status = "stale"
        evidence.why = (
            f"measured {measured.isoformat()}, {age / 86400:.0f} d ago; older than "
            f"{max_age_s // 86400} d (the restore-test interval plus a week): rerun "
            "bench/restore.py or the monthly restore test"
        )
    elif age < -300:
        evidence.status = "invalid"
        evidence.why = f"measured_at {measured.isoformat()} is in the future"
    return evidence


def human_s(seconds: float | None) -> str:
    """A duration for people: 0.1 s, 44 s, 12.5 min, 3.2 h."""
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def max_evidence_age_s(objectives: Mapping) -> int:
    schedule = objectives.get("schedule") or {}
    return int(schedule.get("restore_test_s", 30 * 86400)) + EVIDENCE_GRACE_S


@dataclass
class Step:
    name: str
    seconds: float | None
    source: str  # declared | measured | derived
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        seconds = None if self.seconds is None else round(self.seconds, 1)
        return {"step": self.name, "seconds": seconds, "source": self.source, "note": self.note}


@dataclass
class RecoveryPath:
    name: str
    survives_region_loss: bool
    steps: list[Step]
    rto_s: int
    blocked: str = ""  # why the path cannot be taken at all
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if self.blocked or any(s.seconds is None for s in self.steps):
            return None
        return sum(s.seconds for s in self.steps)

    @property
    def verdict(self) -> str:
        # A declared step without a time (nothing detects the outage, no failover record) is
        # unbounded, not unknown: no measurement can fill it in.
        if self.blocked or any(s.seconds is None and s.source == "declared" for s in self.steps):
            return NOT_MET
        if self.seconds is None:
            return UNKNOWN
        return MET if self.seconds <= self.rto_s else NOT_MET

    def to_dict(self) -> dict[str, Any]:
        seconds = self.seconds
        return {
            "path": self.name,
            "survives_region_loss": self.survives_region_loss,
            "seconds": None if seconds is None else round(seconds, 1),
            "rto_s": self.rto_s,
            "verdict": self.verdict,
            "blocked": self.blocked,
            "steps": [s.to_dict() for s in self.steps],
            "notes": self.notes,
        }


@dataclass
class RtoAssessment:
    data_class: str
    rto_objective_s: int
    verdict: str
    why: str
    paths: list[RecoveryPath]
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.data_class,
            "rto_objective_s": self.rto_objective_s,
            "verdict": self.verdict,
            "why": self.why,
            "paths": [p.to_dict() for p in self.paths],
            "evidence": self.evidence.to_dict(),
        }


def class_rto_verdict(paths: Sequence[RecoveryPath]) -> tuple[str, str]:
    """Met when a path that survives a region loss fits the RTO, else unknown or NOT MET."""
    surviving = [p for p in paths if p.survives_region_loss]
    if not surviving:
        return NOT_MET, "no recovery path survives losing the primary region"
    fitting = [p for p in surviving if p.verdict == MET]
    if fitting:
        best = min(fitting, key=lambda p: p.seconds or 0)
        return MET, f"{best.name}: {human_s(best.seconds)} of {rules.fmt_s(best.rto_s)}"
    unknown = [p.name for p in surviving if p.verdict == UNKNOWN]
    if unknown:
        return UNKNOWN, f"no measured figure for: {', '.join(unknown)}"
    slowest = ", ".join(f"{p.name}: {p.blocked or human_s(p.seconds)}" for p in surviving)
    return NOT_MET, f"no path that survives a region loss fits the RTO ({slowest})"


# ---------------------------------------------------------------------------------------------
# What every path is built from


@dataclass(frozen=True)
class _Scene:
    """The evaluated stack as the path builders need it."""

    resources: Sequence[Resource]
    named: Mapping[str, Resource]
    database: Resource  # the PostgresBackup component
    standby: Resource | None  # the DrStandby component
    evidence: Evidence
    rto: int
    regions: Mapping[str, str]

    @property
    def database_bytes(self) -> float:
        return float(rules._whole(self.database.props.get("databaseBytes")) or 0)

    def _own(self, role: str) -> Resource | None:
        return self.named.get(f"{self.standby.name}-{role}") if self.standby else None

    def detection(self) -> Step:
        """Route 53 health check failing, then its alarm paging."""
        check, alarm = self._own("primary-check"), self._own("primary-unhealthy")
        if check is None or alarm is None:
            return Step("detection", None, "declared", "no health check and alarm on the primary")
        props = rules._whole(dict(check.props))
        paging = alarm_detection_s(rules._whole(dict(alarm.props)), 0)
        if props.get("type") == "CLOUDWATCH_METRIC":
            # The check follows the in-VPC probe's alarm (components/health_probe.py): the probe
            # publishes every minute, the alarm needs its breaching periods. When that alarm
            # pages (it has alarm actions), nobody waits for the HealthCheckStatus alarm.
            probe = self._own("primary-down")
            probe_props = rules._whole(dict(probe.props)) if probe is not None else {}
            failing = (
                alarm_detection_s(probe_props, PROBE_INTERVAL_S) if probe is not None else None
            )
            how = f"probe alarm {failing} s (probe every {PROBE_INTERVAL_S} s)"
            if failing is not None and probe_props.get("alarmActions"):
                return Step("detection", failing, "declared", f"{how}, which pages")
        else:
            interval, threshold = props.get("requestInterval"), props.get("failureThreshold")
            timed = isinstance(interval, int) and isinstance(threshold, int)
            failing = interval * threshold if timed else None
            how = f"health check every {interval} s x {threshold} failures"
        if failing is None or paging is None:
            return Step("detection", None, "declared", "the health check or alarm has no timing")
        seconds = failing + paging + ROUTE53_METRIC_PUBLICATION_S
        return Step(
            "detection",
            seconds,
            "declared",
            f"{how}, alarm {paging} s, metric published within {ROUTE53_METRIC_PUBLICATION_S} s",
        )

    def dns(self) -> Step:
        records = [self._own(role) for role in ("primary", "secondary")]
        ttls = [rules._whole(r.props.get("ttl")) for r in records if r is not None]
        if not ttls or not all(isinstance(t, int) for t in ttls):
            return Step("DNS switch", None, "declared", "no failover records with a TTL")
        return Step("DNS switch", max(ttls), "declared", "resolvers keep the old answer that long")

    def scale_up(self) -> list[Step]:
        if self.standby is None or self.standby.props.get("mode") != rules.PILOT_LIGHT:
            return []
        seconds = rules._whole(self.standby.props.get("pilotLightRecoveryS"))
        return [Step("pilot-light scale-up", seconds, "declared", "config pilotLightRecovery")]

    def steps(self, *recovery: Step, scale_up: bool = True) -> list[Step]:
        """Detection, the DR region's scale-up, the recovery itself, then the DNS switch."""
        return [self.detection(), *(self.scale_up() if scale_up else []), *recovery, self.dns()]

    def throughput(self, name: str, size: float, figure: str) -> Step:
        rate = self.evidence.figure(figure)
        if rate is None:
            return Step(name, None, "measured", self._missing(figure))
        note = f"{size / 2**30:.1f} GiB at {rate / 2**20:.0f} MiB/s ({figure})"
        measured_on = self.evidence.database_bytes
        if measured_on and size > 10 * measured_on:
            note += f"; measured on {measured_on / 2**30:.2f} GiB, extrapolated"
        return Step(name, size / rate, "measured", note)

    def fixed(self, name: str, figure: str) -> Step:
        seconds = self.evidence.figure(figure)
        return Step(name, seconds, "measured", figure if seconds else self._missing(figure))

    def _missing(self, figure: str) -> str:
        evidence = self.evidence
        return evidence.why if evidence.status != "ok" else f"evidence has no {figure}"


# ---------------------------------------------------------------------------------------------
# Paths per backend

NOT_MODELLED = "not included: the on-call response time and the validation after recovery"


def _standby_path(scene: _Scene) -> RecoveryPath:
    backend = scene.database.props.get("backend")
    figure = {"rds": "rds_promotion_s", "supabase": "logical_promotion_s"}.get(
        backend, "promotion_s"
    )
    standby, blocked = scene.standby, ""
    if standby is None:
        blocked = "no DR standby is declared"
    else:
        target, problems, _ = database.standby_target(
            standby.props, standby.name, scene.resources, scene.named
        )
        if target is None:
            blocked = "; ".join(problems)
    survives = standby is not None and standby.props.get("drRegion") != scene.regions.get("primary")
    notes = [
        NOT_MODELLED,
        "holds while the standby's lag is within the RPO: above it drctl failover refuses "
        "(failover-refusal) and this path waits",
    ]
    steps = scene.steps(scene.fixed("promotion", figure))
    return RecoveryPath("promote the DR standby", survives, steps, scene.rto, blocked, notes)


def _pitr_paths(scene: _Scene) -> list[RecoveryPath]:
    files = database.rendered_files(scene.database)
    wal_per_s = float(rules._whole(scene.database.props.get("walBytesPerHour")) or 0) / 3600
    archive = art.archiving(files)
    jobs, _ = art.scheduled_jobs(files)
    sources = sorted({j.source.split("/", 1)[0] + "/" for j in jobs if j.kind.startswith("backup")})
    primary = scene.regions.get("primary")
    paths = []
    for repo in archive.repos or [art.PgRepo(1, "s3", primary, None)]:
        gaps = [art.backup_gaps(jobs, repo.index, via)["incr"] for via in sources]
        survives = repo.type == "s3" and repo.region not in (None, primary)
        blocked = ""
        if not gaps or None in gaps:
            blocked = f"no backup reaches repo{repo.index}"
        elif archive.problems:
            blocked = f"WAL archiving is broken: {archive.problems[0]}"
        gap = max((g for g in gaps if g is not None), default=0)
        steps = scene.steps(
            scene.throughput("restore", scene.database_bytes, "restore_bytes_per_s"),
            scene.throughput("WAL replay", wal_per_s * gap, "replay_bytes_per_s"),
        )
        notes = [
            NOT_MODELLED,
            f"replays up to {rules.fmt_s(gap)} of WAL: the longest gap between backups "
            f"reaching repo{repo.index} in the host's timers and cron lines",
        ]
        name = f"PITR from repo{repo.index} ({repo.region or repo.type})"
        paths.append(RecoveryPath(name, survives, steps, scene.rto, blocked, notes))
    return paths


def _rds_paths(scene: _Scene) -> list[RecoveryPath]:
    replicated = [
        r
        for r in scene.resources
        if r.type.endswith(":InstanceAutomatedBackupsReplication")
        and r.name.startswith(f"{scene.database.name}-backups-")
        and r.props.get("region") != scene.regions.get("primary")
    ]
    unreplicated = "" if replicated else "automated backups are not replicated out of region"
    dr = scene.regions.get("dr")
    copied = any(
        f":{dr}:" in str(copy.get("destinationVaultArn", ""))
        for plan in scene.resources
        if plan.type == BACKUP_PLAN_TYPE
        and (plan.props.get("tags") or {}).get("backup-class") == "critical"
        for rule in rules._as_list(plan.props.get("rules"))
        for copy in rules._as_list(rule.get("copyActions"))
    )
    uncopied = "" if copied else f"the critical backup plan copies nothing to a vault in {dr}"
    paths = []
    for name, survives, blocked, figure in (
        ("RDS PITR in the primary region", False, "", "rds_restore_bytes_per_s"),
        (
            "restore from the automated backups replicated to the DR region",
            True,
            unreplicated,
            "rds_restore_bytes_per_s",
        ),
        (
            "AWS Backup restore of the copy in the DR vault",
            True,
            uncopied,
            "aws_backup_restore_bytes_per_s",
        ),
    ):
        restore = scene.throughput("restore", scene.database_bytes, figure)
        steps = scene.steps(restore, scale_up=False)
        paths.append(RecoveryPath(name, survives, steps, scene.rto, blocked, [NOT_MODELLED]))
    return paths


def _supabase_paths(scene: _Scene) -> list[RecoveryPath]:
    dr_copy = scene.named.get(f"{scene.database.name}-dumps-{scene.regions.get('dr')}")
    hosted = RecoveryPath(
        "Supabase hosted PITR (primary region)",
        False,
        [Step("restore", None, "measured", "Supabase does not publish PITR restore times")],
        scene.rto,
        notes=[NOT_MODELLED],
    )
    steps = scene.steps(
        scene.throughput("pg_restore", scene.database_bytes, "pg_restore_bytes_per_s")
    )
    blocked = "" if dr_copy is not None else "no copy of the dumps in the DR region"
    dump = RecoveryPath(
        "pg_restore of the newest dump in the DR region",
        True,
        steps,
        scene.rto,
        blocked,
        [NOT_MODELLED],
    )
    return [hosted, dump]


BACKEND_PATHS = {"self-managed": _pitr_paths, "rds": _rds_paths, "supabase": _supabase_paths}


def assess_rto(
    resources: Sequence[Resource], objectives: Mapping, evidence: Evidence
) -> RtoAssessment | None:
    """The database's recovery paths against the critical RTO; None without a database."""
    component = next((r for r in resources if r.type == rules.POSTGRES_BACKUP_TYPE), None)
    if component is None:
        return None
    scene = _Scene(
        resources,
        rules.by_name(resources),
        component,
        next((r for r in resources if r.type == rules.DR_STANDBY_TYPE), None),
        evidence,
        int(objectives["classes"]["critical"]["rto_s"]),
        objectives.get("regions") or {},
    )
    paths = [_standby_path(scene)]
    backend_paths = BACKEND_PATHS.get(component.props.get("backend"))
    if backend_paths:
        paths += backend_paths(scene)
    verdict, why = class_rto_verdict(paths)
    return RtoAssessment("critical", scene.rto, verdict, why, paths, evidence)
