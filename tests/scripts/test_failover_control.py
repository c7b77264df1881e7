"""The failover's DR-region referee on moto's S3: the lease, the shared journal, network fencing.

moto implements S3 conditional writes (``If-None-Match: *`` and ``If-Match`` on PutObject and
DeleteObject, 412 on a mismatch), so the compare-and-swap behaviour here is moto's. Two things
moto does not do are proved by shape only: it never answers 409 ConditionalRequestConflict (two
conditional writes racing inside S3), so that path is driven through botocore's Stubber, which
validates the PutObject request against the real S3 service model; and it does not evaluate bucket
policies, so the conditional-writes-only policy is checked as a document
(tests/unit/test_failover_control.py).
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.stub import Stubber

from components.failover_control import ack_prefix, journal_key, lease_key
from scripts.common import DrctlError, ExitCode
from scripts.dataops.lease import LeaseStore
from scripts.dataops.s3_conditional import is_precondition_failure, put_json
from scripts.runbooks import failover as fo
from scripts.runbooks.engine import Runbook, Step
from scripts.runbooks.journal import S3Journal
from tests.scripts.dr_cloud import (
    CONTROL,
    DR,
    PRIMARY,
    CloudAws,
    MotoCloud,
    outputs_for,
    primary_record,
    replica_lag,
    seed,
)

PRIMARY_HOST = "platform-dr-prod.c0ffee.us-east-1.rds.amazonaws.com"
REPLICA_HOST = "dr-standby-replica.c0ffee.us-west-2.rds.amazonaws.com"


@pytest.fixture(scope="module")
def cloud():
    server = MotoCloud()
    yield server
    server.stop()


@pytest.fixture
def s3(cloud):
    cloud.reset()
    client = cloud.client("s3", DR)
    client.create_bucket(Bucket=CONTROL, CreateBucketConfiguration={"LocationConstraint": DR})
    client.put_bucket_versioning(Bucket=CONTROL, VersioningConfiguration={"Status": "Enabled"})
    return client


def _store(s3) -> LeaseStore:
    return LeaseStore(s3, CONTROL, lease_key("prod"), ack_prefix("prod"))


def _renew_like_a_guard(s3, region: str) -> None:
    """What fence_guard.py's renewal does: read, then If-Match on that ETag."""
    got = s3.get_object(Bucket=CONTROL, Key=lease_key("prod"))
    doc = json.loads(got["Body"].read())
    doc.update(holder=doc.get("holder") or region, renewed_at="2026-01-01T00:00:00Z")
    put_json(s3, CONTROL, lease_key("prod"), doc, got["ETag"])


# -- the lease -------------------------------------------------------------------------------------


def test_taking_the_lease_raises_the_epoch_and_keeps_who_held_it_before(s3):
    store = _store(s3)
    assert store.read() is None
    first, before = store.take(PRIMARY, "run-a", "test", ttl_s=30)
    assert (first.epoch, first.holder, before) == (1, PRIMARY, {})
    _renew_like_a_guard(s3, PRIMARY)
    second, before = store.take(DR, "run-b", "test", ttl_s=30)
    assert (second.epoch, second.holder) == (2, DR)
    assert before["holder"] == PRIMARY and before["renewed_at"]
    # The same run taking it again is a no-op (a resumed isolate step).
    again, _ = store.take(DR, "run-b", "test", ttl_s=30)
    assert again.epoch == 2 and again.etag == second.etag


def test_a_lease_that_changed_between_read_and_write_is_not_overwritten(s3, monkeypatch):
    store = _store(s3)
    store.take(PRIMARY, "run-a", "test", ttl_s=30)
    real_read = store.read

    def read_then_a_guard_renews():
        lease = real_read()
        _renew_like_a_guard(s3, PRIMARY)  # lands between our read and our write
        return lease

    monkeypatch.setattr(store, "read", read_then_a_guard_renews)
    with pytest.raises(DrctlError) as raised:
        store.take(DR, "run-b", "test", ttl_s=30)
    assert raised.value.code == ExitCode.REFUSED and "nothing was overwritten" in str(raised.value)
    monkeypatch.setattr(store, "read", real_read)
    lease = store.read()
    assert (lease.epoch, lease.holder) == (1, PRIMARY)  # the guard's renewal stands


def test_a_409_conflict_counts_as_a_lost_race_request_shape_from_the_real_model():
    """moto never races: the 409 path through botocore's Stubber, which checks the PutObject
    request (If-Match header included) against the real S3 service model."""
    client = boto3.client("s3", region_name=DR, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error(
            "put_object",
            service_error_code="ConditionalRequestConflict",
            http_status_code=409,
            expected_params={
                "Bucket": CONTROL,
                "Key": "journal/prod/failover.json",
                "Body": json.dumps({"a": 1}, indent=2).encode(),
                "ContentType": "application/json",
                "IfMatch": '"etag-1"',
            },
        )
        stub.add_client_error(
            "put_object",
            service_error_code="PreconditionFailed",
            http_status_code=412,
            expected_params={
                "Bucket": CONTROL,
                "Key": "lease/prod/database.json",
                "Body": json.dumps({"a": 1}, indent=2).encode(),
                "ContentType": "application/json",
                "IfNoneMatch": "*",
            },
        )
        for key, etag in (("journal/prod/failover.json", '"etag-1"'), (lease_key("prod"), None)):
            with pytest.raises(Exception) as raised:
                put_json(client, CONTROL, key, {"a": 1}, etag)
            assert is_precondition_failure(raised.value)
        stub.assert_no_pending_responses()


def test_guard_acknowledgements_are_read_per_epoch(s3):
    store = _store(s3)
    for epoch, host in ((1, "old-a"), (2, "old-b")):
        s3.put_object(
            Bucket=CONTROL,
            Key=f"{ack_prefix('prod')}epoch-{epoch}/{PRIMARY}-{host}.json",
            Body=json.dumps({"host": host, "region": PRIMARY, "epoch_seen": epoch}).encode(),
        )
    assert [a["host"] for a in store.acknowledgements(2)] == ["old-b"]
    assert store.acknowledgements(3) == []


# -- the shared journal ----------------------------------------------------------------------


class Steps:
    def __init__(self):
        self.calls: list[str] = []
        self.fail: set[str] = set()

    def book(self, journal) -> Runbook:
        def step(name):
            def action(ctx):
                self.calls.append(name)
                if name in self.fail:
                    self.fail.discard(name)
                    raise ConnectionError(f"{name}: outage")
                return {"run": ctx.run_id}

            return Step(name, name, action)

        return Runbook("failover", "prod", [step(n) for n in ("a", "b", "c")], journal=journal)


def _journal(s3, operator: str, ttl: float = 120) -> S3Journal:
    return S3Journal(s3, CONTROL, journal_key("prod", "failover"), lock_ttl_s=ttl, holder=operator)


def test_another_operator_on_another_machine_resumes_the_same_run(s3):
    alice, bob = Steps(), Steps()
    alice.fail.add("b")
    with pytest.raises(DrctlError):
        alice.book(_journal(s3, "alice@laptop")).run(execute=True, yes=True)
    report = bob.book(_journal(s3, "bob@desk")).run(execute=True, yes=True)
    assert report.status == "completed" and bob.calls == ["b", "c"]
    doc = json.loads(s3.get_object(Bucket=CONTROL, Key="journal/prod/failover.json")["Body"].read())
    assert doc["runs"] == 2 and doc["status"] == "completed"
    # One run, one id, whoever ran each step.
    assert {s["result"]["run"] for s in doc["steps"]} == {doc["run_id"]}
    assert report.journal == f"s3://{CONTROL}/journal/prod/failover.json"


def test_a_held_lock_refuses_a_second_operator_until_it_is_stale(s3):
    # alice's drctl took the lock and then died: nobody renews it any more.
    _journal(s3, "alice@laptop", ttl=1.5)._acquire()
    with pytest.raises(DrctlError) as raised:
        Steps().book(_journal(s3, "bob@desk", ttl=1.5)).run(execute=True, yes=True)
    assert raised.value.code == ExitCode.REFUSED and "alice@laptop" in str(raised.value)
    time.sleep(2.0)
    bob = Steps()
    assert bob.book(_journal(s3, "bob@desk", ttl=1.5)).run(execute=True, yes=True).status == (
        "completed"
    )


def test_a_stale_writer_cannot_overwrite_a_newer_journal(s3):
    alice, bob = _journal(s3, "alice"), _journal(s3, "bob")
    alice.save({"version": 2, "steps": []})
    bob.load()
    bob.save({"version": 2, "steps": [], "by": "bob"})
    with pytest.raises(DrctlError) as raised:
        alice.save({"version": 2, "steps": [], "by": "alice"})
    assert raised.value.code == ExitCode.REFUSED and "nothing was overwritten" in str(raised.value)


# -- failover with the control bucket (rds: no guard, the lease is the record) ---------------


def test_rds_failover_takes_the_lease_journals_in_s3_and_revokes_the_db_ingress(cloud):
    cloud.reset()
    seeded = seed(
        cloud, primary_endpoint=PRIMARY_HOST, standby_endpoint=REPLICA_HOST, rds=True, control=True
    )
    plan = fo.load_plan(
        "prod", outputs_for(seeded, backend="rds", primary=PRIMARY_HOST, standby=REPLICA_HOST)
    )
    assert plan.control_bucket == CONTROL
    replica_lag(cloud, 2.0)
    aws = CloudAws(cloud=cloud)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = fo.run_failover(
        plan, aws, fo.Connections(), execute=True, yes=True, waiter_delay=1
    )  # no --journal: the shared one
    assert report.status == "completed" and report.journal.startswith(f"s3://{CONTROL}/")
    steps = {s["name"]: s["result"] for s in report.steps}
    lease = steps["isolate"]["lease"]
    assert (lease["epoch"], lease["holder"], lease["guarded"]) == (1, DR, False)
    assert lease["accepted_unfenced"] is False  # no guard is expected on RDS: nothing to accept
    assert steps["isolate"]["fence_wait"]["waited_s"] == 0.0  # nothing to wait for on RDS
    revoked = steps["isolate"]["network"]["revoked"]
    assert [(r["GroupId"], r["FromPort"]) for r in revoked] == [
        (seeded.primary_security_group, 5432)
    ]
    rules = cloud.client("ec2", PRIMARY).describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [seeded.primary_security_group]}]
    )["SecurityGroupRules"]
    ingress = sorted(r["FromPort"] for r in rules if not r["IsEgress"])
    assert ingress == [22]  # only the database port was closed
    assert steps["validate"]["fence"]["holder"] == DR
    assert primary_record(cloud, plan)["ResourceRecords"] == [{"Value": REPLICA_HOST}]
    stored = _store(cloud.client("s3", DR)).read()
    assert (stored.epoch, stored.holder) == (1, DR)
