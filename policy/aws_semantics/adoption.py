"""Adopted resources: read from the stack that owns them, never configured by two stacks."""

from __future__ import annotations

from .graph import REPLICATED_BUCKET, Stack, get
from .iam_eval import as_list

Finding = tuple[str, str]
SECRETS_BACKUP = "platform-dr:secrets_backup:SecretsBackup"
# Resources that set a property of an existing bucket (each is a separate S3 API call).
BUCKET_SETTINGS = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
)


def adopted_not_reconfigured(stack: Stack) -> list[Finding]:
    """A resource this stack adopts from another stack is not configured by this stack too.

    Document: Pulumi documentation, "Resource get functions" and "import" resource option
    (https://www.pulumi.com/docs/iac/concepts/resources/get/): a resource read with ``get`` is
    not managed by the reading stack; and Amazon S3 API Reference, PutBucketVersioning,
    PutBucketEncryption, PutBucketPolicy, PutBucketLifecycleConfiguration,
    PutObjectLockConfiguration, PutBucketOwnershipControls, PutPublicAccessBlock: each replaces
    the bucket's whole setting, so whichever stack ran ``pulumi up`` last wins.

    Constraint: for every bucket copy a ReplicatedBucket adopts (``adopted_regions``), no bucket
    setting resource of this stack targets that bucket; for every parameter SecretsBackup
    adopts, this stack declares no parameter of that name in that region.
    """
    found: list[Finding] = []
    adopted: set[str] = set()
    for comp in stack.of(REPLICATED_BUCKET):
        names = get(comp.props, "bucket_names") or {}
        adopted |= {names[r] for r in as_list(get(comp.props, "adopted_regions")) if r in names}
    for r in stack.of(*BUCKET_SETTINGS):
        if get(r.props, "bucket") in adopted:
            found.append(
                (
                    r.name,
                    f"sets {r.type.split(':')[-1]} on adopted bucket "
                    f"{r.props['bucket']}, which the owning stack also declares",
                )
            )
    for comp in stack.of(SECRETS_BACKUP):
        region = get(comp.props, "adopted_parameter_region")
        names = set(as_list(get(comp.props, "adopted_parameters")))
        for r in stack.of("aws:ssm/parameter:Parameter"):
            if get(r.props, "region") == region and get(r.props, "name") in names:
                found.append((r.name, f"declares adopted parameter {r.props['name']} in {region}"))
    return found


RULES = [
    (
        "adopted-not-reconfigured",
        "Adopted resources are not configured by two stacks",
        adopted_not_reconfigured,
    ),
]
