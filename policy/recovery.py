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
- **RDS**: PITR in the primary region and a restore from the automated backups replicated to the
  DR region; **supabase**: hosted PITR and pg_restore of the newest dump in the DR region.

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
    from .bounds import alarm_detection_s
else:  # pragma: no cover - the pack never imports this module
    import artefacts as art  # type: ignore[no-redef]
    import database  # type: ignore[no-redef]
    import rules  # type: ignore[no-redef]
    from bounds import alarm_detection_s  # type: ignore[no-redef]

Resource = rules.Resource
EVIDENCE_SCHEMA = "platform-dr/restore-evidence/1"
EVIDENCE_GRACE_S = 7 * 86400  # a restore test may run a week late before its figures go stale
# Route 53 publishes health-check status to CloudWatch every minute (Route 53 Developer Guide,
# "Monitoring health check status by using CloudWatch": https://docs.aws.amazon.com/Route53/
# latest/DeveloperGuide/monitoring-health-checks.html).
ROUTE53_METRIC_PUBLICATION_S = 60
MET, NOT_MET, UNKNOWN = "met", "not met", "unknown"
# Evidence figures, what they measure, and which paths need them.
FIGURES = {
    "restore_bytes_per_s": "pgBackRest restore throughput (bytes of database per second)",
    "replay_bytes_per_s": "WAL replay throughput during recovery, archive-get included",
    "promotion_s": "promotion of a streaming standby (pg_ctl promote, until it accepts writes)",
    "pg_restore_bytes_per_s": "pg_restore throughput of a custom-format dump",
    "rds_restore_bytes_per_s": "RDS restore throughput (from an AWS Backup restore test)",
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
# The steps every path shares


def _detection(standby: Resource | None, named: Mapping) -> Step:
    """Route 53 health check failing, then its alarm paging."""
    name = standby.name if standby else ""
    check = named.get(f"{name}-primary-check")
    alarm = named.get(f"{name}-primary-unhealthy")
    if check is None or alarm is None:
        return Step("detection", None, "declared", "no health check and alarm on the primary")
    props = rules._whole(dict(check.props))
    interval, threshold = props.get("requestInterval"), props.get("failureThreshold")
    paging = alarm_detection_s(rules._whole(dict(alarm.props)), 0)
    if not (isinstance(interval, int) and isinstance(threshold, int)) or paging is None:
        return Step("detection", None, "declared", "the health check or its alarm has no timing")
    seconds = interval * threshold + paging + ROUTE53_METRIC_PUBLICATION_S
    return Step(
        "detection",
        seconds,
        "declared",
        f"health check every {interval} s x {threshold} failures, alarm {paging} s, "
        f"metric published within {ROUTE53_METRIC_PUBLICATION_S} s",
    )


def _dns(standby: Resource | None, named: Mapping) -> Step:
    name = standby.name if standby else ""
    ttls = [
        rules._whole(named[f"{name}-{role}"].props.get("ttl"))
        for role in ("primary", "secondary")
        if f"{name}-{role}" in named
    ]
    if not ttls or not all(isinstance(t, int) for t in ttls):
        return Step("DNS switch", None, "declared", "no failover records with a TTL")
    return Step("DNS switch", max(ttls), "declared", "resolvers keep the old answer for the TTL")


def _scale_up(standby: Resource | None) -> list[Step]:
    if standby is None or standby.props.get("mode") != rules.PILOT_LIGHT:
        return []
    seconds = rules._whole(standby.props.get("pilotLightRecoveryS"))
    return [Step("pilot-light scale-up", seconds, "declared", "config pilotLightRecovery")]


def _throughput_step(name: str, size: float, figure: str, evidence: Evidence) -> Step:
    rate = evidence.figure(figure)
    if rate is None:
        why = evidence.why if evidence.status != "ok" else f"evidence has no {figure}"
        return Step(name, None, "measured", why)
    note = f"{size / 2**30:.1f} GiB at {rate / 2**20:.0f} MiB/s ({figure})"
    if evidence.database_bytes and size > 10 * evidence.database_bytes:
        note += f"; measured on {evidence.database_bytes / 2**30:.2f} GiB, extrapolated"
    return Step(name, size / rate, "measured", note)


def _fixed_step(name: str, figure: str, evidence: Evidence) -> Step:
    seconds = evidence.figure(figure)
    if seconds is None:
        why = evidence.why if evidence.status != "ok" else f"evidence has no {figure}"
        return Step(name, None, "measured", why)
    return Step(name, seconds, "measured", figure)


# ---------------------------------------------------------------------------------------------
# Paths per backend

NOT_MODELLED = "not included: the on-call response time and the validation after recovery"


def _standby_path(
    backend: str,
    standby: Resource | None,
    named: Mapping,
    resources: Sequence[Resource],
    evidence: Evidence,
    rto: int,
    regions: Mapping,
) -> RecoveryPath:
    figure = {"rds": "rds_promotion_s", "supabase": "logical_promotion_s"}.get(
        backend, "promotion_s"
    )
    blocked = ""
    if standby is None:
        blocked = "no DR standby is declared"
    else:
        target, problems, _ = database.standby_target(standby.props, standby.name, resources, named)
        if target is None:
            blocked = "; ".join(problems)
    steps = [
        _detection(standby, named),
        *_scale_up(standby),
        _fixed_step("promotion", figure, evidence),
        _dns(standby, named),
    ]
    survives = standby is not None and standby.props.get("drRegion") != regions.get("primary")
    notes = [
        NOT_MODELLED,
        "holds while the standby's lag is within the RPO: above it drctl failover refuses "
        "(failover-refusal) and this path waits",
    ]
    return RecoveryPath("promote the DR standby", survives, steps, rto, blocked, notes)


def _pitr_paths(
    component: Resource,
    standby: Resource | None,
    named: Mapping,
    evidence: Evidence,
    rto: int,
    regions: Mapping,
) -> list[RecoveryPath]:
    props = rules._whole(dict(component.props))
    files = database.rendered_files(component)
    size = float(props.get("databaseBytes") or 0)
    wal_per_s = float(props.get("walBytesPerHour") or 0) / 3600
    archive = art.archiving(files)
    jobs, _ = art.scheduled_jobs(files)
    sources = sorted({j.source.split("/", 1)[0] + "/" for j in jobs if j.kind.startswith("backup")})
    paths = []
    for repo in archive.repos or [art.PgRepo(1, "s3", regions.get("primary"), None)]:
        gaps = [art.backup_gaps(jobs, repo.index, via)["incr"] for via in sources]
        survives = repo.type == "s3" and repo.region not in (None, regions.get("primary"))
        blocked = ""
        if not gaps or None in gaps:
            blocked = f"no backup reaches repo{repo.index}"
        elif archive.problems:
            blocked = f"WAL archiving is broken: {archive.problems[0]}"
        gap = max((g for g in gaps if g is not None), default=0)
        steps = [
            _detection(standby, named),
            *_scale_up(standby),
            _throughput_step("restore", size, "restore_bytes_per_s", evidence),
            _throughput_step("WAL replay", wal_per_s * gap, "replay_bytes_per_s", evidence),
            _dns(standby, named),
        ]
        notes = [
            NOT_MODELLED,
            f"replays up to {rules.fmt_s(gap)} of WAL: the longest gap between backups "
            f"reaching repo{repo.index} in the host's timers and cron lines",
        ]
        where = repo.region or repo.type
        paths.append(
            RecoveryPath(
                f"PITR from repo{repo.index} ({where})", survives, steps, rto, blocked, notes
            )
        )
    return paths


def _rds_paths(
    component: Resource,
    standby: Resource | None,
    named: Mapping,
    resources: Sequence[Resource],
    evidence: Evidence,
    rto: int,
    regions: Mapping,
) -> list[RecoveryPath]:
    size = float(rules._whole(component.props.get("databaseBytes")) or 0)
    replicated = [
        r
        for r in resources
        if r.type.endswith(":InstanceAutomatedBackupsReplication")
        and r.name.startswith(f"{component.name}-backups-")
        and r.props.get("region") != regions.get("primary")
    ]
    paths = []
    for name, survives, blocked in (
        ("RDS PITR in the primary region", False, ""),
        (
            "restore from the automated backups replicated to the DR region",
            True,
            "" if replicated else "automated backups are not replicated out of region",
        ),
    ):
        steps = [
            _detection(standby, named),
            _throughput_step("restore", size, "rds_restore_bytes_per_s", evidence),
            _dns(standby, named),
        ]
        paths.append(RecoveryPath(name, survives, steps, rto, blocked, [NOT_MODELLED]))
    return paths


def _supabase_paths(
    component: Resource,
    standby: Resource | None,
    named: Mapping,
    evidence: Evidence,
    rto: int,
    regions: Mapping,
) -> list[RecoveryPath]:
    size = float(rules._whole(component.props.get("databaseBytes")) or 0)
    dr_copy = named.get(f"{component.name}-dumps-{regions.get('dr')}")
    hosted = RecoveryPath(
        "Supabase hosted PITR (primary region)",
        False,
        [Step("restore", None, "measured", "Supabase does not publish PITR restore times")],
        rto,
        notes=[NOT_MODELLED],
    )
    steps = [
        _detection(standby, named),
        *_scale_up(standby),
        _throughput_step("pg_restore", size, "pg_restore_bytes_per_s", evidence),
        _dns(standby, named),
    ]
    blocked = "" if dr_copy is not None else "no copy of the dumps in the DR region"
    dump = RecoveryPath(
        "pg_restore of the newest dump in the DR region", True, steps, rto, blocked, [NOT_MODELLED]
    )
    return [hosted, dump]


def assess_rto(
    resources: Sequence[Resource], objectives: Mapping, evidence: Evidence
) -> RtoAssessment | None:
    """The database's recovery paths against the critical RTO; None without a database."""
    named = rules.by_name(resources)
    component = next((r for r in resources if r.type == rules.POSTGRES_BACKUP_TYPE), None)
    if component is None:
        return None
    standby = next((r for r in resources if r.type == rules.DR_STANDBY_TYPE), None)
    regions = objectives.get("regions") or {}
    rto = int(objectives["classes"]["critical"]["rto_s"])
    backend = component.props.get("backend")
    paths = [_standby_path(backend, standby, named, resources, evidence, rto, regions)]
    if backend == "self-managed":
        paths += _pitr_paths(component, standby, named, evidence, rto, regions)
    elif backend == "rds":
        paths += _rds_paths(component, standby, named, resources, evidence, rto, regions)
    elif backend == "supabase":
        paths += _supabase_paths(component, standby, named, evidence, rto, regions)
    verdict, why = class_rto_verdict(paths)
    return RtoAssessment("critical", rto, verdict, why, paths, evidence)
