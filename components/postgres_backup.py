"""PostgresBackup: point-in-time recovery of the platform database, for one of three backends.

The backend comes from the objectives (``dbBackend``):

- ``rds``: an RDS for PostgreSQL instance (declared, or adopted with ``adopt_instance_id``) whose
  automated backups keep the PITR window, encrypted with a multi-Region customer key, plus
  ``InstanceAutomatedBackupsReplication`` into the DR region under the DR replica of that key, so
  PITR also works after the primary region is lost.
- ``self-managed``: Supabase-compatible Postgres the team runs. pgBackRest writes two independent
  repositories: repo1 in the primary region and repo2 in the DR region (archive-push and every
  backup write to both; neither is a replica of the other, so a bug or a deletion in one does not
  travel to the other). Each repository bucket is a critical-class ``ReplicatedBucket`` with
  object lock. The host gets an instance profile limited to exactly those buckets and keys, and
  pulumi-postgresql declares the replication and monitoring roles and the DR standby's physical
  slot. The rendered pgbackrest.conf, Postgres settings, systemd units and cron lines are outputs.
- ``supabase`` (hosted): hosted PITR stays in one region and leaves Storage out, so it is not DR
  on its own. A Publication on the Supabase database feeds a Subscription on a DR-region Postgres,
  and scheduled ``pg_dump -Fc`` dumps (daily, plus a monthly archive) go to a replicated bucket.
  The subscriber host publishes the subscription's lag every minute (a rendered systemd timer)
  and a DR-region alarm at the critical RPO pages on a breach or on silence: that alarm is what
  bounds the data lost with the primary region.
  The PITR add-on itself can only be enabled by the operator (``drctl supabase check``).

pulumi-postgresql providers are never built here (house rule): the caller passes them in.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_postgresql as postgresql

from components import pgbackrest_config as pgbr
from components.database_host import (  # noqa: F401 (cipher_secret_name: this module's API too)
    cipher_secret_name,
    declare_host_protection,
    render_self_managed,
    self_managed_paths,
    slot_name,
)
from components.iam import service_trust_policy
from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import (
    AWS_REGIONS,
    DAY,
    ConfigError,
    Objectives,
    Regions,
    class_tags,
    format_duration,
)
from components.replicated_bucket import ObjectLock, ReplicatedBucket, ReplicatedBucketArgs
from components.systemd_units import oneshot_service as _oneshot_service
from components.systemd_units import systemd_exec_arg  # noqa: F401 (part of this module's API)
from components.systemd_units import timer as _timer

DATASET = "database"
RDS_ENGINE_VERSION = "16"
RDS_LOG_EXPORTS = ("postgresql", "upgrade")
# RDS ships transaction logs to S3 every five minutes: the in-region PITR bound (AWS RDS docs,
# "Restoring a DB instance to a specified time").
RDS_LOG_UPLOAD_S = 300
# The spec's "7-day point-in-time recovery": RDS keeps at least that even if pitrWindowDays is less.
SPEC_MIN_PITR_DAYS = 7
REPLICATION_ROLE = "dr_replicator"
MONITORING_ROLE = "dr_monitor"
PUBLICATION = "platform_dr"
SUBSCRIPTION = "platform_dr_sub"
DUMP_PREFIX = "dumps"
DUMP_ENV_FILE = "/etc/platform-dr/supabase-dump.env"
# The dump role's password: a root-only pgpass file, handed to the unit as a systemd credential
# (LoadCredential) and to libpq as PGPASSFILE, so it is never on pg_dump's command line.
DUMP_PGPASS_FILE = "/etc/platform-dr/supabase-dump.pgpass"
DUMP_PGPASS_CREDENTIAL = (
    f"LoadCredential=pgpass:{DUMP_PGPASS_FILE}",
    "Environment=PGPASSFILE=%d/pgpass",
)
GIB = 1024**3


@dataclass
class PostgresBackupArgs:
    """Arguments of PostgresBackup. The backend is ``objectives.db_backend``.

    objectives: the stack's Objectives (PITR window, critical RPO, regions, lock mode).
    alarm_topic_arns: region -> SNS topic for alarms; default none (supabase needs the DR
        region's, for the subscription lag alarm).

    rds:
    adopt_instance_id: identifier of an existing instance to import instead of creating one;
        default "" (create ``platform-dr-<stack>``).
    instance_class: default "db.r6g.large".
    allocated_storage_gb / max_allocated_storage_gb: default 100 / 1000 (storage autoscaling).
    engine_version: default "16".
    multi_az: default True (a failed host must not wait for a restore: critical RTO is 1 h).
    db_subnet_group_name: default None (the account's default VPC).
    vpc_security_group_ids: default none (the VPC's default group).
    backup_window / maintenance_window: default "03:00-03:30" / "sun:04:00-sun:04:30" (UTC;
        they must not overlap).

    self-managed and supabase:
    postgres_provider: pulumi_postgresql Provider for the primary database (the self-managed
        primary, or the Supabase database). Required for these backends; built by the caller.
    primary_host: the primary's host name, exported as ``primary_endpoint``. Default "".
    replication_password: secret password of the replication role; default None (the role then
        logs in by certificate or peer authentication only).
    pg_data_path: data directory on the host; default /var/lib/postgresql/15/main.
    lease_bucket / lease_bucket_arn / lease_key_arn: self-managed; the FailoverControl bucket in
        the DR region whose lease the hosts' fence guards hold, and its KMS key
        (components/failover_control.py). Required.
    rearm_region: self-managed; a region (not the primary or DR one) for a second repository of
        the promoted DR primary after a failover (``rearm_settings``); default "" = none.

    supabase:
    dr_postgres_provider: Provider for the DR-region Postgres that subscribes. Required.
    publisher_conninfo: secret libpq connection string of the Supabase database, used by the
        subscription. Required.
    publication_tables: tables to publish ("schema.table"); default none = all tables.
    database: database published and subscribed; default "postgres".

    every backend (what posture sizes each recovery path with, against the RTO):
    database_bytes: size of the database to restore; default 100 GiB (config ``dbSize``).
    wal_bytes_per_hour: WAL written per hour at peak; default 2 GiB (config ``dbWalRate``).
    """

    objectives: Objectives
    alarm_topic_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    adopt_instance_id: str = ""
    instance_class: str = "db.r6g.large"
    allocated_storage_gb: int = 100
    max_allocated_storage_gb: int = 1000
    engine_version: str = RDS_ENGINE_VERSION
    multi_az: bool = True
    db_subnet_group_name: pulumi.Input[str] | None = None
    vpc_security_group_ids: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    backup_window: str = "03:00-03:30"
    maintenance_window: str = "sun:04:00-sun:04:30"
    postgres_provider: postgresql.Provider | None = None
    primary_host: pulumi.Input[str] = ""
    replication_password: pulumi.Input[str] | None = None
    pg_data_path: str = "/var/lib/postgresql/15/main"
    lease_bucket: pulumi.Input[str] | None = None
    lease_bucket_arn: pulumi.Input[str] | None = None
    lease_key_arn: pulumi.Input[str] | None = None
    rearm_region: str = ""
    dr_postgres_provider: postgresql.Provider | None = None
    publisher_conninfo: pulumi.Input[str] | None = None
    publication_tables: Sequence[str] = field(default_factory=tuple)
    database: str = "postgres"
    database_bytes: int = 100 * GIB
    wal_bytes_per_hour: int = 2 * GIB


# -- pure helpers (tested directly) -------------------------------------------------------------


def rds_identifier(objectives: Objectives) -> str:
    return f"platform-dr-{objectives.stack}".lower()


def rds_retention_days(objectives: Objectives) -> int:
    """Automated-backup retention: the PITR window, never under the spec's 7 days."""
    return max(SPEC_MIN_PITR_DAYS, objectives.pitr_window_days)


def repo_lock_days(objectives: Objectives) -> int:
    """Object lock on repository objects: the PITR window plus one full-backup cycle.

    The oldest object a restore inside the window needs is the full before the window's start,
    at most one full interval older than the window. Locking that long means nobody, not even a
    stolen host credential, can remove what a PITR restore needs; longer would lock backups
    pgBackRest has already expired.
    """
    return objectives.pitr_window_days + -(-objectives.schedule.full_s // DAY)


def dump_lock_days(objectives: Objectives) -> int:
    """Logical dumps are locked for the PITR window plus the monthly archive interval."""
    return objectives.pitr_window_days + -(-objectives.schedule.archive_s // DAY)


def s3_kms_policy(
    buckets: Sequence[str],
    keys: Sequence[str],
    prefix: str,
    *,
    delete: bool,
) -> str:
    """IAM policy JSON: exactly these buckets under ``prefix``, exactly these keys, no wildcard
    actions. ``delete`` is for pgBackRest's expire; the dump writer never deletes."""
    object_actions = ["s3:GetObject", "s3:PutObject"]
    if delete:
        object_actions.append("s3:DeleteObject")
    statements = [
        {
            "Sid": "ListRepository",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": sorted(buckets),
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        },
        {
            "Sid": "ReadWriteRepository",
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": sorted(f"{b}/{prefix}/*" for b in buckets),
        },
        {
            # SSE-KMS: GenerateDataKey to write, Decrypt to read and to finish multipart uploads.
            "Sid": "UseRepositoryKeys",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": sorted(keys),
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


@dataclass(frozen=True)
class DumpJob:
    kind: str  # daily | monthly
    on_calendar: str
    cron: str


DUMP_JOBS = (
    DumpJob("daily", "*-*-* 02:15:00 UTC", "15 2 * * *"),
    DumpJob("monthly", "*-*-01 02:45:00 UTC", "45 2 1 * *"),
)


def _dump_script(bucket: str, key_arn: str, region: str, kind: str, pct: str) -> str:
    """pg_dump -Fc streamed straight to S3 under the dump bucket's key; nothing on local disk.

    The DSN comes from the environment (PUBLISHER_DSN, in a 0600 EnvironmentFile), never from
    this text, and holds no password: pg_dump's arguments are world-readable (ps,
    /proc/PID/cmdline), so the password comes from the pgpass file (PGPASSFILE) and a DSN with a
    password is refused before pg_dump starts. ``pct`` is how a literal % is written: "%" for
    systemd (systemd_exec_arg escapes it), "\\%" for cron.
    """
    stamp = f"$(date -u +{pct}Y-{pct}m-{pct}dT{pct}H{pct}MZ)"
    target = f"s3://{bucket}/{DUMP_PREFIX}/{kind}/{stamp}.dump"
    return (
        'case "$PUBLISHER_DSN" in *password=*|*://*:*@*) echo "PUBLISHER_DSN must not hold '
        f'the password (it would show in ps): put it in {DUMP_PGPASS_FILE}" >&2; exit 2;; esac; '
        'pg_dump --format=custom --no-owner --dbname="$PUBLISHER_DSN" | '
        f"aws s3 cp - {target} --region {region} --sse aws:kms --sse-kms-key-id {key_arn}"
    )


def render_dump_schedule(bucket: str, key_arn: str, region: str) -> dict[str, str]:
    """{relative path: text}: systemd service+timer per dump kind, and the equivalent cron.d."""
    files: dict[str, str] = {}
    cron = [
        "# Rendered by components/postgres_backup.py: logical dumps of the Supabase database.",
        "SHELL=/bin/bash",
    ]
    for job in DUMP_JOBS:
        unit = f"supabase-dump-{job.kind}"
        script = _dump_script(bucket, key_arn, region, job.kind, "%")
        files[f"systemd/{unit}.service"] = _oneshot_service(
            f"pg_dump -Fc of the Supabase database to S3 ({job.kind})",
            script,
            DUMP_ENV_FILE,
            service_extra=DUMP_PGPASS_CREDENTIAL,
        )
        files[f"systemd/{unit}.timer"] = _timer(
            f"Supabase logical dump ({job.kind})", job.on_calendar, "Persistent=true"
        )
        cron_script = _dump_script(bucket, key_arn, region, job.kind, "\\%")
        cron.append(
            f"{job.cron} postgres set -o pipefail; . {DUMP_ENV_FILE}; export PUBLISHER_DSN; "
            f"export PGPASSFILE={DUMP_PGPASS_FILE}; "
            f"{cron_script}"
        )
    files["cron.d/supabase-dump"] = "\n".join(cron) + "\n"
    return files


# The subscriber's lag as a CloudWatch metric: the alarm on it is what bounds a region loss.
LAG_NAMESPACE = "platform-dr"
LAG_METRIC = "SubscriptionLagSeconds"
LAG_UNIT = "subscription-lag-monitor"


def subscription_lag_sql(subscription: str) -> str:
    """Seconds since the publisher's last position the subscriber has caught up to.

    latest_end_time is the send time of the last keepalive the apply worker processed: messages
    are applied in order, so while the worker is behind (or stopped) this age grows; idle, the
    worker pings the publisher every wal_receiver_timeout/2, so it stays under about 30 s (plus
    any clock skew between the two hosts: the time is the publisher's). Only
    the main apply worker's row (relid null) with a running worker counts: no row, no number.
    """
    name = subscription.replace("'", "''")
    return (
        "select round(extract(epoch from now() - latest_end_time)::numeric, 1) "
        f"from pg_stat_subscription where subname = '{name}' and relid is null "
        "and pid is not null and latest_end_time is not null"
    )


def _lag_script(subscription: str, dbname: str, region: str) -> str:
    # Nothing is published when the query gives no number: missing data is what the alarm
    # treats as breaching, so a stopped worker or a dead monitor pages like a lag would.
    sql = subscription_lag_sql(subscription)
    return (
        f"lag=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -d {shlex.quote(dbname)} "
        f'-c "{sql}") && [ -n "$lag" ] && '
        f"aws cloudwatch put-metric-data --region {region} --namespace {LAG_NAMESPACE} "
        f"--metric-name {LAG_METRIC} --dimensions Subscription={subscription} "
        '--unit Seconds --value "$lag"'
    )


def render_subscription_monitor(subscription: str, dbname: str, region: str) -> dict[str, str]:
    """{relative path: text}: a service+timer that publishes the subscription's lag every minute.

    Runs on the DR subscriber host as postgres (local socket; PGHOST/PGPORT if set), with the
    host's instance profile, into ``region`` (the DR region, where the alarm is).
    """
    script = _lag_script(subscription, dbname, region)
    return {
        f"systemd/{LAG_UNIT}.service": _oneshot_service(
            f"publish the lag of subscription {subscription} to CloudWatch", script
        ),
        f"systemd/{LAG_UNIT}.timer": _timer(
            f"subscription {subscription} lag, every minute", "minutely", "AccuracySec=5s"
        ),
    }


# -- the component -------------------------------------------------------------------------------


class PostgresBackup(pulumi.ComponentResource):
    """Outputs: ``backend``, ``primary_endpoint``, ``rds_instance_arn`` (rds, else None),
    ``automated_backups_replication_arn`` (rds), ``replication_slot_name`` (self-managed),
    ``publication_name`` (supabase), ``repo_bucket_names`` (self-managed: repo1/repo2 -> name),
    ``dump_bucket_names`` (supabase: region -> name), ``artefacts`` (path -> rendered text)."""

    TYPE = "platform-dr:postgres_backup:PostgresBackup"

    def __init__(
        self, name: str, args: PostgresBackupArgs, opts: pulumi.ResourceOptions | None = None
    ):
        objectives = args.objectives
        backend = objectives.db_backend
        _validate(args)
        # Identity only: the policy rules read every setting from the rendered ``artefacts``
        # (registered below), the files the hosts run with, never from derived inputs.
        props: dict[str, Any] = {
            "backend": backend,
            "dataset": DATASET,
            "pitrWindowDays": objectives.pitr_window_days,
            # Declared facts (config dbSize, dbWalRate) posture's RTO estimates start from.
            "databaseBytes": args.database_bytes,
            "walBytesPerHour": args.wal_bytes_per_hour,
        }
        super().__init__(self.TYPE, name, props, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._data_opts = pulumi.ResourceOptions(
            parent=self, protect=objectives.protect_data, retain_on_delete=True
        )
        self.backend = backend
        self.rds_instance_arn: pulumi.Output[str] | None = None
        self.automated_backups_replication_arn: pulumi.Output[str] | None = None
        self.replication_slot_name: str | None = None
        self.publication_name: str | None = None
        self.subscription_name: str | None = None
        self.repo_bucket_names: dict[str, pulumi.Output[str]] | None = None
        self.dump_bucket_names: dict[str, pulumi.Output[str]] | None = None
        self.artefacts: dict[str, pulumi.Output[str]] = {}
        self.cipher_secret_arns: dict[str, pulumi.Output[str]] | None = None
        self.replication_role = REPLICATION_ROLE if backend == "self-managed" else None
        if backend == "rds":
            self._rds(args)
        elif backend == "self-managed":
            self._self_managed(args)
        else:
            self._supabase(args)
        self.register_outputs(
            {
                **props,  # what the policy rules read; stack policies see outputs, not inputs
                "primary_endpoint": self.primary_endpoint,
                "rds_instance_arn": self.rds_instance_arn,
                "replication_slot_name": self.replication_slot_name,
                "publication_name": self.publication_name,
                "repo_bucket_names": self.repo_bucket_names,
                # The host files themselves: what posture and the policy pack parse.
                "artefacts": self.artefacts,
            }
        )

    # -- rds ---------------------------------------------------------------------------------

    def _rds(self, args: PostgresBackupArgs) -> None:
        objectives, name = args.objectives, self._name
        regions = objectives.regions
        tags = class_tags("critical", DATASET)
        self.key = MultiRegionKey(
            f"{name}-key",
            MultiRegionKeyArgs(
                regions=[regions.primary, regions.dr],
                description="platform database storage and automated backups",
                data_class="critical",
                dataset=DATASET,
            ),
            opts=self._child,
        )
        params = aws.rds.ParameterGroup(
            f"{name}-params",
            region=regions.primary,
            family=f"postgres{args.engine_version.split('.')[0]}",
            description="platform-dr: TLS only, connection and DDL logging",
            parameters=[
                {"name": "rds.force_ssl", "value": "1", "apply_method": "pending-reboot"},
                {"name": "log_connections", "value": "1", "apply_method": "immediate"},
                {"name": "log_statement", "value": "ddl", "apply_method": "immediate"},
            ],
            tags=tags,
            opts=self._child,
        )
        identifier = args.adopt_instance_id or rds_identifier(objectives)
        if objectives.is_rebuild and not args.adopt_instance_id:
            # A rebuild must carry prod's data over, and a new instance would start empty.
            pulumi.log.warn(
                f"{objectives.stack} rebuilds from {objectives.rebuild_from} but declares a NEW, "
                "empty RDS instance: first `drctl restore --stack <prod> --from-repo 2 --to "
                f"{identifier} --execute`, then set platform-dr:rdsAdoptInstanceId={identifier}",
                resource=self,
            )
        instance_opts = self._data_opts
        if args.adopt_instance_id:
            instance_opts = pulumi.ResourceOptions.merge(
                instance_opts, pulumi.ResourceOptions(import_=args.adopt_instance_id)
            )
        instance = aws.rds.Instance(
            f"{name}-instance",
            region=regions.primary,
            identifier=identifier,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=self.key.arns[regions.primary],
            username="platform_admin",
            # RDS creates and rotates the password in Secrets Manager: no plain password exists
            # in config, state or outputs.
            manage_master_user_password=True,
            master_user_secret_kms_key_id=self.key.arns[regions.primary],
            iam_database_authentication_enabled=True,
            multi_az=args.multi_az,
            publicly_accessible=False,
            db_subnet_group_name=args.db_subnet_group_name,
            vpc_security_group_ids=list(args.vpc_security_group_ids) or None,
            parameter_group_name=params.name,
            backup_retention_period=rds_retention_days(objectives),
            backup_window=args.backup_window,
            maintenance_window=args.maintenance_window,
            copy_tags_to_snapshot=True,
            # Deleting the instance must not delete the backups that could bring it back.
            delete_automated_backups=False,
            deletion_protection=objectives.protect_data,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{identifier}-final",
            enabled_cloudwatch_logs_exports=list(RDS_LOG_EXPORTS),
            performance_insights_enabled=True,
            performance_insights_kms_key_id=self.key.arns[regions.primary],
            auto_minor_version_upgrade=True,
            tags=tags,
            opts=instance_opts,
        )
        replication = aws.rds.InstanceAutomatedBackupsReplication(
            f"{name}-backups-{regions.dr}",
            region=regions.dr,
            source_db_instance_arn=instance.arn,
            kms_key_id=self.key.arns[regions.dr],
            retention_period=rds_retention_days(objectives),
            opts=self._data_opts,
        )
        self.primary_endpoint = instance.address
        self.rds_instance_arn = instance.arn
        # The replicated backup's id is its ARN in the DR region: what `drctl restore
        # --from-repo 2` and a rebuild restore from.
        self.automated_backups_replication_arn = replication.id

    # -- self-managed ----------------------------------------------------------------------

    def _self_managed(self, args: PostgresBackupArgs) -> None:
        objectives, name = args.objectives, self._name
        regions = objectives.regions
        lock = ObjectLock(objectives.backup_object_lock_mode, repo_lock_days(objectives))
        # Two independent repositories. Each is itself a critical-class ReplicatedBucket, rooted
        # in its own region: repo1 in the primary region, repo2 in the DR region (the objectives
        # are re-rooted for it, so its copies go to the third and primary regions).
        rooted_in_dr = replace(
            objectives, regions=Regions(regions.dr, regions.third, regions.primary)
        )
        repos = {}
        for repo, root in (("repo1", objectives), ("repo2", rooted_in_dr)):
            repos[repo] = ReplicatedBucket(
                f"{name}-{repo}",
                ReplicatedBucketArgs(
                    objectives=root,
                    data_class="critical",
                    dataset=f"postgres-{repo}",
                    object_lock=lock,
                    # pgBackRest reads archive.info on every push: never an archive class.
                    archive_profile="repository",
                    alarm_topic_arns=args.alarm_topic_arns,
                ),
                opts=self._child,
            )
        repo1, repo2 = repos["repo1"], repos["repo2"]
        self.repo_bucket_names = {
            "repo1": repo1.bucket_names[regions.primary],
            "repo2": repo2.bucket_names[regions.dr],
        }
        bucket_arns = [repo1.bucket_arns[regions.primary], repo2.bucket_arns[regions.dr]]
        key_arns = [repo1.key_arns[regions.primary], repo2.key_arns[regions.dr]]
        rearm = args.rearm_region
        rearm_parts: list[pulumi.Input[str]] = ["", ""]
        if rearm:
            # The promoted DR primary's second repository, in a region that is neither the one
            # lost nor the DR one; it replicates like the others.
            third = regions.third if regions.third != rearm else regions.primary
            repo3 = ReplicatedBucket(
                f"{name}-repo-rearm",
                ReplicatedBucketArgs(
                    objectives=replace(objectives, regions=Regions(rearm, regions.dr, third)),
                    data_class="critical",
                    dataset="postgres-repo-rearm",
                    object_lock=lock,
                    alarm_topic_arns=args.alarm_topic_arns,
                ),
                opts=self._child,
            )
            self.repo_bucket_names["rearm"] = repo3.bucket_names[rearm]
            bucket_arns.append(repo3.bucket_arns[rearm])
            key_arns.append(repo3.key_arns[rearm])
            rearm_parts = [repo3.bucket_names[rearm], repo3.key_arns[rearm]]
        self.host_role, self.instance_profile = self._host_role(
            "host", bucket_arns, key_arns, pgbr.REPO_S3_PATH.strip("/"), delete=True
        )

        provider = pulumi.ResourceOptions(parent=self, provider=args.postgres_provider)
        postgresql.Role(
            f"{name}-replication-role",
            name=REPLICATION_ROLE,
            login=True,
            replication=True,
            password=args.replication_password,
            connection_limit=5,
            opts=provider,
        )
        postgresql.Role(
            f"{name}-monitoring-role",
            name=MONITORING_ROLE,
            login=True,
            roles=["pg_monitor"],
            connection_limit=3,
            opts=provider,
        )
        self.replication_slot_name = slot_name(objectives)
        postgresql.PhysicalReplicationSlot(
            f"{name}-standby-slot", name=self.replication_slot_name, opts=provider
        )
        self.primary_endpoint = pulumi.Output.from_input(args.primary_host)

        self._host_agents(args, repo1, repo2)
        rendered = pulumi.Output.all(
            self.repo_bucket_names["repo1"],
            self.repo_bucket_names["repo2"],
            *key_arns[:2],
            args.lease_bucket,
            *rearm_parts,
        ).apply(
            lambda v: render_self_managed(
                objectives,
                *v[:5],
                pg_path=args.pg_data_path,
                rearm_repo=(rearm, v[5], v[6]) if rearm else None,
            )
        )
        for path in self_managed_paths(objectives):
            self.artefacts[path] = rendered.apply(lambda files, p=path: files[p])

    def _host_agents(self, args: PostgresBackupArgs, repo1, repo2) -> None:
        self.cipher_secret_arns = declare_host_protection(
            self, self._name, args.objectives, args, repo1, repo2
        )

    # -- supabase --------------------------------------------------------------------------

    def _supabase(self, args: PostgresBackupArgs) -> None:
        objectives, name = args.objectives, self._name
        regions = objectives.regions
        publisher = pulumi.ResourceOptions(parent=self, provider=args.postgres_provider)
        subscriber = pulumi.ResourceOptions(parent=self, provider=args.dr_postgres_provider)
        publication = postgresql.Publication(
            f"{name}-publication",
            name=PUBLICATION,
            database=args.database,
            all_tables=not args.publication_tables,
            tables=list(args.publication_tables) or None,
            opts=publisher,
        )
        self.publication_name = PUBLICATION
        self.subscription_name = SUBSCRIPTION
        postgresql.Subscription(
            f"{name}-subscription",
            name=SUBSCRIPTION,
            database=args.database,
            conninfo=pulumi.Output.secret(args.publisher_conninfo),
            publications=[publication.name],
            create_slot=True,
            opts=pulumi.ResourceOptions.merge(
                subscriber, pulumi.ResourceOptions(additional_secret_outputs=["conninfo"])
            ),
        )
        dumps = ReplicatedBucket(
            f"{name}-dumps",
            ReplicatedBucketArgs(
                objectives=objectives,
                data_class="critical",
                dataset="postgres-dumps",
                object_lock=ObjectLock(
                    objectives.backup_object_lock_mode, dump_lock_days(objectives)
                ),
                alarm_topic_arns=args.alarm_topic_arns,
            ),
            opts=self._child,
        )
        self.dump_bucket_names = dumps.bucket_names
        # The dump job runs next to the DR subscriber, so a primary-region outage cannot stop
        # it; it writes into the dump bucket's primary copy and never deletes (append-only).
        self.host_role, self.instance_profile = self._host_role(
            "dump-host",
            [dumps.bucket_arns[regions.primary]],
            [dumps.key_arns[regions.primary]],
            DUMP_PREFIX,
            delete=False,
        )
        self.primary_endpoint = pulumi.Output.from_input(args.primary_host)
        rendered = pulumi.Output.all(
            dumps.bucket_names[regions.primary], dumps.key_arns[regions.primary]
        ).apply(lambda v: render_dump_schedule(v[0], v[1], regions.primary))
        for path in render_dump_schedule("b", "k", "r"):
            self.artefacts[path] = rendered.apply(lambda files, p=path: files[p])
        self._subscription_lag(args)

    def _subscription_lag(self, args: PostgresBackupArgs) -> None:
        """The subscription's lag, published every minute by the subscriber host, and its alarm.

        A logical subscription has no lag bound of its own. The alarm at the critical RPO makes
        one: a breach pages, so the declared worst case on region loss is its threshold. Missing
        data breaches too (a stopped apply worker or a dead monitor publishes nothing).
        """
        objectives, name = args.objectives, self._name
        dr = objectives.regions.dr
        for path, text in render_subscription_monitor(SUBSCRIPTION, args.database, dr).items():
            self.artefacts[path] = pulumi.Output.from_input(text)
        # PutMetricData has no resource ARN; the namespace condition is its only scope.
        aws.iam.RolePolicy(
            f"{name}-dump-host-metrics",
            role=self.host_role.id,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "PublishSubscriptionLag",
                            "Effect": "Allow",
                            "Action": ["cloudwatch:PutMetricData"],
                            "Resource": "*",
                            "Condition": {"StringEquals": {"cloudwatch:namespace": LAG_NAMESPACE}},
                        }
                    ],
                }
            ),
            opts=self._child,
        )
        rpo = objectives.of("critical").rpo_s
        topic = args.alarm_topic_arns[dr]
        aws.cloudwatch.MetricAlarm(
            f"{name}-subscription-lag",
            region=dr,
            namespace=LAG_NAMESPACE,
            metric_name=LAG_METRIC,
            dimensions={"Subscription": SUBSCRIPTION},
            statistic="Maximum",
            period=60,
            evaluation_periods=1,
            threshold=rpo,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="breaching",
            alarm_description=(
                f"subscription {SUBSCRIPTION} in {dr} is more than the critical RPO "
                f"({format_duration(rpo)}) behind the Supabase database, or its lag monitor "
                "stopped reporting"
            ),
            alarm_actions=[topic],
            ok_actions=[topic],
            tags=class_tags("critical", DATASET),
            opts=self._child,
        )

    # -- shared ----------------------------------------------------------------------------

    def _host_role(self, role: str, bucket_arns, key_arns, prefix: str, *, delete: bool):
        name = f"{self._name}-{role}"
        tags = class_tags("critical", DATASET)
        iam_role = aws.iam.Role(
            name,
            assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-s3-kms",
            role=iam_role.id,
            policy=pulumi.Output.all(bucket_arns, key_arns).apply(
                lambda v: s3_kms_policy(v[0], v[1], prefix, delete=delete)
            ),
            opts=self._child,
        )
        profile = aws.iam.InstanceProfile(name, role=iam_role.name, tags=tags, opts=self._child)
        return iam_role, profile


_HHMM = r"([01]\d|2[0-3]):([0-5]\d)"
_BACKUP_WINDOW = re.compile(rf"^{_HHMM}-{_HHMM}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAINTENANCE_WINDOW = re.compile(rf"^({'|'.join(_DAYS)}):{_HHMM}-({'|'.join(_DAYS)}):{_HHMM}$")
WEEK_MIN = 7 * 24 * 60


def _week_minutes(day: str, hh: str, mm: str) -> int:
    return _DAYS.index(day) * 1440 + int(hh) * 60 + int(mm)


def check_rds_windows(backup_window: str, maintenance_window: str) -> None:
    """RDS rejects a malformed window, a backup window under 30 minutes and overlapping windows;
    say so before anything is declared instead of failing mid-deploy."""
    backup = _BACKUP_WINDOW.match(backup_window)
    if not backup:
        raise ConfigError("backupWindow", backup_window, "hh:mm-hh:mm in UTC, e.g. 03:00-03:30")
    start = int(backup[1]) * 60 + int(backup[2])
    end = int(backup[3]) * 60 + int(backup[4])
    length = (end - start) % 1440
    if length < 30:
        raise ConfigError("backupWindow", backup_window, "at least 30 minutes long")
    maint = _MAINTENANCE_WINDOW.match(maintenance_window.lower())
    if not maint:
        raise ConfigError(
            "maintenanceWindow",
            maintenance_window,
            "ddd:hh:mm-ddd:hh:mm in UTC, e.g. sun:04:00-sun:04:30",
        )
    m_start = _week_minutes(*maint.groups()[0:3])
    m_end = _week_minutes(*maint.groups()[3:6])
    m_length = (m_end - m_start) % WEEK_MIN
    # The backup window recurs daily; the two overlap if any daily occurrence meets it.
    for day in range(7):
        b_start = day * 1440 + start
        for offset in (-WEEK_MIN, 0, WEEK_MIN):
            a0, a1 = b_start + offset, b_start + offset + length
            if a0 < m_start + m_length and m_start < a1:
                raise ConfigError(
                    "maintenanceWindow",
                    maintenance_window,
                    f"a window that does not overlap the daily backup window {backup_window}",
                )


def _validate(args: PostgresBackupArgs) -> None:
    """Raise before any resource is declared: a half-declared database is worse than none."""
    backend = args.objectives.db_backend
    if backend == "rds":
        check_rds_windows(args.backup_window, args.maintenance_window)
    if backend in ("self-managed", "supabase") and args.postgres_provider is None:
        raise ConfigError(
            "postgresProvider",
            None,
            f"a pulumi_postgresql.Provider passed in by the caller (backend {backend})",
        )
    if backend == "supabase":
        if args.dr_postgres_provider is None:
            raise ConfigError(
                "drPostgresProvider", None, "a pulumi_postgresql.Provider for the DR subscriber"
            )
        if args.publisher_conninfo is None:
            raise ConfigError(
                "publisherConninfo", None, "the Supabase database's connection string (secret)"
            )
        dr = args.objectives.regions.dr
        if dr not in args.alarm_topic_arns:
            raise ConfigError(
                "alarm_topic_arns", sorted(args.alarm_topic_arns), f"a topic in {dr} (lag alarm)"
            )
    if backend == "self-managed":
        # Fails early (ConfigError naming criticalRpo) if WAL archiving cannot meet the RPO.
        pgbr.archive_timing(args.objectives)
        _check_rearm_region(args.rearm_region, args.objectives)
        if None in (args.lease_bucket, args.lease_bucket_arn, args.lease_key_arn):
            raise ConfigError(
                "lease_bucket",
                None,
                "the FailoverControl bucket (name, ARN, key ARN) whose lease the fence guards hold",
            )


# -- stack config (keys in objectives.CONFIG_KEYS and Pulumi.yaml; secrets in their namespace) ---

SECRETS_NAMESPACE = "platform-dr-db"
SECRET_KEYS = ("password", "drPassword", "replicationPassword")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_PROJECT_REF = re.compile(r"^[a-z]{20}$")
_RDS_ID = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")
_INSTANCE_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class DatabaseSettings:
    """Non-secret database config. Defaults let a stack evaluate without any real database.

    host / port / username: the primary Postgres pulumi-postgresql connects to (the self-managed
        primary, or db.<ref>.supabase.co); default localhost / 5432 / postgres.
    dr_host: the DR-region Postgres that subscribes (supabase backend); default localhost.
    supabase_project_ref: the hosted project, for ``drctl supabase check``; default "".
    rds_instance_class / rds_adopt_instance_id / rearm_region: see PostgresBackupArgs.
    size_bytes / wal_bytes_per_hour: ``dbSize`` / ``dbWalRate``; default 100GB / 2GB/h.
    Passwords are secret config in the ``platform-dr-db`` namespace (``pulumi config set
    --secret platform-dr-db:password ...``): password, drPassword, replicationPassword.
    """

    host: str = "localhost"
    port: int = 5432
    username: str = "postgres"
    dr_host: str = "localhost"
    supabase_project_ref: str = ""
    rds_instance_class: str = "db.r6g.large"
    rds_adopt_instance_id: str = ""
    rearm_region: str = ""
    size_bytes: int = 100 * GIB
    wal_bytes_per_hour: int = 2 * GIB

    def provider_args(
        self, password: pulumi.Input[str] | None, *, dr: bool = False, superuser: bool = True
    ) -> dict[str, Any]:
        """Keyword arguments for ``pulumi_postgresql.Provider`` (the caller builds it)."""
        return {
            "host": self.dr_host if dr else self.host,
            "port": self.port,
            "username": self.username,
            "password": pulumi.Output.secret(password) if password is not None else None,
            "sslmode": "require",
            "superuser": superuser,
            "connect_timeout": 15,
        }

    def publisher_conninfo(
        self, password: pulumi.Input[str] | None, database: str = "postgres"
    ) -> pulumi.Output[str]:
        """libpq connection string of the primary, always a secret Output."""

        def build(secret: str | None) -> str:
            parts = {
                "host": self.host,
                "port": str(self.port),
                "user": self.username,
                "dbname": database,
                "sslmode": "require",
            }
            if secret:
                parts["password"] = secret
            return " ".join(f"{k}={_libpq_quote(v)}" for k, v in parts.items())

        return pulumi.Output.secret(pulumi.Output.from_input(password).apply(build))


def _libpq_quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_database_settings(raw: Mapping[str, Any]) -> DatabaseSettings:
    """Validate the database keys of raw stack config; ConfigError naming the key if bad."""
    d = DatabaseSettings()
    values = {
        "dbHost": str(raw.get("dbHost") or d.host),
        "drDbHost": str(raw.get("drDbHost") or d.dr_host),
        "dbUsername": str(raw.get("dbUsername") or d.username),
        "supabaseProjectRef": str(raw.get("supabaseProjectRef") or ""),
        "rdsInstanceClass": str(raw.get("rdsInstanceClass") or d.rds_instance_class),
        "rdsAdoptInstanceId": str(raw.get("rdsAdoptInstanceId") or ""),
        "rearmRegion": str(raw.get("rearmRegion") or ""),
    }
    for key in ("dbHost", "drDbHost"):
        if not _HOST.match(values[key]):
            raise ConfigError(key, values[key], "a host name or IP address, without a port")
    port_raw = raw.get("dbPort", d.port)
    try:
        port = int(port_raw)
    except (TypeError, ValueError):
        port = -1
    if isinstance(port_raw, bool) or not 1 <= port <= 65535:
        raise ConfigError("dbPort", port_raw, "a TCP port from 1 to 65535")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", values["dbUsername"]):
        raise ConfigError("dbUsername", values["dbUsername"], "a Postgres role name")
    ref = values["supabaseProjectRef"]
    if ref and not _PROJECT_REF.match(ref):
        raise ConfigError("supabaseProjectRef", ref, "a Supabase project ref: 20 lowercase letters")
    if not _INSTANCE_CLASS.match(values["rdsInstanceClass"]):
        raise ConfigError(
            "rdsInstanceClass", values["rdsInstanceClass"], "an RDS class such as db.r6g.large"
        )
    adopt = values["rdsAdoptInstanceId"]
    if adopt and not _RDS_ID.match(adopt):
        raise ConfigError(
            "rdsAdoptInstanceId", adopt, "an RDS instance identifier (letters, digits, hyphens)"
        )
    rearm = values["rearmRegion"]
    if rearm and rearm not in AWS_REGIONS:
        raise ConfigError("rearmRegion", rearm, "an AWS region name such as eu-central-1, or empty")
    return DatabaseSettings(
        host=values["dbHost"],
        port=port,
        username=values["dbUsername"],
        dr_host=values["drDbHost"],
        supabase_project_ref=ref,
        rds_instance_class=values["rdsInstanceClass"],
        rds_adopt_instance_id=adopt,
        rearm_region=rearm,
        size_bytes=parse_size("dbSize", raw.get("dbSize") or "100GB"),
        wal_bytes_per_hour=parse_rate_per_hour("dbWalRate", raw.get("dbWalRate") or "2GB/h"),
    )


_SIZE_UNITS = {"mb": 1024**2, "gb": GIB, "tb": 1024**4, "mib": 1024**2, "gib": GIB, "tib": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.I)
_PER = {"s": 3600, "min": 60, "h": 1, "d": 1 / 24}


def parse_size(key: str, value: Any) -> int:
    """'250GB' -> bytes (1024-based). Rejects zero, bare numbers and unknown units."""
    allowed = "a positive size with a unit MB, GB or TB (1024-based), e.g. '250GB'"
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not match or match[2].lower() not in _SIZE_UNITS or float(match[1]) <= 0:
        raise ConfigError(key, value, allowed)
    return int(float(match[1]) * _SIZE_UNITS[match[2].lower()])


def parse_rate_per_hour(key: str, value: Any) -> int:
    """'2GB/h' -> bytes per hour. The unit of time is s, min, h or d."""
    allowed = "a size per unit of time, e.g. '2GB/h' or '30MB/min' (s, min, h or d)"
    size, _, per = str(value).partition("/") if isinstance(value, str) else ("", "", "")
    if per.strip().lower() not in _PER:
        raise ConfigError(key, value, allowed)
    try:
        return int(parse_size(key, size) * _PER[per.strip().lower()])
    except ConfigError:
        raise ConfigError(key, value, allowed) from None


def load_database_settings(objectives: Objectives) -> DatabaseSettings:
    """Database config of the running stack, checked with the objectives before any resource
    is declared (e.g. an RPO too tight for WAL archiving is a ConfigError naming criticalRpo)."""
    from components.objectives import raw_config_from_pulumi

    settings = parse_database_settings(raw_config_from_pulumi())
    if objectives.db_backend == "self-managed":
        pgbr.archive_timing(objectives)
        _check_rearm_region(settings.rearm_region, objectives)
    return settings


def _check_rearm_region(rearm: str, objectives: Objectives) -> None:
    regions = objectives.regions
    if rearm and rearm in (regions.primary, regions.dr):
        raise ConfigError(
            "rearmRegion", rearm, f"a region other than {regions.primary} and {regions.dr}"
        )


def database_secret(key: str) -> pulumi.Output[str] | None:
    """A password from ``platform-dr-db:<key>`` secret config, or None when unset."""
    if key not in SECRET_KEYS:
        raise ConfigError(f"{SECRETS_NAMESPACE}:{key}", key, f"one of {', '.join(SECRET_KEYS)}")
    return pulumi.Config(SECRETS_NAMESPACE).get_secret(key)
