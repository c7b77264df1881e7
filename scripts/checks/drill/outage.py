"""Scenario ``data-centre-outage``: the primary's host is lost while the application writes
through DNS; the declared health check detects it, drctl's failover runbook promotes the DR
standby, and the application finds the new primary through Route 53 with the TTL honoured.

Recovery point: the last WAL position the DR standby had received when the primary was lost
(``pg_last_wal_receive_lsn()``). The promise: every transaction whose commit record lies before
it is on the promoted database with its exact row, and every write the promoted database
acknowledged is kept. RTO runs from the failure through detection (health check + alarm),
the runbook (assess, fence, promote, switch config and DNS, validate) and the application's
resolver letting go of the old answer, to the first write the new primary acknowledges.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from scripts.checks.drill.datacheck import AFTER_POINT, PROMISED, UNCERTAIN, check_data, measure_rpo
from scripts.checks.drill.failover_runbook import run_failover_runbook
from scripts.checks.drill.model import ScenarioResult, Write
from scripts.checks.drill.monitor import CachingResolver, FailoverAuthority, HealthMonitor
from scripts.checks.drill.platform import (
    STACK,
    DrillContext,
    PgSite,
    commit_of,
    connect_app,
    ledger_rows,
    lsn_int,
    poll,
    set_and_reload,
    wal_commits,
)
from scripts.checks.drill.restore import wait_for_detection
from scripts.local.aws import CachedClients

ZONE = "drill.internal"
RECORD = f"db.{ZONE}"
SERVICE_TIMEOUT_S = 60


def endpoint(region: str) -> str:
    return f"db.{region}.{ZONE}"


def dr_control_plane(ctx: DrillContext, site: PgSite) -> dict[str, Any]:
    """What DrStandby/SecretsBackup/PostgresBackup would have deployed, on moto, with the declared
    health-check cadence and record TTL: a Route 53 zone with PRIMARY/SECONDARY failover records,
    the DB secret and runtime parameters in both regions, and repo2's backup files in a DR-region
    bucket. Returns stack outputs in the shape ``scripts.runbooks.failover.load_plan`` reads."""
    from components.secrets_backup import namespace_of, parameter_name, secret_name
    from scripts.runbooks.failover import ACTIVE_REGION_KEY, DATABASE_HOST_KEY

    declared = ctx.declared_mechanisms
    primary, dr = ctx.primary_region, ctx.dr_region
    namespace = namespace_of(ctx.objectives)
    r53 = ctx.aws.client("route53", "us-east-1")
    zone_id = r53.create_hosted_zone(Name=ZONE, CallerReference=secrets.token_hex(8))["HostedZone"][
        "Id"
    ].split("/")[-1]
    health = r53.create_health_check(
        CallerReference=secrets.token_hex(8),
        HealthCheckConfig={
            "Type": "TCP",
            "IPAddress": "127.0.0.1",
            "Port": site.primary.port,
            # Route 53 takes 10 or 30; the drill's monitor polls at the declared interval.
            "RequestInterval": 10 if declared.detection.poll_interval_s <= 10 else 30,
            "FailureThreshold": declared.detection.failure_threshold,
        },
    )["HealthCheck"]["Id"]
    changes = []
    for role, region, check in (("PRIMARY", primary, health), ("SECONDARY", dr, None)):
        record: dict[str, Any] = {
            "Name": RECORD,
            "Type": "CNAME",
            "SetIdentifier": f"{role.lower()}-{region}",
            "Failover": role,
            "TTL": int(declared.dns_ttl_s),
            "ResourceRecords": [{"Value": endpoint(region)}],
        }
        if check:
            record["HealthCheckId"] = check
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    # moto has no StopReplicationToReplica, so the DR copy of the secret is the standalone
    # secret that call would leave behind; the runbook reports it as already standalone.
    for region in (primary, dr):
        ctx.aws.client("secretsmanager", region).create_secret(
            Name=secret_name(namespace, "database"),
            SecretString=json.dumps({"host": endpoint(primary), "port": 5432}),
        )
        ssm = ctx.aws.client("ssm", region)
        for key, value in ((ACTIVE_REGION_KEY, primary), (DATABASE_HOST_KEY, endpoint(primary))):
            ssm.put_parameter(Name=parameter_name(namespace, key), Value=value, Type="String")
    # repo2 is a directory here; in prod it is an S3 bucket in the DR region with this layout.
    # Mirror its backup files so the runbook's "DR backup present" check reads a bucket.
    bucket = f"drill-pgbackrest-repo2-{dr}"
    s3 = ctx.aws.client("s3", dr)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": dr})
    repo2 = site.repo_dir(2)
    for path in sorted((repo2 / "backup").rglob("*")):
        if path.is_file():
            key = "pgbackrest/" + str(path.relative_to(repo2))
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return {
        "drStandby": {
            "backend": "self-managed",
            "primaryRegion": primary,
            "drRegion": dr,
            "zoneId": zone_id,
            "recordName": RECORD,
            "healthCheckId": health,
            "primaryEndpoint": endpoint(primary),
            "standbyEndpoint": endpoint(dr),
            "port": 5432,
        },
        "database": {"repoBuckets": {"repo2": bucket}, "replicationSlotName": "dr_standby"},
    }


def scenario_outage(ctx: DrillContext, result: ScenarioResult) -> None:
    site = PgSite(ctx, "outage")
    with ctx.step("healthy platform: primary, streaming standby (slot), backup in repo2", "setup"):
        site.start(backups=(2,), standby=True)
    with ctx.step(
        "DR control plane on moto: Route 53 failover records, secrets, SSM, repo2", "setup"
    ):
        outputs = dr_control_plane(ctx, site)
        zone_id = outputs["drStandby"]["zoneId"]
    monitor = HealthMonitor(ctx.mechanisms.detection, "127.0.0.1", site.primary.port)
    authority = FailoverAuthority(
        ctx.aws.client("route53", "us-east-1"), zone_id, lambda _check: monitor.healthy
    )
    resolver = CachingResolver(authority, ctx.time_scale)
    servers = {endpoint(ctx.primary_region): site.primary, endpoint(ctx.dr_region): site.standby}

    def connect_through_dns() -> tuple[Any, str]:
        name = resolver.resolve(RECORD)
        return connect_app(servers[name].conninfo("app")), name

    start_lsn = site.wal_position()
    writer = site.writer(reconnect=True, connect=connect_through_dns)
    ctx.cleanups += [writer.stop, monitor.stop]
    with ctx.step(f"write load through {RECORD} ({ctx.db_load_s:.1f} s)", "load"):
        if ctx.faults.active("replay-paused"):
            site.standby.execute("select pg_wal_replay_pause()")
        if ctx.faults.active("replication-stopped"):
            set_and_reload(site.standby, "primary_conninfo", "")
        writer.start()
        monitor.start()
        time.sleep(ctx.db_load_s)
    dns_before = resolver.resolve(RECORD)

    failure = ctx.mark_failure(
        f"incident: the primary's host ({ctx.primary_region}) is lost (SIGKILL)"
    )
    site.primary.kill()
    wait_for_detection(ctx, monitor, failure)
    result.detection = monitor.to_record(failure)
    received = site.standby.scalar("select pg_last_wal_receive_lsn()::text")
    point = lsn_int(received) if received else 0
    result.recovery_point = {
        "kind": "lsn",
        "value": received,
        "how": "pg_last_wal_receive_lsn() on the DR standby after the primary was lost: the WAL "
        "it had received",
    }
    outcome = run_failover_runbook(
        STACK,
        outputs,
        CachedClients(ctx.aws),
        site.primary.conninfo("app"),
        site.standby.conninfo("app"),
        rpo_s=ctx.scaled_rpo("critical"),
        rto_s=ctx.scaled_rto("critical"),
        journal=ctx.workdir / "failover-journal.json",
    )
    for title, phase, start, end in outcome.step_times():
        ctx.add_step(title, phase, start, end)
    dr = endpoint(ctx.dr_region)
    if outcome.error:
        result.error = outcome.error
    else:
        first = poll(lambda: writer.first_ack_after(failure, where=dr), SERVICE_TIMEOUT_S)
        answered = resolver.first_answer(dr, after=failure)
        if answered is not None:
            # From Route 53 answering the DR endpoint to the application's cache letting go.
            ctx.add_step(
                f"the application's resolver answers {dr} (TTL {ctx.mechanisms.dns_ttl_s:g} s)",
                "dns",
                monitor.unhealthy_since(failure) or failure,
                answered,
            )
        validated = outcome.finished_at("validate")
        if first is None:
            result.error = "no write was accepted through DNS after the failover"
        elif validated is not None:
            back = max(first, validated)
            ctx.add_step(
                "the promoted database accepts the application's writes", "service", first, back
            )
            ctx.service_back(back)
        time.sleep(0.2)  # a few writes on the new primary, which must all be kept
    writer.stop()
    monitor.stop()

    with ctx.step("verify: every write against the standby's received WAL (pg_waldump)", "verify"):
        commits = wal_commits(site.primary.data_dir, start_lsn)
        placed: list[tuple[Write, str]] = [(w, PROMISED) for w in site.seed]
        primary_endpoint = endpoint(ctx.primary_region)
        for write in writer.writes:
            if write.acked_at is None:
                placed.append((write, UNCERTAIN))
            elif write.position.get("where") != primary_endpoint:
                placed.append((write, PROMISED))  # acknowledged by the promoted database
            else:
                end, _ = commit_of(write, commits)
                placed.append((write, PROMISED if end <= point else AFTER_POINT))
        recovered = ledger_rows(site.standby)
        result.data = check_data(placed, recovered, f"standby received WAL up to {received}")
        result.rpo_s = measure_rpo(site.seed + writer.writes, recovered, failure)
    result.evidence = {
        "dns_before": dns_before,
        "dns_answers": [
            {"at_s": round(t - failure, 3), "answer": v}
            for t, v in resolver.changes
            if t >= failure
        ],
        "ttl_s": ctx.mechanisms.dns_ttl_s,
        "acknowledged_writes": len(writer.acked()),
        "acknowledged_by_promoted_database": sum(
            1 for w in writer.acked() if w.position.get("where") == dr
        ),
        "writes_refused_read_only_or_gone": writer.refused,
        "runbook_refused": outcome.refused,
        "lag_at_assess": outcome.result_of("assess"),
        "standby_timeline": outcome.result_of("promote").get("timeline"),
        "note": "repo2's backup files are mirrored to a moto bucket for the runbook's DR-backup "
        "check; the DR secret is a standalone copy (moto has no StopReplicationToReplica)",
    }
