"""platform-dr: read config -> objectives -> build components -> export outputs.

Kept thin on purpose: every decision lives in components/objectives.py or a component.
"""

import sys

import pulumi
import pulumi_postgresql as postgresql

from components.alerts import AlertTopics, AlertTopicsArgs
from components.backup_plan import BackupPlan, BackupPlanArgs, load_config_recording
from components.contacts import load_contacts
from components.database_settings import database_secret, load_database_settings
from components.deployment_guard import refuse_example_deployment, running_on_real_engine
from components.dr_network import load_primary_network, rebuild_primary_network
from components.dr_standby import DrStandby, DrStandbyArgs, StandbyDatabase, load_dr_settings
from components.failover_control import FailoverControl, FailoverControlArgs, journal_key
from components.inventory import InventoriedDataset, ObjectInventory, ObjectInventoryArgs
from components.notification_topics import NotificationTopics, NotificationTopicsArgs
from components.objectives import ConfigError, ObjectivesRecord, load_objectives
from components.postgres_backup import PostgresBackup, PostgresBackupArgs
from components.replicated_bucket import ReplicatedBucket, ReplicatedBucketArgs
from components.secrets_backup import SecretsBackup, load_settings, secrets_backup_args
from components.services import DATASETS, load_catalogue
from components.status_page import StatusPage, StatusPageArgs

try:
    objectives = load_objectives()
    app_config = load_settings()
    db_settings = load_database_settings(objectives)
    dr_settings = load_dr_settings()
    config_recording = load_config_recording()
    primary_network = load_primary_network(objectives, dr_settings.vpc_cidr)
    catalogue = load_catalogue(objectives, [*app_config.api_keys, *app_config.integrations])
    contacts = load_contacts()
    refuse_example_deployment(
        objectives, real_engine=running_on_real_engine(), preview=pulumi.runtime.is_dry_run()
    )
except ConfigError as err:
    # One short paragraph naming the key, never a traceback: the same text drctl posture prints.
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(2) from None

ObjectivesRecord("objectives", objectives)


def _copy_of(exported: dict, dataset: str, region: str) -> str:
    """The source stack's copy of a dataset in a region, or a clear error if it kept none there."""
    try:
        return exported[dataset][region]
    except KeyError:
        raise ValueError(
            f"{objectives.rebuild_from} exports no {dataset!r} copy in {region}; a rebuild stack's "
            "primaryRegion and drRegion must be regions where the source stack kept copies"
        ) from None


regions = objectives.regions

# CloudWatch Route 53 health-check metrics only exist in us-east-1, so it always gets a topic.
alerts = AlertTopics("alerts", AlertTopicsArgs(regions=[*regions.all, "us-east-1"]))

# The spec's file data. A rebuild stack adopts the copies prod kept in its primary and DR regions
# (read through the StackReference, nothing copied) and re-establishes the third copy.
source = pulumi.StackReference(objectives.rebuild_from) if objectives.is_rebuild else None
buckets: dict[str, ReplicatedBucket] = {}
for dataset, data_class, profile in DATASETS:
    adopt, legacy_keys = {}, []
    if source:
        prod_names = source.require_output("buckets")
        prod_keys = source.require_output("bucketKeyArns")
        for region in (regions.primary, regions.dr):
            adopt[region] = prod_names.apply(lambda b, d=dataset, r=region: _copy_of(b, d, r))
        legacy_keys = [prod_keys.apply(lambda k, d=dataset: _copy_of(k, d, regions.primary))]
    buckets[dataset] = ReplicatedBucket(
        dataset,
        ReplicatedBucketArgs(
            objectives=objectives,
            data_class=data_class,
            dataset=dataset,
            archive_profile=profile,
            alarm_topic_arns=alerts.topic_arns,
            adopt_buckets=adopt,
            legacy_key_arns=legacy_keys,
        ),
    )

# A daily S3 Inventory of every copy of the file data, and the Athena/Glue catalog and Batch
# Operations roles that audit and repair the copies at any object count (docs/audit.md).
inventory = ObjectInventory(
    "inventory",
    ObjectInventoryArgs(
        objectives=objectives,
        datasets=[
            InventoriedDataset(dataset, data_class, buckets[dataset], component=dataset)
            for dataset, data_class, _ in DATASETS
        ],
    ),
)

# App secrets and config in the primary and DR regions, plus the config snapshot bucket.
secrets = SecretsBackup(
    "app-config", secrets_backup_args(objectives, app_config, alerts.topic_arns, source)
)

# AWS Backup: vaults in the primary and DR regions, a plan per class selecting on backup-class.
backup = BackupPlan(
    "backup",
    BackupPlanArgs(
        objectives=objectives,
        alarm_topic_arns=alerts.topic_arns,
        config_recording=config_recording,
    ),
)

# The DR-region referee of a failover: the database lease the hosts' fence guards hold, and the
# runbook journals any operator resumes (S3 conditional writes only).
control = FailoverControl("failover-control", FailoverControlArgs(objectives=objectives))

# Database PITR for the configured backend. pulumi-postgresql providers are built here, from
# config, never inside a component; passwords stay secret Outputs (platform-dr-db:<name>).
backend = objectives.db_backend
db_password = database_secret("password")
pg_primary = pg_dr = None
if backend != "rds":
    # Supabase's postgres role is not a superuser; pulumi-postgresql must not assume it is.
    pg_primary = postgresql.Provider(
        "db-primary", **db_settings.provider_args(db_password, superuser=backend == "self-managed")
    )
if backend == "supabase":
    pg_dr = postgresql.Provider(
        "db-dr", **db_settings.provider_args(database_secret("drPassword"), dr=True)
    )
database = PostgresBackup(
    "database",
    PostgresBackupArgs(
        objectives=objectives,
        alarm_topic_arns=alerts.topic_arns,
        adopt_instance_id=db_settings.rds_adopt_instance_id,
        instance_class=db_settings.rds_instance_class,
        postgres_provider=pg_primary,
        primary_host=db_settings.host,
        replication_password=database_secret("replicationPassword"),
        dr_postgres_provider=pg_dr,
        publisher_conninfo=db_settings.publisher_conninfo(db_password) if pg_dr else None,
        lease_bucket=control.bucket_name,
        lease_bucket_arn=control.bucket_arn,
        lease_key_arn=control.key_arn,
        rearm_region=db_settings.rearm_region,
        database_bytes=db_settings.size_bytes,
        wal_bytes_per_hour=db_settings.wal_bytes_per_hour,
    ),
)

# The DR region, sized from the RTOs: the database standby, failover DNS and its alarms. A rebuild
# stack takes over prod's hosted zone and records instead of creating its own.
standby = DrStandby(
    "dr-standby",
    DrStandbyArgs(
        objectives=objectives,
        alarm_topic_arns=alerts.topic_arns,
        primary_endpoint=database.primary_endpoint,
        database=StandbyDatabase(
            source_arn=database.rds_instance_arn if backend == "rds" else None,
            replication_slot_name=database.replication_slot_name,
            publication_name=database.publication_name,
            subscription_name=database.subscription_name,
            port=db_settings.port,
            replication_user=database.replication_role or "replicator",
            instance_class=db_settings.rds_instance_class,
            kms_key_arn=database.key.arns[regions.dr] if backend == "rds" else None,
            standby_host=db_settings.dr_host if backend == "supabase" else None,
        ),
        settings=dr_settings,
        adopt_zone_id=(
            source.require_output("drStandby").apply(lambda d: d["zoneId"]) if source else None
        ),
        take_over_records=bool(source),
        # A self-managed standby streams over VPC peering from the primary's network; a rebuild
        # stack's primary is its source's DR VPC.
        primary_network=(
            rebuild_primary_network(source.require_output("drNetwork"), regions.primary)
            if source and backend == "self-managed"
            else primary_network
        ),
    ),
)

# Communication (spec, "Communication Plan"): the public status page, and the team and
# stakeholder topics, all in regions that survive losing the primary.
status_page = StatusPage(
    "status-page", StatusPageArgs(objectives, alarm_topic_arns=alerts.topic_arns)
)
communication = NotificationTopics("communication", NotificationTopicsArgs(objectives, contacts))

pulumi.export("regions", {"primary": regions.primary, "dr": regions.dr, "third": regions.third})
pulumi.export("drStandby", standby.failover_outputs)
pulumi.export("drNetwork", standby.network_outputs)
# The primary's in-VPC probe (systemd units, `drctl render`) and the policy its host role needs.
pulumi.export("probeArtefacts", standby.probe_artefacts)
pulumi.export("probePolicyArn", standby.probe_policy_arn)
pulumi.export(
    "drStandbyMode",
    {
        "mode": standby.mode,
        "reason": standby.mode_reason,
        # For the app tier's autoscaling group in the DR region (not part of this project).
        "appMinCapacity": standby.app_min_capacity,
    },
)
pulumi.export("alertTopicArns", alerts.topic_arns)
pulumi.export(
    "database",
    {
        "backend": backend,
        "primaryEndpoint": database.primary_endpoint,
        "rdsInstanceArn": database.rds_instance_arn,
        "automatedBackupsReplicationArn": database.automated_backups_replication_arn,
        "replicationSlotName": database.replication_slot_name,
        "publicationName": database.publication_name,
        "repoBuckets": database.repo_bucket_names,
        "dumpBuckets": database.dump_bucket_names,
        "cipherSecretArns": database.cipher_secret_arns,
    },
)
pulumi.export(
    "failoverControl",
    {
        "bucket": control.bucket_name,
        "region": control.region,
        "leaseKey": control.lease_key,
        "journalKeys": {c: journal_key(objectives.stack, c) for c in ("failover", "failback")},
    },
)
pulumi.export("databaseArtefacts", database.artefacts)
pulumi.export("buckets", {d: b.bucket_names for d, b in buckets.items()})
pulumi.export("bucketArns", {d: b.bucket_arns for d, b in buckets.items()})
pulumi.export("bucketKeyArns", {d: b.key_arns for d, b in buckets.items()})
pulumi.export("inventory", inventory.outputs)
pulumi.export("backupVaultNames", backup.vault_names)
pulumi.export("backupVaultArns", backup.vault_arns)
pulumi.export("backupPlanIds", backup.plan_ids)
pulumi.export("backupFrameworkArns", backup.framework_arns)
pulumi.export("restoreTestingPlanName", backup.restore_testing_plan_name)
pulumi.export("configParameterPrefix", secrets.parameter_prefix)
pulumi.export("configParameterNames", secrets.parameter_names)
pulumi.export("configRegions", secrets.regions)
pulumi.export("secretArns", secrets.secret_arns)
pulumi.export("secretsKeyArns", secrets.key_arns)
pulumi.export("secretRotationEnabled", secrets.rotation_enabled)
pulumi.export("configBucketNames", secrets.snapshot_bucket_names)
pulumi.export("configBucketKeyArns", secrets.snapshot_key_arns)
pulumi.export("serviceCatalogue", catalogue.to_record())
pulumi.export("statusPage", status_page.publish_outputs)
pulumi.export("communication", communication.publish_outputs)
