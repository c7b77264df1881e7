"""verify's failover-readiness checks on moto: the cipher passphrase's DR copy and the lease.

moto keeps Secrets Manager replicas (with their values and ReplicationStatus) and S3 objects with
Last-Modified and a Date header, which is all these checks read. Each check has its NOT-MET case,
driven by breaking the environment.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from components.failover_control import lease_key
from components.postgres_backup import cipher_secret_name
from scripts.checks.verify import Context, Status, objectives_of_stack
from scripts.checks.verify import failover as fr
from scripts.checks.verify.model import MissingOutput, run_group

PRIMARY, DR = "us-east-1", "us-west-2"
BUCKET = "drctl-control-us-west-2"


@pytest.fixture
def world(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        objectives = objectives_of_stack("prod")
        clients = {}

        def client(service, region):
            if (service, region) not in clients:
                clients[service, region] = boto3.client(service, region_name=region)
            return clients[service, region]

        outputs = {
            "database": {"backend": "self-managed"},
            "failoverControl": {"bucket": BUCKET, "region": DR},
        }
        client("s3", DR).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": DR}
        )
        yield objectives, outputs, client


def _ctx(objectives, outputs, client) -> Context:
    return Context("prod", objectives, outputs, client)


def _secret(objectives, outputs, client, replica=True):
    extra = {"AddReplicaRegions": [{"Region": DR}]} if replica else {}
    arn = client("secretsmanager", PRIMARY).create_secret(
        Name=cipher_secret_name(objectives), SecretString="passphrase", **extra
    )["ARN"]
    outputs["database"]["cipherSecretArns"] = {PRIMARY: arn, DR: arn.replace(PRIMARY, DR)}


def _lease(client, **doc):
    lease = {"epoch": 3, "holder": PRIMARY, "ttl_s": 180, "renewed_at": "x", **doc}
    client("s3", DR).put_object(Bucket=BUCKET, Key=lease_key("prod"), Body=json.dumps(lease))


def test_cipher_passphrase_replica_in_sync_passes(world):
    objectives, outputs, client = world
    _secret(objectives, outputs, client)
    (check,) = fr.cipher_secret_checks(_ctx(objectives, outputs, client))
    assert check.ok and check.measured == "InSync" and check.data_class == "critical"


def test_cipher_passphrase_without_a_dr_copy_fails(world):
    objectives, outputs, client = world
    _secret(objectives, outputs, client, replica=False)
    (check,) = run_group(fr.CIPHER_PASSPHRASE, _ctx(objectives, outputs, client))
    assert check.status is Status.FAIL and "ResourceNotFoundException" in check.detail
    outputs["database"]["cipherSecretArns"] = {PRIMARY: "arn"}
    (check,) = fr.cipher_secret_checks(_ctx(objectives, outputs, client))
    assert not check.ok and "no DR copy" in check.detail
    # A stack without the output fails the group naming it, never passes silently.
    del outputs["database"]["cipherSecretArns"]
    with pytest.raises(MissingOutput):
        fr.cipher_secret_checks(_ctx(objectives, outputs, client))
    (check,) = run_group(fr.CIPHER_PASSPHRASE, _ctx(objectives, outputs, client))
    assert check.status is Status.FAIL and "database.cipherSecretArns" in check.detail


def test_failover_checks_apply_to_the_self_managed_backend_only(world):
    objectives, outputs, client = world
    assert fr.FENCE_LEASE.applies(_ctx(objectives, outputs, client))
    outputs["database"]["backend"] = "rds"
    assert not fr.FENCE_LEASE.applies(_ctx(objectives, outputs, client))
    assert not fr.CIPHER_PASSPHRASE.applies(_ctx(objectives, outputs, client))


def test_fresh_lease_held_by_the_serving_region_passes(world):
    objectives, outputs, client = world
    _lease(client)
    (check,) = fr.fence_lease_checks(_ctx(objectives, outputs, client))
    assert check.ok and check.measured is not None and check.measured <= 180


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"ttl_s": 0.0}, "the guard is not running"),  # renewed longer ago than its TTL
        ({"holder": DR}, "but the platform serves from us-east-1"),
        ({"renewed_at": None}, "never renewed by a guard"),
    ],
)
def test_stale_or_misplaced_lease_fails(world, doc, needle):
    objectives, outputs, client = world
    _lease(client, **doc)
    if doc.get("ttl_s") == 0.0:
        import time

        time.sleep(1.1)  # Last-Modified has one-second resolution
    (check,) = fr.fence_lease_checks(_ctx(objectives, outputs, client))
    assert not check.ok and needle in check.detail


def test_no_lease_at_all_fails(world):
    objectives, outputs, client = world
    (check,) = fr.fence_lease_checks(_ctx(objectives, outputs, client))
    assert not check.ok and "no fence guard has run" in check.detail
