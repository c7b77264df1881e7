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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_postgresql as postgresql

from components import pgbackrest_config as pgbr
from components.database_derivation import (
    dump_lock_days,
    rds_identifier,
    rds_retention_days,
    repo_lock_days,
    s3_kms_policy,
)
from components.database_host import (  # noqa: F401 (cipher_secret_name: this module's API too)
    cipher_secret_name,
    declare_host_protection,
    render_self_managed,
    self_managed_paths,
    slot_name,
)
from components.database_settings import GIB, check_rds_windows, check_rearm_region
from components.iam import service_trust_policy
from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import (
    ConfigError,
    Objectives,
    Regions,
    class_tags,
    format_duration,
)
from components.postgres_jobs import (
    DUMP_PREFIX,
    LAG_METRIC,
    LAG_NAMESPACE,
    render_dump_schedule,
    render_subscription_monitor,
)
from components.replicated_bucket import ObjectLock, ReplicatedBucket, ReplicatedBucketArgs
from components.systemd_units import systemd_exec_arg  # noqa: F401 (part of this module's API)

DATASET = "database"
RDS_ENGINE_VERSION = "16"
RDS_LOG_EXPORTS = ("postgresql", "upgrade")
# RDS ships transaction logs to S3 every five minutes: the in-region PITR bound (AWS RDS docs,
# "Restoring a DB instance to a specified time").
RDS_LOG_UPLOAD_S = 300
# The spec's "7-day point-in-time recovery": RDS keeps at least that even if pitrWindowDays is less.
REPLICATION_ROLE = "dr_replicator"
MONITORING_ROLE = "dr_monitor"
PUBLICATION = "platform_dr"
SUBSCRIPTION = "platform_dr_sub"


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
        check_rearm_region(args.rearm_region, args.objectives)
        if None in (args.lease_bucket, args.lease_bucket_arn, args.lease_key_arn):
            raise ConfigError(
                "lease_bucket",
                None,
                "the FailoverControl bucket (name, ARN, key ARN) whose lease the fence guards hold",
            )
