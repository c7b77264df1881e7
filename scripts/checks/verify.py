"""`drctl verify`: live checks of a deployed stack against its recovery objectives.

Where ``posture`` judges the declared settings, ``verify`` measures the running system:

- the newest recovery point of each class (AWS Backup), the database's newest restorable point
  (RDS latest restorable time in the primary region and in the DR replica of its automated
  backups; or pgBackRest's newest backup and the WAL not yet archived to each repository);
- S3 replication configured to every other copy, and its CloudWatch metrics (latency within the
  class RPO, no failed operations);
- Secrets Manager replicas InSync; SSM config equal in the primary and DR regions;
- a vault lock on every backup vault, in the mode the objectives derive.

Targets come from the stack's outputs (an injected provider; the real one runs ``pulumi stack
output --json``), objectives from the stack file. AWS access is a factory ``(service, region) ->
client`` and the database is an injected ``DatabaseSource``, so tests point the same code at moto,
botocore's Stubber and a local pgBackRest repository. Every check yields
``{check, class, target, measured, objective, ok, detail}``; any failed check exits 1.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError

from components.backup_plan import audit_hours, vault_lock_settings
from components.objectives import PROJECT, TAG_CLASS, ConfigError, Objectives, parse_objectives
from scripts.checks import backup_audit
from scripts.common import DrctlError, ExitCode, fail, out, print_json, progress
from scripts.dataops import config_sync
from scripts.local.evaluate import ROOT, read_stack_config

ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client
OutputsProvider = Callable[[str], Mapping[str, Any]]  # stack -> stack outputs
METRIC_WINDOW_S = 3600  # how far back the replication metrics are read
DATABASE_CLASS = "critical"  # user accounts and financial transactions live in the database


@dataclass
class Check:
    check: str
    data_class: str
    target: str
    measured: float | str | None
    objective: float | str | None
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "class": self.data_class,
            "target": self.target,
            "measured": self.measured,
            "objective": self.objective,
            "ok": self.ok,
            "detail": self.detail,
        }


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "unbounded"
    seconds = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _age(now: dt.datetime, then: dt.datetime) -> float:
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return max(0.0, (now - then).total_seconds())


def _error(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".strip()
    return f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------------------------------------
# The database source (self-managed backend)


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


# ---------------------------------------------------------------------------------------------
# The checks


def backup_checks(objectives: Objectives, outputs, clients, now) -> list[Check]:
    primary = objectives.regions.primary
    vaults = outputs.get("backupVaultNames") or {}
    plans = outputs.get("backupPlanIds") or {}
    checks = []
    for cls, objective in objectives.classes.items():
        vault, plan_id = vaults.get(primary), plans.get(cls)
        # AWS Backup schedules whole hours; a finer RPO is measured by the database and
        # replication checks below (the audit framework rounds the same way).
        limit = audit_hours(objective.rpo_s) * 3600
        target = f"{vault}/{plan_id}"
        if not vault or not plan_id:
            checks.append(
                Check("backup-recovery-point", cls, target, None, limit, False, "not in outputs")
            )
            continue
        point = backup_audit.newest_recovery_point(
            clients("backup", primary), vault, plan_id=plan_id
        )
        if point is None:
            checks.append(
                Check("backup-recovery-point", cls, target, None, limit, False, "no recovery point")
            )
            continue
        age = _age(now, point.created)
        checks.append(
            Check(
                "backup-recovery-point",
                cls,
                target,
                round(age, 1),
                limit,
                age <= limit,
                f"newest {point.resource_type} point {_s(age)} old ({point.resource_arn}); "
                f"limit {_s(limit)} for RPO {_s(objective.rpo_s)}",
            )
        )
    return checks


def vault_lock_checks(objectives: Objectives, outputs, clients) -> list[Check]:
    expected = vault_lock_settings(objectives)
    checks = []
    for region, vault in sorted((outputs.get("backupVaultNames") or {}).items()):
        lock = backup_audit.vault_lock(clients("backup", region), vault)
        mode = lock["mode"] if lock else None
        checks.append(
            Check(
                "vault-lock",
                "all",
                f"{region}/{vault}",
                mode,
                expected.mode,
                mode == expected.mode,
                "no such vault"
                if lock is None
                else f"lock {mode or 'absent'}, retention {lock['min_retention_days']}-"
                f"{lock['max_retention_days']} d",
            )
        )
    return checks


def rds_checks(objectives: Objectives, database: Mapping, clients, now) -> list[Check]:
    rpo = objectives.of(DATABASE_CLASS).rpo_s
    checks = []
    arn = database.get("rdsInstanceArn")
    instance = clients("rds", objectives.regions.primary).describe_db_instances(
        DBInstanceIdentifier=arn
    )["DBInstances"][0]
    latest = instance.get("LatestRestorableTime")
    age = _age(now, latest) if latest else None
    checks.append(
        Check(
            "rds-latest-restorable",
            DATABASE_CLASS,
            arn,
            None if age is None else round(age, 1),
            rpo,
            age is not None and age <= rpo,
            f"latest restorable time {latest}" if latest else "no restorable time reported",
        )
    )
    replica = database.get("automatedBackupsReplicationArn")
    dr = objectives.regions.dr
    found = (
        clients("rds", dr).describe_db_instance_automated_backups(
            DBInstanceAutomatedBackupsArn=replica
        )["DBInstanceAutomatedBackups"]
        if replica
        else []
    )
    latest = (found[0].get("RestoreWindow") or {}).get("LatestTime") if found else None
    age = _age(now, latest) if latest else None
    checks.append(
        Check(
            "rds-dr-replica-restorable",
            DATABASE_CLASS,
            replica or "(none)",
            None if age is None else round(age, 1),
            rpo,
            age is not None and age <= rpo,
            f"replicated backups in {dr} restorable to {latest}"
            if latest
            else f"no replicated automated backups in {dr}",
        )
    )
    return checks


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
        age = _age(now, stop) if stop else None
        checks.append(
            Check(
                "pgbackrest-last-backup",
                DATABASE_CLASS,
                f"repo{repo}",
                None if age is None else round(age, 1),
                interval,
                age is not None and age <= interval,
                f"newest {newest['type']} backup {newest['label']}, {_s(age)} old"
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
            loss = _age(now, state.last_archived_time)
        checks.append(
            Check(
                "pgbackrest-archive-lag",
                DATABASE_CLASS,
                f"repo{repo}",
                None if loss is None else round(loss, 1),
                rpo,
                loss is not None and loss <= rpo and not lag_segments,
                f"newest WAL {archive.get('max_wal')}, {lag_segments} segment(s) behind; "
                + (
                    "nothing unarchived"
                    if loss == 0
                    else f"writes since the last archive {_s(loss)} ago are at risk"
                ),
            )
        )
    return checks


def _bucket_class(s3, bucket: str) -> str:
    try:
        tags = s3.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
    except ClientError:
        return "unknown"
    return next((t["Value"] for t in tags if t["Key"] == TAG_CLASS), "unknown")


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


def replication_checks(objectives: Objectives, outputs, clients, now) -> list[Check]:
    primary = objectives.regions.primary
    checks = []
    for _dataset, copies in sorted((outputs.get("buckets") or {}).items()):
        source = copies.get(primary)
        s3 = clients("s3", primary)
        cls = _bucket_class(s3, source)
        rpo = objectives.classes[cls].rpo_s if cls in objectives.classes else None
        try:
            config = s3.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]
        except ClientError as err:
            checks.append(Check("s3-replication", cls, source, None, None, False, _error(err)))
            continue
        rules = [r for r in config.get("Rules", []) if r.get("Status") == "Enabled"]
        by_destination = {r["Destination"]["Bucket"].split(":::")[-1]: r for r in rules}
        expected = sorted(b for region, b in copies.items() if region != primary)
        missing = [b for b in expected if b not in by_destination]
        checks.append(
            Check(
                "s3-replication",
                cls,
                source,
                len(expected) - len(missing),
                len(expected),
                not missing and rpo is not None,
                f"enabled rules to {', '.join(sorted(by_destination)) or 'nothing'}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                # Untagged, the bucket has no objective here and AWS Backup never selects it.
                + ("" if rpo is not None else f"; no {TAG_CLASS} tag naming a data class"),
            )
        )
        cloudwatch = clients("cloudwatch", primary)
        for destination in expected:
            rule = by_destination.get(destination)
            if rule is None:
                continue
            dims = [
                {"Name": "SourceBucket", "Value": source},
                {"Name": "DestinationBucket", "Value": destination},
                {"Name": "RuleId", "Value": rule.get("ID", "")},
            ]

            latency = _metric(cloudwatch, "ReplicationLatency", "Maximum", dims, now)
            failed = _metric(cloudwatch, "OperationsFailedReplication", "Sum", dims, now) or 0
            ok = failed == 0 and (latency is None or (rpo is not None and latency <= rpo))
            checks.append(
                Check(
                    "s3-replication-metrics",
                    cls,
                    f"{source} -> {destination}",
                    latency,
                    rpo,
                    ok,
                    f"last {_s(METRIC_WINDOW_S)}: max latency "
                    + ("n/a (nothing replicated)" if latency is None else _s(latency))
                    + f", {int(failed)} failed operation(s)",
                )
            )
    return checks


def secret_checks(objectives: Objectives, outputs, clients) -> list[Check]:
    primary, dr = objectives.regions.primary, objectives.regions.dr
    checks = []
    sm = clients("secretsmanager", primary)
    for name, arns in sorted((outputs.get("secretArns") or {}).items()):
        described = sm.describe_secret(SecretId=arns.get(primary, name))
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        replica = next(
            (r for r in described.get("ReplicationStatus", []) if r.get("Region") == dr), None
        )
        status = replica.get("Status") if replica else None
        checks.append(
            Check(
                "secret-replica",
                tags.get(TAG_CLASS, "operational"),
                name,
                status,
                "InSync",
                status == "InSync",
                f"replica in {dr}: {status}"
                + (f" ({replica.get('StatusMessage')})" if replica and status != "InSync" else "")
                if replica
                else f"no replica in {dr}",
            )
        )
    return checks


def config_checks(stack: str, root: Path, clients) -> list[Check]:
    target = config_sync.target_of(stack, root)
    diff = config_sync.diff_regions(lambda region: _SessionShim(clients, region), target)
    drift = [r for r in diff["parameters"] if r["status"] not in ("same", "version-skew")]
    return [
        Check(
            "config-in-sync",
            "operational",
            f"{target.prefix} ({target.primary} vs {target.dr})",
            len(drift),
            0,
            not drift and bool(diff["parameters"]),
            f"{len(diff['parameters'])} parameter(s); "
            + (
                "drift: " + ", ".join(f"{r['name']} {r['status']}" for r in drift)
                if drift
                else ("all equal" if diff["parameters"] else "no parameters found")
            ),
        )
    ]


class _SessionShim:
    """config_sync takes a region -> session factory; hand it the same injected clients."""

    def __init__(self, clients: ClientFactory, region: str):
        self._clients, self._region = clients, region

    def client(self, service: str) -> Any:
        return self._clients(service, self._region)


def run_checks(
    stack: str,
    objectives: Objectives,
    outputs: Mapping[str, Any],
    clients: ClientFactory,
    *,
    database: DatabaseSource | None = None,
    root: Path = ROOT,
    now: dt.datetime | None = None,
) -> list[Check]:
    """Every check; an AWS or database error fails that group's check, never the whole run."""
    now = now or dt.datetime.now(dt.UTC)
    checks: list[Check] = []
    db = outputs.get("database") or {}

    def group(name: str, run: Callable[[], list[Check]]) -> None:
        progress.print(f"verify: {name} ...")
        try:
            checks.extend(run())
        except (ClientError, BotoCoreError, DrctlError, OSError, KeyError) as err:
            checks.append(Check(name, "all", "-", None, None, False, _error(err)))

    group("backup-recovery-point", lambda: backup_checks(objectives, outputs, clients, now))
    if db.get("backend") == "rds":
        group("rds", lambda: rds_checks(objectives, db, clients, now))
    elif db.get("backend") == "self-managed":
        if database is None:
            checks.append(
                Check(
                    "pgbackrest",
                    DATABASE_CLASS,
                    "-",
                    None,
                    None,
                    False,
                    "not measured: give --pgbackrest-config and --dsn for a self-managed database",
                )
            )
        else:
            group("pgbackrest", lambda: pgbackrest_checks(objectives, database.read(), now))
    group("s3-replication", lambda: replication_checks(objectives, outputs, clients, now))
    group("secret-replica", lambda: secret_checks(objectives, outputs, clients))
    from scripts.checks.failover_readiness import failover_checks

    group("failover-readiness", lambda: failover_checks(objectives, outputs, clients))
    group("config-in-sync", lambda: config_checks(stack, root, clients))
    group("vault-lock", lambda: vault_lock_checks(objectives, outputs, clients))
    return checks


# ---------------------------------------------------------------------------------------------
# Wiring


def objectives_of_stack(stack: str, root: Path = ROOT) -> Objectives:
    raw = read_stack_config(stack, root)
    return parse_objectives({k: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}, stack)


def pulumi_outputs(stack: str) -> Mapping[str, Any]:
    """The real provider: ``pulumi stack output --json`` (secrets stay masked)."""
    if not shutil.which("pulumi"):
        raise DrctlError(
            "the pulumi CLI is not on PATH: install it, or pass --outputs FILE with the JSON "
            "of `pulumi stack output --json -s STACK`",
            ExitCode.PRECONDITION_FAILED,
        )
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "-s", stack], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise DrctlError(
            f"pulumi stack output -s {stack} failed: {result.stderr.strip()}",
            ExitCode.PRECONDITION_FAILED,
        )
    return json.loads(result.stdout)


def session_clients(sessions: Callable[[str], Any]) -> ClientFactory:
    cache: dict[tuple[str, str], Any] = {}

    def clients(service: str, region: str) -> Any:
        if (service, region) not in cache:
            cache[(service, region)] = sessions(region).client(service)
        return cache[(service, region)]

    return clients


def render(stack: str, checks: list[Check]) -> None:
    ok = all(c.ok for c in checks)
    out.print(f"[bold]{stack}[/]: " + ("[green]all checks pass[/]" if ok else "[red]FAILED[/]"))
    for c in checks:
        mark = "[green]ok  [/]" if c.ok else "[red]FAIL[/]"
        out.print(f"  {mark} {c.check:<24} {c.data_class:<11} {c.target}")
        out.print(f"       {c.detail}")


def register(app: typer.Typer) -> None:
    @app.command()
    def verify(
        stack: str = typer.Option("prod", "--stack", "-s", help="Stack to verify."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
        outputs_file: Path | None = typer.Option(
            None, "--outputs", help="JSON of `pulumi stack output --json` instead of the CLI."
        ),
        pgbackrest_config: Path | None = typer.Option(
            None, "--pgbackrest-config", help="pgbackrest.conf of the self-managed database."
        ),
        stanza: str = typer.Option("main", "--stanza", help="pgBackRest stanza."),
        dsn: str | None = typer.Option(
            None, "--dsn", help="libpq DSN of the primary (reads pg_stat_archiver)."
        ),
        project_dir: Path = typer.Option(ROOT, "--project-dir", help="Holds the stack files."),
    ) -> None:
        """Live checks against the objectives; exit 1 when any check fails."""
        try:
            objectives = objectives_of_stack(stack, project_dir)
            if outputs_file is not None:
                if not outputs_file.exists():
                    fail(f"--outputs {outputs_file}: no such file", ExitCode.INVALID_CONFIG)
                outputs = json.loads(outputs_file.read_text())
            else:
                outputs = pulumi_outputs(stack)
            database = None
            if pgbackrest_config is not None or dsn is not None:
                if pgbackrest_config is None or dsn is None:
                    fail(
                        "--pgbackrest-config and --dsn go together (the repository and the "
                        "primary it archives)",
                        ExitCode.INVALID_CONFIG,
                    )
                from scripts.dataops.pgbackrest import PgBackRest

                database = PgBackRestSource(PgBackRest(pgbackrest_config, stanza), dsn)
        except (ConfigError, FileNotFoundError) as err:
            fail(str(err), ExitCode.INVALID_CONFIG)
        except DrctlError as err:
            fail(str(err), err.code)
        clients = session_clients(lambda region: boto3.session.Session(region_name=region))
        checks = run_checks(
            stack, objectives, outputs, clients, database=database, root=project_dir
        )
        all_ok = all(c.ok for c in checks)
        if json_output:
            print_json({"stack": stack, "checks": [c.to_dict() for c in checks], "all_ok": all_ok})
        else:
            render(stack, checks)
        if not all_ok:
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
