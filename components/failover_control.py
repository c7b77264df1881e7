"""FailoverControl: the DR-region bucket that holds the database lease and the runbook journals.

Fencing that does not need the old primary's cooperation needs a referee the old primary cannot
outvote and the operator can reach while the primary region is down: one small S3 bucket in the
DR region, written only with S3 conditional writes.

- ``lease/<stack>/database.json``: which region's database may be primary, and its epoch.
  ``drctl failover`` moves it with ``If-Match`` on the ETag it read; each database host's fence
  guard (components/agents/fence_guard.py) renews it while it is primary and stops its server
  when the lease names another region or cannot be renewed for the TTL.
- ``lease/<stack>/fenced/epoch-<n>/<region>-<host>.json``: a guard's acknowledgement that it
  stopped its server under epoch ``n``; the failover stops waiting when it sees one.
- ``journal/<stack>/<command>.json`` and ``.lock``: the runbook journal and its lock
  (scripts/runbooks/journal.py), so any operator on any machine resumes the same run.

AWS semantics this relies on, encoded here:

- Conditional writes (``If-None-Match: *`` to create, ``If-Match: <ETag>`` to replace) are
  evaluated by S3 at write time; a losing writer gets 412, a racing one 409 (Amazon S3 User
  Guide, "How to prevent object overwrites with conditional writes"). The bucket policy denies a
  PutObject on the lease and journal keys that carries neither header (the ``s3:if-match`` and
  ``s3:if-none-match`` condition keys, "Enforce conditional writes on Amazon S3 buckets"), so no
  client can overwrite them blindly.
- A reader without ``s3:ListBucket`` gets 403, not 404, for a key that does not exist (Amazon S3
  API Reference, GetObject, "Permissions"). A guard that cannot tell "no lease yet" from "access
  denied" would self-fence a healthy primary, so ``lease_access_policy`` grants ListBucket on the
  stack's lease prefix.
- Encryption is SSE-KMS under a customer managed key in the DR region, like every bucket here,
  with an S3 Bucket Key (one KMS call per bucket key, not per object). Readers and writers need
  ``kms:Decrypt`` and ``kms:GenerateDataKey`` on it (``lease_access_policy`` grants the hosts
  both): a key the hosts cannot use makes their guards fail to renew, and they self-fence after
  the TTL, so ``drctl verify``'s ``fence-lease`` check reports a lease that stops being renewed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.bucket_security import secure_bucket
from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import Objectives, class_tags
from components.s3_policies import bucket_policy

LEASE_PREFIX = "lease"
JOURNAL_PREFIX = "journal"
HISTORY_DAYS = 90  # old lease/journal versions and acknowledgements kept for post-mortems


def lease_key(stack: str) -> str:
    return f"{LEASE_PREFIX}/{stack}/database.json"


def ack_prefix(stack: str) -> str:
    return f"{LEASE_PREFIX}/{stack}/fenced/"


def journal_key(stack: str, command: str) -> str:
    return f"{JOURNAL_PREFIX}/{stack}/{command}.json"


def control_bucket_policy(bucket_arn: str) -> str:
    """TLS only, and no unconditional PutObject on a lease or journal object."""
    conditional = {
        "Sid": "ConditionalWritesOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": [
            f"{bucket_arn}/{LEASE_PREFIX}/*/database.json",
            f"{bucket_arn}/{JOURNAL_PREFIX}/*",
        ],
        # Both keys absent (the operator ANDs them): neither If-Match nor If-None-Match sent.
        "Condition": {"Null": {"s3:if-match": "true", "s3:if-none-match": "true"}},
    }
    return bucket_policy(bucket_arn, [conditional])


def lease_access_policy(bucket_arn: str, key_arn: str, stacks: Sequence[str]) -> str:
    """IAM policy for database hosts: read and renew the lease, write acknowledgements."""
    prefixes = [f"{LEASE_PREFIX}/{s}/" for s in stacks]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TellMissingFromDenied",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": [bucket_arn],
                    "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
                },
                {
                    "Sid": "ReadRenewAcknowledge",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject"],
                    "Resource": [f"{bucket_arn}/{p}*" for p in prefixes],
                },
                {
                    # SSE-KMS: GenerateDataKey to write, Decrypt to read.
                    "Sid": "UseControlKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": [key_arn],
                },
            ],
        },
        sort_keys=True,
    )


@dataclass
class FailoverControlArgs:
    """Arguments of FailoverControl.

    objectives: the stack's Objectives; the bucket goes to ``regions.dr``.
    """

    objectives: Objectives


class FailoverControl(pulumi.ComponentResource):
    """Outputs: ``bucket_name``, ``bucket_arn``, ``key_arn``, ``region``, ``lease_key``."""

    TYPE = "platform-dr:failover_control:FailoverControl"

    def __init__(
        self, name: str, args: FailoverControlArgs, opts: pulumi.ResourceOptions | None = None
    ):
        objectives = args.objectives
        dr = objectives.regions.dr
        super().__init__(self.TYPE, name, {"region": dr}, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = class_tags("critical", "failover-control")
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            region=dr,
            bucket_prefix="drctl-control-",
            force_destroy=False,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=objectives.protect_data),
        )
        key = MultiRegionKey(
            f"{name}-key",
            MultiRegionKeyArgs(
                regions=[dr],
                description="platform-dr failover control: database lease and runbook journals",
                data_class="critical",
                dataset="failover-control",
            ),
            opts=child,
        )
        versioning = secure_bucket(
            name, dr, bucket, key.arns[dr], bucket.arn.apply(control_bucket_policy), parent=self
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            region=dr,
            bucket=bucket.bucket,
            rules=[
                {
                    "id": "history",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": HISTORY_DAYS},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.key_arn = key.arns[dr]
        self.region = dr
        self.lease_key = lease_key(objectives.stack)
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "key_arn": self.key_arn,
                "region": dr,
                "lease_key": self.lease_key,
            }
        )
