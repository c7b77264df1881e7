"""`drctl rebuild --stack dr` with an injected fake Automation API stack, and moto for AWS.

The Pulumi CLI cannot be installed here, so ``FakeStack`` stands in for
``pulumi.automation.Stack``. It speaks the Automation API's own types (EngineEvent,
ResourcePreEvent, PreviewResult, UpResult, UpdateSummary, OutputValue), so the code under test
reads exactly what a real preview and up would hand it. What the rebuild adopts (bucket copies,
KMS keys, secret replicas, the backup vault, pgBackRest repo2) lives in moto's server.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pulumi.automation import OutputValue
from pulumi.automation._stack import PreviewResult, UpdateSummary, UpResult
from pulumi.automation.events import (
    EngineEvent,
    OpType,
    ResourcePreEvent,
    StepEventMetadata,
)
from typer.testing import CliRunner

from scripts.cli import app
from scripts.common import DrctlError, ExitCode
from scripts.runbooks import rebuild as rb
from scripts.runbooks.failover import Aws
from tests.scripts.dr_cloud import MotoCloud

DR_PRIMARY, DR_SECOND = "us-west-2", "eu-west-1"  # Pulumi.dr.yaml's primary and DR regions
BUCKET_URN = "urn:pulumi:dr::platform-dr::aws:s3/bucket:Bucket::creator-audio-us-west-2"


def _event(seq: int, op: OpType, urn: str, type_: str) -> EngineEvent:
    meta = StepEventMetadata(op=op, urn=urn, type=type_, provider="")
    return EngineEvent(seq, 0, resource_pre_event=ResourcePreEvent(metadata=meta))


class FakeStack:
    """A stand-in for pulumi.automation.Stack that records what it was asked to do."""

    def __init__(self, *, destructive=(), up_result="succeeded", converge=True, hide=0):
        self.destructive = list(destructive)
        self.up_result = up_result
        self.converge = converge
        self.hide = hide  # destructive steps counted in the summary but not sent as events
        self.calls: list[tuple[str, object]] = []
        self.applied = False

    def preview(self, on_event=None, plan=None, **kwargs):
        self.calls.append(("preview", plan))
        if self.applied and self.converge:
            return PreviewResult("", "", {OpType.SAME: 40})
        events = [
            _event(
                1,
                OpType.CREATE,
                "urn:pulumi:dr::platform-dr::aws:ec2/vpc:Vpc::v",
                "aws:ec2/vpc:Vpc",
            ),
            *(
                _event(2 + i, OpType(op), urn, type_)
                for i, (op, urn, type_) in enumerate(self.destructive)
            ),
        ]
        for event in events:
            on_event(event)
        if plan:
            Path(plan).write_text(json.dumps({"resourcePlans": {}}))
        summary = {OpType.CREATE: 1, OpType.SAME: 39}
        for op, *_ in self.destructive:
            summary[OpType(op)] = summary.get(OpType(op), 0) + 1
        if self.hide:
            summary[OpType.DELETE] = summary.get(OpType.DELETE, 0) + self.hide
        return PreviewResult("", "", summary)

    def up(self, on_output=None, plan=None, **kwargs):
        self.calls.append(("up", plan))
        on_output("Updating (dr):")
        self.applied = self.up_result == "succeeded"
        now = dt.datetime.now(dt.UTC)
        summary = UpdateSummary(
            kind="update",
            start_time=now,
            message="",
            environment={},
            config={},
            result=self.up_result,
            end_time=now,
            resource_changes={OpType.CREATE: 1, OpType.SAME: 39},
        )
        return UpResult("", "", summary, {})

    def outputs(self):
        values = {"regions": {"primary": DR_PRIMARY}, "buckets": {}, "drStandby": {}}
        return {k: OutputValue(v, False) for k, v in values.items()}


@pytest.fixture(scope="module")
def cloud():
    server = MotoCloud()
    yield server
    server.stop()


@pytest.fixture
def source(cloud):
    """prod's outputs, naming real (moto) copies in the dr stack's two regions."""
    cloud.reset()
    outputs = {
        "regions": {"primary": "us-east-1", "dr": DR_PRIMARY, "third": DR_SECOND},
        "buckets": {},
        "bucketKeyArns": {},
        "drStandby": {"zoneId": "Z123", "replicaIdentifier": None},
        "database": {"repoBuckets": {"repo2": "prod-repo2-us-west-2"}},
        "secretArns": {},
        "backupVaultNames": {DR_PRIMARY: "prod-vault-us-west-2"},
    }
    for dataset in ("creator-audio", "user-assets"):
        outputs["buckets"][dataset] = {}
        outputs["bucketKeyArns"][dataset] = {}
        for region in (DR_PRIMARY, DR_SECOND):
            name = f"{dataset}-{region}"
            cloud.client("s3", region).create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}
            )
            key = cloud.client("kms", region).create_key(Description=name)["KeyMetadata"]["Arn"]
            outputs["buckets"][dataset][region] = name
            outputs["bucketKeyArns"][dataset][region] = key
    cloud.client("s3", DR_PRIMARY).create_bucket(
        Bucket="prod-repo2-us-west-2", CreateBucketConfiguration={"LocationConstraint": DR_PRIMARY}
    )
    sm = cloud.client("secretsmanager", "us-east-1")
    sm.create_secret(
        Name="platform-dr/prod/api/payments",
        SecretString="x",
        AddReplicaRegions=[{"Region": DR_PRIMARY}],
    )
    dr_arn = cloud.client("secretsmanager", DR_PRIMARY).describe_secret(
        SecretId="platform-dr/prod/api/payments"
    )["ARN"]
    outputs["secretArns"]["platform-dr/prod/api/payments"] = {DR_PRIMARY: dr_arn}
    cloud.client("backup", DR_PRIMARY).create_backup_vault(BackupVaultName="prod-vault-us-west-2")
    return outputs


class CloudOnly(Aws):
    def __init__(self, cloud):
        super().__init__(cloud.session, endpoint_url=cloud.url)
        self.cloud = cloud

    def client(self, service, region):
        return self.cloud.client(service, region)


def _rebuild(cloud, source, fake, tmp_path, *, execute=True, **kw):
    kw.setdefault("fill", False)  # the fill step has its own tests (test_rebuild_fill.py)
    return rb.run_rebuild(
        "dr",
        CloudOnly(cloud),
        execute=execute,
        yes=True,
        open_stack=lambda name: fake,
        source_outputs=lambda: source,
        which=lambda tool: "/usr/local/bin/pulumi",
        journal=tmp_path / "rebuild.json",
        **kw,
    )


def test_rebuild_previews_refuses_nothing_applies_the_plan_and_verifies(cloud, source, tmp_path):
    fake = FakeStack()
    report = _rebuild(cloud, source, fake, tmp_path)
    assert report.status == "completed"
    plan = str(tmp_path / "rebuild.plan.json")
    assert fake.calls == [("preview", plan), ("up", plan), ("preview", None)]
    steps = {s["name"]: s["result"] for s in report.steps}
    checks = steps["preflight"]["checks"]
    assert len(checks) == 2 * 2 * 2 + 1 + 1 + 1 and all(c["ok"] for c in checks)
    assert {c["region"] for c in checks} == {DR_PRIMARY, DR_SECOND}
    assert steps["preview"]["change_summary"] == {"create": 1, "same": 39}
    assert steps["verify"]["converged"] is True


def test_dry_run_previews_without_applying(cloud, source, tmp_path):
    fake = FakeStack()
    report = _rebuild(cloud, source, fake, tmp_path, execute=False)
    assert [s["status"] for s in report.steps] == ["checked"] * 3 + ["planned"] * 2
    assert [c[0] for c in fake.calls] == ["preview"]
    assert not (tmp_path / "rebuild.json").exists()


def test_a_delete_or_replace_is_refused_unless_allowed_by_urn(cloud, source, tmp_path):
    fake = FakeStack(destructive=[("replace", BUCKET_URN, "aws:s3/bucket:Bucket")])
    with pytest.raises(DrctlError) as raised:
        _rebuild(cloud, source, fake, tmp_path)
    assert raised.value.code == ExitCode.REFUSED and BUCKET_URN in str(raised.value)
    assert "up" not in [c[0] for c in fake.calls]

    report = _rebuild(cloud, source, fake, tmp_path, allow=[BUCKET_URN])
    assert report.status == "completed"
    assert [c[0] for c in fake.calls].count("preview") == 2  # the resumed run did not re-preview


def test_deletes_the_events_do_not_name_are_refused(cloud, source, tmp_path):
    with pytest.raises(DrctlError) as raised:
        _rebuild(cloud, source, FakeStack(hide=1), tmp_path)
    assert raised.value.code == ExitCode.REFUSED and "change summary counts 1" in str(raised.value)


def test_missing_cli_is_a_precondition_failure(cloud, source, tmp_path):
    with pytest.raises(DrctlError) as raised:
        rb.run_rebuild(
            "dr",
            CloudOnly(cloud),
            execute=False,
            yes=False,
            open_stack=lambda name: FakeStack(),
            source_outputs=lambda: source,
            which=lambda tool: None,
            journal=tmp_path / "j.json",
        )
    assert raised.value.code == ExitCode.PRECONDITION_FAILED
    assert "get.pulumi.com" in str(raised.value)


def test_a_missing_dr_copy_or_a_disabled_key_stops_the_preflight(cloud, source, tmp_path):
    cloud.client("s3", DR_SECOND).delete_bucket(Bucket=f"user-assets-{DR_SECOND}")
    key = source["bucketKeyArns"]["creator-audio"][DR_PRIMARY]
    cloud.client("kms", DR_PRIMARY).disable_key(KeyId=key.split("/")[-1])
    fake = FakeStack()
    with pytest.raises(DrctlError) as raised:
        _rebuild(cloud, source, fake, tmp_path)
    message = str(raised.value)
    assert raised.value.code == ExitCode.PRECONDITION_FAILED and "2 thing(s)" in message
    assert f"user-assets copy user-assets-{DR_SECOND} in {DR_SECOND}" in message
    assert f"creator-audio key {key}" in message
    assert fake.calls == []


def test_a_failed_up_resumes_at_up_and_an_unconverged_stack_fails_verify(cloud, source, tmp_path):
    fake = FakeStack(up_result="failed")
    with pytest.raises(DrctlError) as raised:
        _rebuild(cloud, source, fake, tmp_path)
    assert raised.value.code == ExitCode.STEP_FAILED
    fake.up_result = "succeeded"
    fake.converge = False
    with pytest.raises(DrctlError) as raised:
        _rebuild(cloud, source, fake, tmp_path)
    assert "not converged" in str(raised.value)
    assert [c[0] for c in fake.calls] == ["preview", "up", "up", "preview"]
    doc = json.loads((tmp_path / "rebuild.json").read_text())
    assert [(s["name"], s["status"]) for s in doc["steps"]][-2:] == [
        ("up", "completed"),
        ("verify", "failed"),
    ]


def test_prod_really_exports_what_the_rebuild_reads(prod, dr):
    """The real program's outputs, not a hand-made dict, carry every key preflight adopts."""
    assert set(rb.REQUIRED_OUTPUTS) <= set(prod.outputs)
    calls = []

    class Recorder:
        def client(self, service, region):
            class Any_:
                def __getattr__(self, name):
                    def call(**kwargs):
                        calls.append((service, region, name))
                        return {
                            "KeyMetadata": {"KeyState": "Enabled"},
                            "Name": "n",
                            "BackupVaultName": "v",
                        }

                    return call

            return Any_()

    from components.objectives import parse_objectives
    from scripts.local.evaluate import read_stack_config

    objectives = parse_objectives(read_stack_config("dr"), "dr")
    checks = rb.adoption_checks(objectives, prod.outputs, Recorder())
    assert checks and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]
    services = {c[0] for c in calls}
    assert {"s3", "kms", "secretsmanager", "backup"} <= services
    assert {c[1] for c in calls} == {DR_PRIMARY, DR_SECOND}
    assert dr.outputs["drStandby"]["zoneId"] == prod.outputs["drStandby"]["zoneId"]


def test_cli_without_pulumi_exits_with_the_precondition_code(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    source = tmp_path / "prod.json"
    source.write_text(json.dumps({"regions": {}, "buckets": {}, "drStandby": {}}))
    result = CliRunner().invoke(
        app, ["rebuild", "--stack", "dr", "--source-outputs", str(source), "--json"]
    )
    assert result.exit_code == ExitCode.PRECONDITION_FAILED
    assert json.loads(result.stdout)["error"]["code"] == ExitCode.PRECONDITION_FAILED
