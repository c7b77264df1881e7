"""The database: its newest restorable point in each region, per backend.

- rds: the instance's LatestRestorableTime in the primary region, and the DR region's replica of
  its automated backups (RestoreWindow.LatestTime);
- self-managed: pgBackRest's newest backup and the WAL not yet archived, per repository, from an
  injected ``DatabaseSource`` (the real one reads ``pgbackrest info`` and pg_stat_archiver);
- supabase: not measured here (``drctl supabase check`` reads the hosted project): UNKNOWN.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from components.objectives import Objectives
from scripts.checks.verify.model import (
    Check,
    CheckGroup,
    Context,
    Status,
    age_s,
    fmt_s,
    need,
    passed,
)

DATABASE_CLASS = "critical"  # user accounts and financial transactions live in the database


@dataclass
class DatabaseState:
    """What pgBackRest and the primary report about the newest recoverable point."""

    backups: dict[int, list[dict[str, Any]]]  # repo -> pgbackrest info backups, oldest first
    archive: dict[int, dict[str, Any]]  # repo -> PgBackRest.archive_status() entry
    last_archived_time: dt.datetime | None  # pg_stat_archiver
    unarchived_writes: bool  # WAL exists past the newest archived segment


class DatabaseSource(Protocol):
    def read(self) -> DatabaseState: ...


class PgBackRestSource:
    """The real source: ``pgbackrest info`` (scripts/dataops/pgbackrest.py) and the archiver."""

    def __init__(self, backrest: Any, dsn: str):
        self.backrest, self.dsn = backrest, dsn

    def read(self) -> DatabaseState:
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=10) as conn:
            wal, offset = conn.execute(
                "select file_name, file_offset from pg_walfile_name_offset(pg_current_wal_lsn())"
            ).fetchone()
            last_wal, last_time = conn.execute(
                "select last_archived_wal, last_archived_time from pg_stat_archiver"
            ).fetchone()
        archive = self.backrest.archive_status(wal)
        repos = sorted(archive) or self.backrest.repo_indexes()
        # Nothing is at risk only when the segment being written is empty and every earlier
        # one is archived; otherwise the writes since the last archive would be lost.
        pending = any((a.get("lag_segments") or 0) > 0 for a in archive.values())
        return DatabaseState(
            backups={r: self.backrest.backups(r) for r in repos},
            archive=archive,
            last_archived_time=last_time,
            unarchived_writes=bool(offset) or pending or last_wal is None,
        )


def _restorable(ctx: Context, check: str, target: str, latest, present: str, absent: str):
    """The age of a newest restorable time against the critical RPO (none reported: fail)."""
    rpo = ctx.objectives.of(DATABASE_CLASS).rpo_s
    age = age_s(ctx.now, latest) if latest else None
    return Check(
        check,
        DATABASE_CLASS,
        target,
        None if age is None else round(age, 1),
        rpo,
        passed(age is not None and age <= rpo),
        present if latest else absent,
    )


def rds_checks(ctx: Context) -> list[Check]:
    regions = ctx.objectives.regions
    arn = need(ctx.outputs, "database", "rdsInstanceArn")
    replica = need(ctx.outputs, "database", "automatedBackupsReplicationArn")
    instance = ctx.clients("rds", regions.primary).describe_db_instances(DBInstanceIdentifier=arn)[
        "DBInstances"
    ][0]
    latest = instance.get("LatestRestorableTime")
    found = ctx.clients("rds", regions.dr).describe_db_instance_automated_backups(
        DBInstanceAutomatedBackupsArn=replica
    )["DBInstanceAutomatedBackups"]
    replica_latest = (found[0].get("RestoreWindow") or {}).get("LatestTime") if found else None
    return [
        _restorable(
            ctx,
            "rds-latest-restorable",
            arn,
            latest,
            f"latest restorable time {latest}",
            "no restorable time reported",
        ),
        _restorable(
            ctx,
            "rds-dr-replica-restorable",
            replica,
            replica_latest,
            f"replicated backups in {regions.dr} restorable to {replica_latest}",
            f"no replicated automated backups in {regions.dr}",
        ),
    ]


def pgbackrest_checks(
    objectives: Objectives, state: DatabaseState, now: dt.datetime
) -> list[Check]:
    """Per repository (repo1 and repo2 stand for the two regions): newest backup and WAL lag.

    The newest backup must be no older than the schedule's most frequent backup (hourly incr);
    the writes a lost primary would take with it must be within the database class RPO.
    """
    rpo = objectives.of(DATABASE_CLASS).rpo_s
    interval = objectives.schedule.log_backup_s
    checks = []
    for repo in sorted(set(state.backups) | set(state.archive)):
        backups = state.backups.get(repo) or []
        newest = backups[-1] if backups else None
        stop = newest and dt.datetime.fromtimestamp(newest["timestamp"]["stop"], dt.UTC)
        age = age_s(now, stop) if stop else None
        checks.append(
            Check(
                "pgbackrest-last-backup",
                DATABASE_CLASS,
                f"repo{repo}",
                None if age is None else round(age, 1),
                interval,
                passed(age is not None and age <= interval),
                f"newest {newest['type']} backup {newest['label']}, {fmt_s(age)} old"
                if newest
                else "no backup in this repository",
            )
        )
        archive = state.archive.get(repo, {})
        lag_segments = archive.get("lag_segments")
        if not state.unarchived_writes:
            loss: float | None = 0.0
        elif state.last_archived_time is None:
            loss = None
        else:
            loss = age_s(now, state.last_archived_time)
        checks.append(
            Check(
                "pgbackrest-archive-lag",
                DATABASE_CLASS,
                f"repo{repo}",
                None if loss is None else round(loss, 1),
                rpo,
                passed(loss is not None and loss <= rpo and not lag_segments),
                f"newest WAL {archive.get('max_wal')}, {lag_segments} segment(s) behind; "
                + (
                    "nothing was ever archived"
                    if loss is None
                    else "nothing unarchived"
                    if loss == 0
                    else f"writes since the last archive {fmt_s(loss)} ago are at risk"
                ),
            )
        )
    return checks


def database_checks(ctx: Context) -> list[Check]:
    """Per backend; the deployed backend must be the one the stack file declares."""
    backend = need(ctx.outputs, "database", "backend")
    if backend != ctx.objectives.db_backend:
        return [
            Check(
                "database",
                DATABASE_CLASS,
                "database.backend",
                backend,
                ctx.objectives.db_backend,
                Status.FAIL,
                f"the stack outputs a {backend} database but Pulumi.{ctx.stack}.yaml declares "
                f"dbBackend {ctx.objectives.db_backend}: deploy it, or pass the right --outputs",
            )
        ]
    if backend == "rds":
        return rds_checks(ctx)
    if backend == "self-managed":
        if ctx.database is None:
            return [
                Check(
                    "pgbackrest",
                    DATABASE_CLASS,
                    "-",
                    None,
                    None,
                    Status.UNKNOWN,
                    "not measured: give --pgbackrest-config and --dsn for a self-managed database",
                )
            ]
        return pgbackrest_checks(ctx.objectives, ctx.database.read(), ctx.now)
    return [
        Check(
            "database",
            DATABASE_CLASS,
            backend,
            None,
            None,
            Status.UNKNOWN,
            f"verify does not measure a {backend} database: `drctl supabase check` reads the "
            "hosted project's PITR, and the SubscriptionLagSeconds alarm watches the DR "
            "subscriber",
        )
    ]


DATABASE = CheckGroup(
    "database", database_checks, needs=("database.backend",), data_class=DATABASE_CLASS
)
