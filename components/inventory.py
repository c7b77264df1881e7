"""ObjectInventory: S3 Inventory on every copy, and the AWS engines that audit and repair copies.

For the datasets it is given (ReplicatedBuckets), it declares:

- in every region that holds a copy, an inventory bucket: versioned, SSE-KMS under its own
  regional key, all public access blocked, BucketOwnerEnforced, TLS-only, with lifecycle expiry.
  S3 Inventory delivers into ``inventory/``, Athena writes query results to ``athena-results/``,
  Batch Operations reads manifests from and writes completion reports to ``batch/``;
- on every copy, a daily S3 Inventory in Apache Parquet listing all versions with the fields the
  audit compares, encrypted with SSE-KMS, delivered to the inventory bucket of the copy's own
  region (S3 delivers only within a region). The bucket policy and the key policy grant
  ``s3.amazonaws.com`` exactly that, for exactly these source buckets (aws:SourceAccount,
  aws:SourceArn), as the S3 User Guide requires;
- in the primary and DR regions (the audit must still run after losing either), a Glue database
  with one table per copy, read through the Hive symlink manifests S3 writes, and an Athena
  workgroup whose results are SSE-KMS encrypted, with a per-query scan cutoff that clients cannot
  override. Athena reads the other regions' inventories across regions;
- the Batch Operations roles (components/batch_operations.py) and a managed policy with what
  ``drctl audit`` / ``repair`` / ``restore-objects`` need, for an operator role to attach.

The inventory configuration id is per stack (``audit-<stack>``), so a rebuild stack that adopts
prod's copies adds its own inventory beside prod's instead of fighting over one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import batch_operations
from components.bucket_security import secure_bucket
from components.keys import KeyGrant, key_policy
from components.objectives import PROJECT, Objectives, class_tags
from components.replicated_bucket import ReplicatedBucket
from components.s3_policies import bucket_policy
from policy.aws_semantics.inventory import AUDIT_FIELDS, PARQUET_SERDE, SYMLINK_INPUT
from policy.aws_semantics.services import DELIVERY_WRITERS, delivery_bucket_statements

DATASET = "inventory"
DATA_CLASS = "operational"  # derived metadata: tomorrow's report replaces a lost one
INVENTORY_PREFIX = "inventory"
ATHENA_PREFIX = "athena-results"
BATCH_PREFIX = "batch"

# S3 Inventory's Parquet columns in the order S3 writes them (S3 User Guide, "Locating your
# inventory list", the Parquet fileSchema), with the Glue type Athena reads them as (S3 User Guide,
# "Querying Amazon S3 Inventory with Amazon Athena") and the optional field that adds each one
# (None: always present in an all-versions inventory). The one place that knows the schema: the
# Glue tables, the synthetic generator and the audit all read it from here.
INVENTORY_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("bucket", "string", None),
    ("key", "string", None),
    ("version_id", "string", None),
    ("is_latest", "boolean", None),
    ("is_delete_marker", "boolean", None),
    ("size", "bigint", "Size"),
    ("last_modified_date", "timestamp", "LastModifiedDate"),
    ("e_tag", "string", "ETag"),
    ("storage_class", "string", "StorageClass"),
    ("is_multipart_uploaded", "boolean", "IsMultipartUploaded"),
    ("replication_status", "string", "ReplicationStatus"),
    ("encryption_status", "string", "EncryptionStatus"),
    ("object_lock_retain_until_date", "bigint", "ObjectLockRetainUntilDate"),
    ("object_lock_mode", "string", "ObjectLockMode"),
    ("object_lock_legal_hold_status", "string", "ObjectLockLegalHoldStatus"),
    ("bucket_key_status", "string", "BucketKeyStatus"),
    ("checksum_algorithm", "string", "ChecksumAlgorithm"),
)
OPTIONAL_FIELDS = tuple(f for _, _, f in INVENTORY_COLUMNS if f)
assert set(AUDIT_FIELDS) <= set(OPTIONAL_FIELDS), "the inventory must carry what the audit reads"


def config_id(objectives: Objectives) -> str:
    """The inventory configuration id (and report folder): one per stack."""
    return f"audit-{objectives.stack}"


def report_prefix(source_bucket: str, config: str) -> str:
    """Where S3 writes one copy's reports in the inventory bucket: <prefix>/<source>/<config>/."""
    return f"{INVENTORY_PREFIX}/{source_bucket}/{config}/"


# The report folders S3 writes (S3 User Guide, "Locating your inventory list"): one per report,
# named by the time the scan started, and a Hive partition per report for Athena.
SNAPSHOT_FOLDER_FORMAT = "%Y-%m-%dT%H-%MZ"  # <prefix>/<source>/<config>/2016-11-06T21-32Z/
HIVE_PARTITION_FORMAT = "%Y-%m-%d-%H-%M"  # <prefix>/<source>/<config>/hive/dt=2016-11-06-21-32/


def table_name(dataset: str, region: str) -> str:
    return f"{dataset}_{region}".replace("-", "_")


def database_name(objectives: Objectives) -> str:
    return f"{PROJECT}_{objectives.stack}_inventory".replace("-", "_")


def workgroup_name(objectives: Objectives) -> str:
    return f"{PROJECT}-{objectives.stack}-audit"


@dataclass(frozen=True)
class InventoriedDataset:
    """One dataset whose copies are inventoried: a ReplicatedBucket and what the audit needs."""

    dataset: str
    data_class: str
    bucket: ReplicatedBucket
    component: str  # the ReplicatedBucket's Pulumi name (its copies are "<component>-<region>")

    @property
    def regions(self) -> list[str]:
        return list(self.bucket.bucket_names)


@dataclass
class ObjectInventoryArgs:
    """Arguments of ObjectInventory.

    objectives: the stack's Objectives (regions, stack name).
    datasets: the InventoriedDatasets whose every copy gets a daily inventory.
    query_regions: where the Glue catalog and Athena workgroup live; default the primary and DR
        regions, so the audit runs after losing either.
    inventory_retention_days: days a report is kept; default 14 (two weeks of daily snapshots).
    athena_results_days: days Athena query results are kept; default 7.
    batch_retention_days: days Batch Operations manifests and completion reports are kept;
        default 90 (they are the evidence of a repair).
    max_scan_bytes: Athena's per-query scan cutoff; default 200 GiB, about 3 billion inventory
        rows of the audited columns, so a mistaken query costs at most ~$1 at $5/TB.
    """

    objectives: Objectives
    datasets: Sequence[InventoriedDataset]
    query_regions: Sequence[str] | None = None
    inventory_retention_days: int = 14
    athena_results_days: int = 7
    batch_retention_days: int = 90
    max_scan_bytes: int = 200 * 1024**3
    tags: Mapping[str, str] = field(default_factory=dict)


def inventory_key_policy(account: str, source_arns: Sequence[str]) -> str:
    """The account administers the key; S3 may generate data keys only for these sources' reports.

    The writer's actions and the condition keys it sends come from the one table of delivery
    writers (policy.aws_semantics.services, "s3-inventory"); the source ARNs are the copies whose
    reports this region's bucket receives.
    """
    writer = DELIVERY_WRITERS["s3-inventory"]
    grant = KeyGrant(
        sid="S3InventoryEncryptsReports",
        principal=dict(writer.principal),
        actions=writer.key_actions,
        conditions={
            "StringEquals": {"aws:SourceAccount": "{account}"},
            "ArnLike": {"aws:SourceArn": sorted(source_arns)},
        },
    )
    return key_policy(account, [grant])


def inventory_bucket_policy(bucket_arn: str, account: str, source_arns: Sequence[str]) -> str:
    """TLS only, and S3 may put inventory reports under inventory/ for exactly these sources.

    The statement is the "s3-inventory" delivery writer's (policy.aws_semantics.services), with
    every copy of this region as the source: one statement, not one per source.
    """
    region = ""  # the S3 Inventory writer's statement names no region
    (statement,) = delivery_bucket_statements(
        "s3-inventory", bucket_arn, INVENTORY_PREFIX, account, region, "{sources}"
    )
    statement["Condition"]["ArnLike"]["aws:SourceArn"] = sorted(source_arns)
    return bucket_policy(bucket_arn, [statement])


def lifecycle_rules(args: ObjectInventoryArgs) -> list[dict]:
    """Every prefix expires on its own clock; old versions a day later; nothing lingers."""
    expiring = (
        ("inventory-reports", INVENTORY_PREFIX, args.inventory_retention_days),
        ("athena-results", ATHENA_PREFIX, args.athena_results_days),
        ("batch-manifests-and-reports", BATCH_PREFIX, args.batch_retention_days),
    )
    rules = [
        {
            "id": rule_id,
            "status": "Enabled",
            "filter": {"prefix": f"{prefix}/"},
            "expiration": {"days": days},
            "noncurrent_version_expiration": {"noncurrent_days": 1},
        }
        for rule_id, prefix, days in expiring
    ]
    rules.append(
        {
            "id": "clean-up",
            "status": "Enabled",
            "filter": {},
            "expiration": {"expired_object_delete_marker": True},
            "noncurrent_version_expiration": {"noncurrent_days": 1},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
        }
    )
    return rules


class ObjectInventory(pulumi.ComponentResource):
    """Outputs: ``outputs`` (what ``pulumi.export("inventory", ...)`` carries for drctl):
    configId, prefix, buckets/keyArns (region -> value), datasets (dataset -> class, primary
    region, noncurrent expiry days, copies region -> bucket), athena (region -> workgroup,
    database, tables), batch role ARNs and the operator policy ARN."""

    TYPE = "platform-dr:inventory:ObjectInventory"

    def __init__(
        self, name: str, args: ObjectInventoryArgs, opts: pulumi.ResourceOptions | None = None
    ):
        objectives = args.objectives
        regions = sorted({r for d in args.datasets for r in d.regions}, key=_order(objectives))
        query_regions = list(
            args.query_regions or (objectives.regions.primary, objectives.regions.dr)
        )
        account = aws.get_caller_identity_output().account_id
        # Identity only: what the policy rules read to find this component's children.
        identity = {
            "account": account,
            "queryRegions": query_regions,
            "datasets": {
                d.dataset: {
                    "dataClass": d.data_class,
                    "component": d.component,
                    "copies": d.regions,
                }
                for d in args.datasets
            },
        }
        super().__init__(self.TYPE, name, identity, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**class_tags(DATA_CLASS, DATASET), **args.tags}
        config = config_id(objectives)

        self.bucket_names: dict[str, pulumi.Output[str]] = {}
        self.bucket_arns: dict[str, pulumi.Output[str]] = {}
        self.key_arns: dict[str, pulumi.Output[str]] = {}
        for region in regions:
            sources = [d.bucket.bucket_arns[region] for d in args.datasets if region in d.regions]
            self._store(f"{name}-{region}", region, account, sources, args, tags, child)

        for d in args.datasets:
            for region in d.regions:
                aws.s3.Inventory(
                    f"{name}-{d.dataset}-{region}",
                    region=region,
                    bucket=d.bucket.bucket_names[region],
                    name=config,
                    enabled=True,
                    included_object_versions="All",
                    schedule={"frequency": "Daily"},
                    optional_fields=list(OPTIONAL_FIELDS),
                    destination={
                        "bucket": {
                            "bucket_arn": self.bucket_arns[region],
                            "account_id": account,
                            "format": "Parquet",
                            "prefix": INVENTORY_PREFIX,
                            "encryption": {"sse_kms": {"key_id": self.key_arns[region]}},
                        }
                    },
                    opts=child,
                )

        athena = {
            region: self._catalog(f"{name}-{region}", region, account, config, args, tags, child)
            for region in query_regions
        }
        roles = batch_operations.BatchRoles(
            f"{name}-batch",
            batch_operations.BatchRolesArgs(
                datasets=[
                    batch_operations.DatasetCopies(
                        d.dataset,
                        primary_region=objectives.regions.primary,
                        bucket_arns=d.bucket.bucket_arns,
                        key_arns=d.bucket.key_arns,
                    )
                    for d in args.datasets
                ],
                store_arns=self.bucket_arns,
                store_key_arns=self.key_arns,
                prefix=BATCH_PREFIX,
                tags=tags,
            ),
            opts=child,
        )
        reader = aws.iam.Policy(
            f"{name}-operator",
            description=f"{PROJECT} {objectives.stack}: drctl audit, repair and bulk restore",
            policy=pulumi.Output.all(
                account=account,
                stores=self.bucket_arns,
                keys=self.key_arns,
                roles=[roles.replication_role_arn, roles.restore_role_arn],
            ).apply(
                lambda v: batch_operations.operator_policy(
                    v["account"],
                    {r: (workgroup_name(objectives), database_name(objectives)) for r in athena},
                    v["stores"],
                    v["keys"],
                    v["roles"],
                    inventory_prefix=INVENTORY_PREFIX,
                    athena_prefix=ATHENA_PREFIX,
                    batch_prefix=BATCH_PREFIX,
                )
            ),
            tags=tags,
            opts=child,
        )
        self.outputs = {
            "configId": config,
            "prefix": INVENTORY_PREFIX,
            "batchPrefix": BATCH_PREFIX,
            "athenaPrefix": ATHENA_PREFIX,
            "buckets": self.bucket_names,
            "keyArns": self.key_arns,
            "datasets": {
                d.dataset: {
                    "dataClass": d.data_class,
                    "primaryRegion": objectives.regions.primary,
                    "noncurrentExpiryDays": d.bucket.lifecycle.noncurrent_expiry_days,
                    "copies": d.bucket.bucket_names,
                    "keyArns": d.bucket.key_arns,
                }
                for d in args.datasets
            },
            "athena": athena,
            "batchReplicationRoleArn": roles.replication_role_arn,
            "batchRestoreRoleArn": roles.restore_role_arn,
            "operatorPolicyArn": reader.arn,
        }
        # keyArns at the top too: the AWS-semantics rules find the report keys by them.
        self.register_outputs({**identity, "keyArns": self.key_arns, "outputs": self.outputs})

    def _store(self, store, region, account, sources, args, tags, child) -> None:
        """One region's inventory bucket, secured like every copy, and its key."""
        key = aws.kms.Key(
            f"{store}-key",
            region=region,
            description=f"{PROJECT} {args.objectives.stack}: S3 Inventory reports, audit results",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.all(account, *sources).apply(
                lambda v: inventory_key_policy(v[0], v[1:])
            ),
            tags=tags,
            opts=child,
        )
        bucket = aws.s3.Bucket(
            store,
            region=region,
            bucket_prefix=f"{PROJECT}-inventory-",
            force_destroy=False,
            tags=tags,
            opts=child,
        )
        self.bucket_names[region] = bucket.bucket
        self.bucket_arns[region] = bucket.arn
        self.key_arns[region] = key.arn
        # Versioned, so an audit's evidence cannot be overwritten in place; old versions expire
        # after a day. (AWS Backup, which selects this bucket by its class tag, also needs it.)
        policy = pulumi.Output.all(bucket.arn, account, *sources).apply(
            lambda v: inventory_bucket_policy(v[0], v[1], v[2:])
        )
        versioning = secure_bucket(store, region, bucket, key.arn, policy, self)
        aws.s3.BucketLifecycleConfiguration(
            f"{store}-lifecycle",
            region=region,
            bucket=bucket.bucket,
            rules=lifecycle_rules(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )

    def _catalog(self, store, region, account, config, args, tags, child) -> dict:
        """The Glue database, one table per copy, and the Athena workgroup in ``region``."""
        objectives = args.objectives
        database = aws.glue.CatalogDatabase(
            f"{store}-database",
            region=region,
            name=database_name(objectives),
            description="S3 Inventory reports of every copy, for drctl audit replication",
            tags=tags,
            opts=child,
        )
        tables: dict[str, dict[str, str]] = {}
        for d in args.datasets:
            for copy in d.regions:
                table = table_name(d.dataset, copy)
                tables.setdefault(d.dataset, {})[copy] = table
                location = pulumi.Output.all(
                    self.bucket_names[copy], d.bucket.bucket_names[copy]
                ).apply(lambda v: f"s3://{v[0]}/{report_prefix(v[1], config)}hive/")
                aws.glue.CatalogTable(
                    f"{store}-{d.dataset}-{copy}",
                    region=region,
                    database_name=database.name,
                    name=table,
                    description=f"S3 Inventory of the {copy} copy of {d.dataset}",
                    table_type="EXTERNAL_TABLE",
                    # The dt partition is the folder S3 writes per report; drctl names the one it
                    # reads (from that report's manifest.json), so projection injects it.
                    parameters={
                        "projection.enabled": "true",
                        "projection.dt.type": "injected",
                        "classification": "parquet",
                    },
                    partition_keys=[{"name": "dt", "type": "string"}],
                    storage_descriptor={
                        "location": location,
                        "input_format": SYMLINK_INPUT,
                        "output_format": "org.apache.hadoop.hive.ql.io.IgnoreKeyTextOutputFormat",
                        "ser_de_info": {"serialization_library": PARQUET_SERDE},
                        "columns": [{"name": c, "type": t} for c, t, _ in INVENTORY_COLUMNS],
                    },
                    opts=child,
                )
        workgroup = aws.athena.Workgroup(
            f"{store}-workgroup",
            region=region,
            name=workgroup_name(objectives),
            description="drctl audit replication: the completeness query over the inventories",
            configuration={
                "enforce_workgroup_configuration": True,
                "publish_cloudwatch_metrics_enabled": True,
                "bytes_scanned_cutoff_per_query": args.max_scan_bytes,
                "engine_version": {"selected_engine_version": "Athena engine version 3"},
                "result_configuration": {
                    "output_location": self.bucket_names[region].apply(
                        lambda b: f"s3://{b}/{ATHENA_PREFIX}/"
                    ),
                    "expected_bucket_owner": account,
                    "encryption_configuration": {
                        "encryption_option": "SSE_KMS",
                        "kms_key_arn": self.key_arns[region],
                    },
                },
            },
            force_destroy=False,
            tags=tags,
            opts=child,
        )
        return {"workgroup": workgroup.name, "database": database.name, "tables": tables}


def _order(objectives: Objectives):
    declared = list(objectives.regions.all)

    def key(region: str) -> int:
        return declared.index(region) if region in declared else len(declared)

    return key
