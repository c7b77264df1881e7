"""BatchRoles: the least-privilege roles S3 Batch Operations assumes for repairs and bulk restores.

Two roles, because the two jobs need disjoint rights (S3 User Guide, "Granting permissions for
Amazon S3 Batch Operations" and "Configuring IAM policies for Batch Replication"):

- replication (``drctl repair replication``, ``drctl rebuild``): ``s3:InitiateReplication`` on the
  objects of each dataset's primary copy, ``GetReplicationConfiguration`` and
  ``PutInventoryConfiguration`` on that bucket (the replication-configuration manifest generator
  needs both), and the manifests and reports under ``batch/`` of the primary region's inventory
  bucket. The objects themselves travel under the replication role, not this one;
- restore (``drctl restore-objects`` over a large prefix): read any version of any copy and write
  it back on top (S3PutObjectCopy in place), with the keys of those copies, and the manifests and
  reports under ``batch/`` in every region (a copy job runs in its bucket's region).

Both trust ``batchoperations.s3.amazonaws.com`` with no condition: the trust policy in the S3 User
Guide has none, and who may hand the role to a job is decided by ``iam:PassRole`` (the operator
policy below names exactly these two roles). KMS grants are scoped by ``kms:ViaService`` to S3 in
the key's region.

``operator_policy`` is what a person or pipeline running drctl needs: the Athena workgroups, the
Glue catalog, reading the inventories, writing manifests, and creating and watching jobs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.iam import service_trust_policy

BATCH_SERVICE = "batchoperations.s3.amazonaws.com"


@dataclass(frozen=True)
class DatasetCopies:
    """One dataset's copies: region -> bucket ARN and region -> KMS key ARN."""

    dataset: str
    primary_region: str
    bucket_arns: Mapping[str, pulumi.Input[str]]
    key_arns: Mapping[str, pulumi.Input[str]]


@dataclass
class BatchRolesArgs:
    """Arguments of BatchRoles.

    datasets: the DatasetCopies the jobs act on.
    store_arns / store_key_arns: region -> inventory bucket ARN / its KMS key ARN, where manifests
        and completion reports live (under ``prefix``).
    prefix: the manifests-and-reports prefix; default "batch".
    tags: tags of the roles.
    """

    datasets: Sequence[DatasetCopies]
    store_arns: Mapping[str, pulumi.Input[str]]
    store_key_arns: Mapping[str, pulumi.Input[str]]
    prefix: str = "batch"
    tags: Mapping[str, str] = field(default_factory=dict)


def _kms(sid: str, key_arn: str, region: str, actions: Sequence[str]) -> dict:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    }


def _sid(*parts: str) -> str:
    return "".join(p.replace("-", "").replace("_", "").title() for p in parts)


def _store_statements(stores: Mapping[str, tuple[str, str]], prefix: str) -> list[dict]:
    """Read manifests and write reports under ``prefix`` of each (bucket ARN, key ARN)."""
    statements = [
        {
            "Sid": "ManifestsAndReports",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            "Resource": sorted(f"{arn}/{prefix}/*" for arn, _ in stores.values()),
        }
    ]
    for region, (_, key) in sorted(stores.items()):
        statements.append(
            _kms(_sid("Reports", region), key, region, ["kms:Decrypt", "kms:GenerateDataKey"])
        )
    return statements


def replication_job_policy(
    sources: Sequence[str], store: tuple[str, str, str], prefix: str = "batch"
) -> str:
    """Batch Replication with a supplied or an S3-generated manifest, from these source buckets.

    ``store`` is (region, bucket ARN, key ARN) of the primary region's inventory bucket: a Batch
    Replication job runs in its source bucket's region, and so must its generated manifest.
    """
    region, store_arn, store_key = store
    statements = [
        {
            "Sid": "InitiateReplication",
            "Effect": "Allow",
            "Action": "s3:InitiateReplication",
            "Resource": sorted(f"{arn}/*" for arn in sources),
        },
        {
            "Sid": "GenerateManifestFromReplicationConfig",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:PutInventoryConfiguration"],
            "Resource": sorted(sources),
        },
        *_store_statements({region: (store_arn, store_key)}, prefix),
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def restore_job_policy(
    copies: Sequence[tuple[str, str, str]],
    stores: Mapping[str, tuple[str, str]],
    prefix: str = "batch",
) -> str:
    """S3PutObjectCopy of a prior version back on top, in any copy ``(region, bucket, key)``."""
    buckets = sorted({arn for _, arn, _ in copies})
    statements = [
        {
            "Sid": "ReadVersions",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:GetObjectVersion",
                "s3:GetObjectTagging",
                "s3:GetObjectVersionTagging",
            ],
            "Resource": [f"{arn}/*" for arn in buckets],
        },
        {"Sid": "ListCopies", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": buckets},
        {
            "Sid": "WriteBackOnTop",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:PutObjectTagging"],
            "Resource": [f"{arn}/*" for arn in buckets],
        },
    ]
    keys_by_region: dict[str, set[str]] = {}
    for region, _, key in copies:
        keys_by_region.setdefault(region, set()).add(key)
    for region, keys in sorted(keys_by_region.items()):
        statement = _kms(_sid("Data", region), "", region, ["kms:Decrypt", "kms:GenerateDataKey"])
        statement["Resource"] = sorted(keys)
        statements.append(statement)
    statements += _store_statements(stores, prefix)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def operator_policy(
    account: str,
    catalogs: Mapping[str, tuple[str, str]],
    stores: Mapping[str, str],
    keys: Mapping[str, str],
    roles: Sequence[str],
    *,
    inventory_prefix: str,
    athena_prefix: str,
    batch_prefix: str,
) -> str:
    """What drctl audit / repair / restore-objects need; ``catalogs``: region -> (workgroup, db).

    Athena User Guide, "Access to Amazon S3" for query results (list, get, put, multipart) and
    "Fine-grained access to databases and tables in the AWS Glue Data Catalog".
    """
    statements: list[dict] = []
    for region, (workgroup, database) in sorted(catalogs.items()):
        statements += [
            {
                "Sid": _sid("Athena", region),
                "Effect": "Allow",
                "Action": [
                    "athena:GetWorkGroup",
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                ],
                "Resource": f"arn:aws:athena:{region}:{account}:workgroup/{workgroup}",
            },
            {
                "Sid": _sid("Glue", region),
                "Effect": "Allow",
                "Action": [
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                ],
                "Resource": [
                    f"arn:aws:glue:{region}:{account}:catalog",
                    f"arn:aws:glue:{region}:{account}:database/{database}",
                    f"arn:aws:glue:{region}:{account}:table/{database}/*",
                ],
            },
        ]
    arns = sorted(stores.values())
    statements += [
        {
            "Sid": "ListStores",
            "Effect": "Allow",
            "Action": [
                "s3:ListBucket",
                "s3:GetBucketLocation",
                "s3:ListBucketMultipartUploads",
            ],
            "Resource": arns,
        },
        {
            "Sid": "ReadInventories",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [f"{arn}/{inventory_prefix}/*" for arn in arns],
        },
        {
            "Sid": "QueryResultsManifestsReports",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": [f"{arn}/{p}/*" for arn in arns for p in (athena_prefix, batch_prefix)],
        },
        {"Sid": "CreateJobs", "Effect": "Allow", "Action": "s3:CreateJob", "Resource": "*"},
        {
            "Sid": "WatchJobs",
            "Effect": "Allow",
            "Action": ["s3:DescribeJob", "s3:UpdateJobStatus"],
            "Resource": [f"arn:aws:s3:{region}:{account}:job/*" for region in sorted(stores)],
        },
        {
            "Sid": "PassBatchRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": sorted(roles),
        },
    ]
    for region, key in sorted(keys.items()):
        statements.append(
            _kms(_sid("Inventory", region), key, region, ["kms:Decrypt", "kms:GenerateDataKey"])
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class BatchRoles(pulumi.ComponentResource):
    """Outputs: ``replication_role_arn``, ``restore_role_arn``."""

    TYPE = "platform-dr:batch_operations:BatchRoles"

    def __init__(self, name: str, args: BatchRolesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)

        primaries = [d.bucket_arns[d.primary_region] for d in args.datasets]
        regions = {d.primary_region for d in args.datasets}
        primary = sorted(regions)[0] if regions else next(iter(args.store_arns))
        replication = self._role(
            f"{name}-replication",
            "S3 Batch Replication of the datasets' primary copies (drctl repair)",
            pulumi.Output.all(
                args.store_arns[primary], args.store_key_arns[primary], *primaries
            ).apply(lambda v: replication_job_policy(v[2:], (primary, v[0], v[1]), args.prefix)),
            args.tags,
        )
        copies = [
            pulumi.Output.all(region, d.bucket_arns[region], d.key_arns[region])
            for d in args.datasets
            for region in d.bucket_arns
        ]
        stores = {
            region: pulumi.Output.all(args.store_arns[region], args.store_key_arns[region])
            for region in args.store_arns
        }
        restore = self._role(
            f"{name}-restore",
            "S3 Batch Operations copy of prior versions back on top (restore-objects)",
            pulumi.Output.all(copies=copies, stores=stores).apply(
                lambda v: restore_job_policy(
                    [tuple(c) for c in v["copies"]],
                    {r: tuple(s) for r, s in v["stores"].items()},
                    args.prefix,
                )
            ),
            args.tags,
        )
        self.replication_role_arn = replication.arn
        self.restore_role_arn = restore.arn
        self.register_outputs(
            {"replication_role_arn": self.replication_role_arn, "restore_role_arn": restore.arn}
        )

    def _role(self, name: str, description: str, policy, tags) -> aws.iam.Role:
        """A role only Batch Operations can assume, with one inline policy."""
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            name,
            description=description,
            assume_role_policy=service_trust_policy(BATCH_SERVICE),
            tags=dict(tags),
            opts=child,
        )
        aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy, opts=child)
        return role
