"""AWS semantics of the object-scale audit: S3 Inventory, Athena, Glue and Batch Operations.

Standard library only, like ``rules.py``, which registers these rules. Each rule encodes what the
AWS mechanism needs to *work*, not only its shape, and names the document it comes from:

- S3 User Guide, "Configuring Amazon S3 Inventory" (configure-inventory): the destination bucket
  must be in the source bucket's Region; its bucket policy must let ``s3.amazonaws.com`` put the
  reports, scoped by ``aws:SourceAccount`` and ``aws:SourceArn`` (example-bucket-policies, "Grant
  permissions for S3 Inventory and S3 analytics"); a report encrypted with SSE-KMS needs the key
  policy to grant ``s3.amazonaws.com`` ``kms:GenerateDataKey`` under the same two conditions.
- S3 User Guide, "Amazon S3 Inventory list": only an all-versions inventory lists version IDs and
  delete markers; size, ETag, checksum algorithm and replication status are optional fields that
  must be asked for.
- Athena User Guide, "Querying Amazon S3 Inventory with Amazon Athena" and "Query across
  regions": a Parquet inventory is read through the Hive ``symlink.txt`` manifests
  (SymlinkTextInputFormat + ParquetHiveSerDe), partitioned by ``dt``.
- Athena User Guide, "Workgroup settings": only an enforced workgroup configuration makes its
  result encryption and scan cutoff binding on every client.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

# Imported as policy.inventory_rules by tests and drctl; as a top-level module by the policy host.
if __package__:
    from . import rules as _rules
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import rules as _rules  # type: ignore[no-redef]

INVENTORY_TYPE = "aws:s3/inventory:Inventory"
OBJECT_INVENTORY_TYPE = "platform-dr:inventory:ObjectInventory"
BUCKET_TYPE = "aws:s3/bucket:Bucket"
S3_SERVICE = "s3.amazonaws.com"

# The optional inventory fields the audit reads (scripts/checks/audit.sql). Version IDs and delete
# markers come with includedObjectVersions=All.
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


def _service_statements(doc: Mapping[str, Any], service: str, action: str) -> list[Mapping]:
    """Allow statements whose principal is ``service`` and whose actions include ``action``."""
    found = []
    for statement in _rules._statements(doc):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = _rules._as_list(_rules._get(principal, "Service"))
        actions = _rules._as_list(statement.get("Action"))
        if service in services and any(fnmatch.fnmatchcase(action, str(a)) for a in actions):
            found.append(statement)
    return found


def _condition_values(statement: Mapping[str, Any], key: str) -> list[str]:
    """Every value a statement's conditions give ``key``, whatever the operator."""
    values: list[str] = []
    for operator in (statement.get("Condition") or {}).values():
        if isinstance(operator, Mapping) and key in operator:
            values += [str(v) for v in _rules._as_list(operator[key])]
    return values


def _scoping_problems(statement: Mapping[str, Any], what: str) -> list[str]:
    sid = statement.get("Sid", "?")
    problems = []
    if not _condition_values(statement, "aws:SourceAccount"):
        problems.append(f"{what} statement {sid} lets {S3_SERVICE} act without aws:SourceAccount")
    if not _condition_values(statement, "aws:SourceArn"):
        problems.append(f"{what} statement {sid} lets {S3_SERVICE} act without aws:SourceArn")
    return problems


# ---------------------------------------------------------------------------------------------
# Resource rules: props -> [problem]


def s3_inventory_auditable(props: Mapping[str, Any]) -> list[str]:
    """An inventory the audit can use: daily, Parquet, all versions, the compared fields, SSE-KMS.

    S3 User Guide, "Amazon S3 Inventory list" and "Configuring Amazon S3 Inventory".
    """
    problems = []
    if props.get("enabled") is False:
        problems.append("the inventory is disabled")
    versions = props.get("includedObjectVersions")
    if versions != "All":
        problems.append(f"includedObjectVersions is {versions!r}; 'All' lists versions and markers")
    frequency = _rules._get(props, "schedule", "frequency")
    if frequency != "Daily":
        problems.append(f"schedule frequency is {frequency!r}; the audit expects 'Daily'")
    bucket = _rules._get(props, "destination", "bucket") or {}
    if bucket.get("format") != "Parquet":
        problems.append(f"format is {bucket.get('format')!r}; the audit reads 'Parquet'")
    missing = sorted(set(AUDIT_FIELDS) - set(_rules._as_list(props.get("optionalFields"))))
    if missing:
        problems.append(f"optional fields the audit compares are missing: {', '.join(missing)}")
    if not _rules._get(bucket, "encryption", "sseKms", "keyId"):
        problems.append("reports are not encrypted with SSE-KMS under a customer managed key")
    return problems


def _s3_grants_scoped(props: Mapping[str, Any], action: str, what: str) -> list[str]:
    problems = []
    for statement in _service_statements(
        _rules._policy_doc(props.get("policy")), S3_SERVICE, action
    ):
        problems += _scoping_problems(statement, what)
    return problems


def s3_inventory_delivery_scoped(props: Mapping[str, Any]) -> list[str]:
    """A bucket policy letting S3 deliver reports names the source account and bucket.

    S3 User Guide, "Grant permissions for S3 Inventory and S3 analytics": without
    aws:SourceAccount and aws:SourceArn any bucket in any account could write its inventory here
    (the cross-service confused deputy). Compliant when no statement grants S3 PutObject.
    """
    return _s3_grants_scoped(props, "s3:PutObject", "bucket policy")


def kms_s3_service_scoped(props: Mapping[str, Any]) -> list[str]:
    """A key policy letting the S3 service use the key names the source account and bucket.

    S3 User Guide, "Granting Amazon S3 permission to use your customer managed key for
    encryption" (S3 Inventory): the statement carries aws:SourceAccount and aws:SourceArn.
    """
    return _s3_grants_scoped(props, "kms:GenerateDataKey", "key policy")


def athena_workgroup_enforced(props: Mapping[str, Any]) -> list[str]:
    """Results encrypted with a customer key, a scan cutoff, and settings clients cannot override.

    Athena User Guide, "Workgroup settings" and "Encrypting Athena query results".
    """
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


def glue_inventory_table_readable(props: Mapping[str, Any]) -> list[str]:
    """A table over a Parquet inventory reads the Hive symlinks and is partitioned by ``dt``.

    Athena User Guide / S3 User Guide, "Querying Amazon S3 Inventory with Amazon Athena". Applies
    to tables whose location is an inventory's ``hive/`` folder; other tables are not judged.
    """
    descriptor = props.get("storageDescriptor") or {}
    location = str(descriptor.get("location") or "")
    if not location.rstrip("/").endswith("/hive"):
        return []
    problems = []
    if descriptor.get("inputFormat") != SYMLINK_INPUT:
        problems.append(f"input format is {descriptor.get('inputFormat')!r}, not {SYMLINK_INPUT}")
    serde = _rules._get(descriptor, "serDeInfo", "serializationLibrary")
    if serde != PARQUET_SERDE:
        problems.append(f"serde is {serde!r}, not {PARQUET_SERDE}")
    keys = [k.get("name") for k in _rules._as_list(props.get("partitionKeys"))]
    if keys != ["dt"]:
        problems.append(f"partition keys are {keys}; S3 writes hive/dt=YYYY-MM-DD-HH-MM/")
    return problems


RULES = [
    _rules.ResourceRule(
        "s3-inventory-auditable",
        "S3 Inventory: daily, Parquet, all versions, the fields the audit compares, SSE-KMS.",
        INVENTORY_TYPE,
        s3_inventory_auditable,
    ),
    _rules.ResourceRule(
        "s3-inventory-delivery-scoped",
        "Bucket policies that let S3 deliver reports require aws:SourceAccount and aws:SourceArn.",
        "aws:s3/bucketPolicy:BucketPolicy",
        s3_inventory_delivery_scoped,
    ),
    _rules.ResourceRule(
        "kms-s3-service-scoped",
        "Key policies that let the S3 service use a key require aws:SourceAccount and SourceArn.",
        "aws:kms/key:Key",
        kms_s3_service_scoped,
    ),
    _rules.ResourceRule(
        "athena-workgroup-enforced",
        "Athena workgroups enforce KMS-encrypted results and a per-query scan cutoff.",
        "aws:athena/workgroup:Workgroup",
        athena_workgroup_enforced,
    ),
    _rules.ResourceRule(
        "glue-inventory-table-readable",
        "Glue tables over S3 Inventory read the Hive symlinks with the Parquet SerDe, by dt.",
        "aws:glue/catalogTable:CatalogTable",
        glue_inventory_table_readable,
    ),
]


# ---------------------------------------------------------------------------------------------
# Delivery: the inventory of every copy can actually arrive (a stack-level mechanism check).


def _covers(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def delivery_problems(
    inventory: _rules.Resource,
    source: _rules.Resource | None,
    destination: _rules.Resource | None,
    policy: _rules.Resource | None,
    key: _rules.Resource | None,
    account: str | None,
) -> list[str]:
    """Why S3 could not deliver ``inventory``'s reports (empty: it can).

    ``source``/``destination`` are the copy's and the inventory bucket's Bucket resources,
    ``policy`` the destination's BucketPolicy, ``key`` the KMS key the reports are encrypted
    under. S3 User Guide, "Configuring Amazon S3 Inventory": same Region; a bucket policy granting
    s3:PutObject to s3.amazonaws.com for this source; a key policy granting kms:GenerateDataKey.
    """
    props = inventory.props
    region = props.get("region")
    source_name = str(props.get("bucket") or "")
    source_arn = f"arn:aws:s3:::{source_name}"
    name = inventory.name
    problems = []
    if source is None or source.props.get("region") != region:
        problems.append(f"{name}: declared in {region}, not in the region of the copy it lists")
    if destination is None:
        return [*problems, f"{name}: its destination bucket is not declared in this stack"]
    if destination.props.get("region") != region:
        problems.append(
            f"{name}: delivers to a bucket in {destination.props.get('region')}; S3 Inventory "
            f"only delivers within the source region ({region})"
        )
    prefix = str(_rules._get(props, "destination", "bucket", "prefix") or "").strip("/")
    dest_arn = str(_rules._get(props, "destination", "bucket", "bucketArn") or "")
    target = f"{dest_arn}/{prefix}/{source_name}/x" if prefix else f"{dest_arn}/{source_name}/x"
    doc = _rules._policy_doc(getattr(policy, "props", {}).get("policy"))
    grants = [
        s
        for s in _service_statements(doc, S3_SERVICE, "s3:PutObject")
        if _covers([str(r) for r in _rules._as_list(s.get("Resource"))], target)
        and _covers(_condition_values(s, "aws:SourceArn"), source_arn)
        and (account is None or account in _condition_values(s, "aws:SourceAccount"))
    ]
    if not grants:
        problems.append(
            f"{name}: the destination bucket policy does not let {S3_SERVICE} put reports for "
            f"{source_name} (s3:PutObject on the prefix, aws:SourceAccount, aws:SourceArn)"
        )
    key_doc = _rules._policy_doc(getattr(key, "props", {}).get("policy"))
    key_grants = [
        s
        for s in _service_statements(key_doc, S3_SERVICE, "kms:GenerateDataKey")
        if _covers(_condition_values(s, "aws:SourceArn"), source_arn)
    ]
    if not key_grants:
        problems.append(
            f"{name}: the report key's policy does not let {S3_SERVICE} generate data keys for "
            f"{source_name}: SSE-KMS reports would never be written"
        )
    return problems


def inventory_mechanisms(resources: Sequence[_rules.Resource], objectives: Mapping) -> list:
    """What audits the copies of each inventoried dataset, and whether its reports can arrive.

    Detection only: an inventory bounds no data loss (covers_region_loss=False). It finds a missing
    or different copy within a day of the next report (the first report can take 48 hours).
    """
    named = _rules.by_name(resources)
    found = []
    for component in (r for r in resources if r.type == OBJECT_INVENTORY_TYPE):
        props = component.props
        account = props.get("account")
        for dataset, entry in sorted((props.get("datasets") or {}).items()):
            problems: list[str] = []
            copies = _rules._as_list(entry.get("copies"))
            for region in copies:
                inventory = named.get(f"{component.name}-{dataset}-{region}")
                if inventory is None or inventory.type != INVENTORY_TYPE:
                    problems.append(f"{dataset}: no S3 Inventory on the {region} copy")
                    continue
                problems += [
                    f"{inventory.name}: {p}" for p in s3_inventory_auditable(inventory.props)
                ]
                store = f"{component.name}-{region}"
                problems += delivery_problems(
                    inventory,
                    named.get(f"{entry.get('component', dataset)}-{region}"),
                    named.get(store),
                    named.get(f"{store}-policy"),
                    named.get(f"{store}-key"),
                    account,
                )
            engines = sorted(props.get("queryRegions") or [])
            description = (
                f"{dataset}: audited from a daily S3 Inventory of its {len(copies)} copies "
                f"(Parquet, all versions) with drctl audit replication, locally or with Athena in "
                f"{'/'.join(engines) or 'no region'}; detects, within a day of the next report, "
                "versions missing or different in a copy (not a bound on loss)"
            )
            found.append(
                _rules.Mechanism(
                    dataset,
                    entry.get("dataClass", "critical"),
                    description,
                    None,
                    covers_region_loss=False,
                    problems=problems,
                )
            )
    return found


# Registered once, whichever of rules.py and this module is imported first (rules.py imports this
# module at its end, so the pack and posture always see these rules).
_rules.RESOURCE_RULES.extend(RULES)
_rules.MECHANISM_EXTRACTORS.append(inventory_mechanisms)
