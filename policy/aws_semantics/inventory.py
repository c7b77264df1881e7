"""The object-scale audit: S3 Inventory on every copy, Athena over it, Glue tables, scoped grants.

What ``components/inventory.py`` declares for ``drctl audit replication`` must work in AWS; whether
S3 can *write* the reports (bucket and key policy) is ``delivery.delivery_targets_writable``'s job,
as for every delivery writer. These rules add what is particular to the audit:

- every copy of an inventoried dataset has an inventory, declared in the copy's region and
  delivering to a bucket in that region (S3 delivers nowhere else);
- each inventory is one the audit can read: daily, Parquet, all versions, the compared fields,
  SSE-KMS;
- a grant to the S3 service principal names the source account and bucket (the confused deputy);
- the Athena workgroup enforces encrypted results and a scan cutoff; the Glue tables read the
  Hive symlinks S3 writes, partitioned by ``dt``.

The props checks are pure functions of one resource; each rule applies one to the stack.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from .graph import BUCKET_POLICY_TYPE, KEY_TYPES, Stack, get
from .graph import OBJECT_INVENTORY as OBJECT_INVENTORY_TYPE
from .iam_eval import as_list, policy_doc

Finding = tuple[str, str]

INVENTORY_TYPE = "aws:s3/inventory:Inventory"
WORKGROUP_TYPE = "aws:athena/workgroup:Workgroup"
TABLE_TYPE = "aws:glue/catalogTable:CatalogTable"
S3_SERVICE = "s3.amazonaws.com"

# The optional inventory fields the audit reads (scripts/checks/audit/audit.sql). Version IDs and
# delete markers come with includedObjectVersions=All.
AUDIT_FIELDS = (
    "Size",
    "LastModifiedDate",
    "ETag",
    "ChecksumAlgorithm",
    "ReplicationStatus",
    "StorageClass",
)
SYMLINK_INPUT = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
ATHENA_RESULT_ENCRYPTION = ("SSE_KMS", "CSE_KMS")


# -- pure checks of one resource's props -------------------------------------------------------


def inventory_problems(props: Mapping[str, Any]) -> list[str]:
    """Why the audit could not use this inventory (empty: it can)."""
    problems = []
    if props.get("enabled") is False:
        problems.append("the inventory is disabled")
    versions = props.get("includedObjectVersions")
    if versions != "All":
        problems.append(f"includedObjectVersions is {versions!r}; 'All' lists versions and markers")
    frequency = get(props, "schedule", "frequency")
    if frequency != "Daily":
        problems.append(f"schedule frequency is {frequency!r}; the audit expects 'Daily'")
    bucket = get(props, "destination", "bucket") or {}
    if bucket.get("format") != "Parquet":
        problems.append(f"format is {bucket.get('format')!r}; the audit reads 'Parquet'")
    missing = sorted(set(AUDIT_FIELDS) - set(as_list(props.get("optionalFields"))))
    if missing:
        problems.append(f"optional fields the audit compares are missing: {', '.join(missing)}")
    if not get(bucket, "encryption", "sseKms", "keyId"):
        problems.append("reports are not encrypted with SSE-KMS under a customer managed key")
    return problems


def _service_grants(doc: Mapping[str, Any], action: str) -> list[Mapping[str, Any]]:
    found = []
    for statement in as_list(doc.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        services = as_list(get(statement, "Principal", "Service"))
        actions = as_list(statement.get("Action"))
        if S3_SERVICE in services and any(fnmatch.fnmatchcase(action, str(a)) for a in actions):
            found.append(statement)
    return found


def _condition_values(statement: Mapping[str, Any], key: str) -> list[str]:
    values: list[str] = []
    for operator in (statement.get("Condition") or {}).values():
        if isinstance(operator, Mapping) and key in operator:
            values += [str(v) for v in as_list(operator[key])]
    return values


def unscoped_s3_grants(policy: Any, action: str, what: str) -> list[str]:
    """Grants of ``action`` to the S3 service without aws:SourceAccount or aws:SourceArn."""
    problems = []
    for statement in _service_grants(policy_doc(policy), action):
        sid = statement.get("Sid", "?")
        for key in ("aws:SourceAccount", "aws:SourceArn"):
            if not _condition_values(statement, key):
                problems.append(f"{what} statement {sid} lets {S3_SERVICE} act without {key}")
    return problems


def workgroup_problems(props: Mapping[str, Any]) -> list[str]:
    config = props.get("configuration") or {}
    problems = []
    if config.get("enforceWorkgroupConfiguration") is not True:
        problems.append("enforceWorkgroupConfiguration is off: clients may override the settings")
    result = config.get("resultConfiguration") or {}
    if not str(result.get("outputLocation") or "").startswith("s3://"):
        problems.append("no s3:// query result location")
    encryption = result.get("encryptionConfiguration") or {}
    if encryption.get("encryptionOption") not in ATHENA_RESULT_ENCRYPTION:
        problems.append(
            f"query results are encrypted with {encryption.get('encryptionOption')!r}, not "
            f"{' or '.join(ATHENA_RESULT_ENCRYPTION)}"
        )
    elif not encryption.get("kmsKeyArn"):
        problems.append("query result encryption names no KMS key")
    if not config.get("bytesScannedCutoffPerQuery"):
        problems.append("no bytesScannedCutoffPerQuery: a runaway query has no cost bound")
    return problems


def table_problems(props: Mapping[str, Any]) -> list[str]:
    """Only tables over an inventory's ``hive/`` folder are judged."""
    descriptor = props.get("storageDescriptor") or {}
    if not str(descriptor.get("location") or "").rstrip("/").endswith("/hive"):
        return []
    problems = []
    if descriptor.get("inputFormat") != SYMLINK_INPUT:
        problems.append(f"input format is {descriptor.get('inputFormat')!r}, not {SYMLINK_INPUT}")
    serde = get(descriptor, "serDeInfo", "serializationLibrary")
    if serde != PARQUET_SERDE:
        problems.append(f"serde is {serde!r}, not {PARQUET_SERDE}")
    keys = [k.get("name") for k in as_list(props.get("partitionKeys"))]
    if keys != ["dt"]:
        problems.append(f"partition keys are {keys}; S3 writes hive/dt=YYYY-MM-DD-HH-MM/")
    return problems


# -- the rules ---------------------------------------------------------------------------------


def inventory_on_every_copy(stack: Stack) -> list[Finding]:
    """Every copy of an inventoried dataset has an inventory that lists it, in its own region.

    Document: Amazon S3 User Guide, "Amazon S3 Inventory", Source and destination buckets
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory.html).
    Constraint: the inventory configuration belongs to the source bucket, in its region, and the
    destination bucket "must be in the same AWS Region as the source bucket"; a copy without one
    is never compared, so the audit could not see it go missing.
    """
    found: list[Finding] = []
    for component in stack.of(OBJECT_INVENTORY_TYPE):
        for dataset, entry in sorted((component.props.get("datasets") or {}).items()):
            for region in as_list(entry.get("copies")):
                inventory = stack.named.get(f"{component.name}-{dataset}-{region}")
                if inventory is None or inventory.type != INVENTORY_TYPE:
                    found.append(
                        (component.name, f"{dataset}: no S3 Inventory on the {region} copy")
                    )
                    continue
                copy = stack.named.get(f"{entry.get('component', dataset)}-{region}")
                declared = get(inventory.props, "region")
                if copy is None or get(copy.props, "region") != declared:
                    found.append(
                        (inventory.name, f"declared in {declared}, not in the region of its copy")
                    )
                store = stack.named.get(f"{component.name}-{region}")
                if store is None or get(store.props, "region") != declared:
                    found.append(
                        (
                            inventory.name,
                            f"delivers to a bucket outside {declared}: S3 Inventory only "
                            "delivers within the source region",
                        )
                    )
    return found


def inventories_auditable(stack: Stack) -> list[Finding]:
    """Each inventory is one the audit can read: daily, Parquet, all versions, the fields, SSE-KMS.

    Document: Amazon S3 User Guide, "Amazon S3 Inventory list" and "Configuring Amazon S3
    Inventory" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/configure-inventory.html).
    Constraint: only an all-versions inventory lists version IDs and delete markers; size, ETag,
    checksum algorithm, replication status, last-modified date and storage class are optional
    fields that must be asked for; the audit reads the daily Parquet reports, SSE-KMS encrypted.
    """
    return [(r.name, p) for r in stack.of(INVENTORY_TYPE) for p in inventory_problems(r.props)]


def s3_service_grants_scoped(stack: Stack) -> list[Finding]:
    """A bucket or key policy that lets the S3 service act names the source account and bucket.

    Document: Amazon S3 User Guide, "Grant permissions for S3 Inventory and S3 analytics" and
    "Granting Amazon S3 permission to use your customer managed key for encryption"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/configure-inventory.html).
    Constraint: s3:PutObject (bucket policy) and kms:GenerateDataKey (key policy) for
    s3.amazonaws.com carry aws:SourceAccount and aws:SourceArn; without them any bucket in any
    account could have S3 write its reports here or use this key (the cross-service confused
    deputy). Policies without such a grant are not judged.
    """
    found: list[Finding] = []
    for r in stack.of(BUCKET_POLICY_TYPE):
        found += [
            (r.name, p)
            for p in unscoped_s3_grants(get(r.props, "policy"), "s3:PutObject", "bucket policy")
        ]
    for r in stack.of(*KEY_TYPES):
        found += [
            (r.name, p)
            for p in unscoped_s3_grants(get(r.props, "policy"), "kms:GenerateDataKey", "key policy")
        ]
    return found


def athena_workgroups_enforced(stack: Stack) -> list[Finding]:
    """Athena workgroups enforce KMS-encrypted results and a per-query scan cutoff.

    Document: Amazon Athena User Guide, "Override client-side settings"
    (https://docs.aws.amazon.com/athena/latest/ug/workgroups-settings-override.html) and
    "Encrypt Athena query results stored in Amazon S3"
    (https://docs.aws.amazon.com/athena/latest/ug/encrypting-query-results-stored-in-s3.html).
    Constraint: only an enforced workgroup configuration binds every client to the result
    location, its encryption and the bytes-scanned cutoff; otherwise a client's own settings win.
    """
    return [(r.name, p) for r in stack.of(WORKGROUP_TYPE) for p in workgroup_problems(r.props)]


def glue_inventory_tables_readable(stack: Stack) -> list[Finding]:
    """Glue tables over S3 Inventory read the Hive symlinks with the Parquet SerDe, by ``dt``.

    Document: Amazon S3 User Guide, "Querying Amazon S3 Inventory with Amazon Athena"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-athena-query.html).
    Constraint: a Parquet inventory is read through the symlink.txt under hive/dt=.../
    (SymlinkTextInputFormat with ParquetHiveSerDe), partitioned by dt; any other format reads
    nothing, or the manifest files as data.
    """
    return [(r.name, p) for r in stack.of(TABLE_TYPE) for p in table_problems(r.props)]


RULES = [
    (
        "s3-inventory-every-copy",
        "Every copy of an inventoried dataset has an S3 Inventory in its own region",
        inventory_on_every_copy,
    ),
    (
        "s3-inventory-auditable",
        "S3 Inventory: daily, Parquet, all versions, the fields the audit compares, SSE-KMS",
        inventories_auditable,
    ),
    (
        "s3-service-grants-scoped",
        "Bucket and key policies that let S3 act require aws:SourceAccount and aws:SourceArn",
        s3_service_grants_scoped,
    ),
    (
        "athena-workgroup-enforced",
        "Athena workgroups enforce KMS-encrypted results and a per-query scan cutoff",
        athena_workgroups_enforced,
    ),
    (
        "glue-inventory-table-readable",
        "Glue tables over S3 Inventory read the Hive symlinks with the Parquet SerDe, by dt",
        glue_inventory_tables_readable,
    ),
]
