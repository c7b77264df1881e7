"""`drctl rebuild` fills the new copies with S3 Batch Replication (generated manifests).

The dr stack's real outputs (the program evaluated under mocks) say what to fill; the jobs go to
botocore's Stubber, which validates each CreateJob against the S3 Control model (moto has no
S3 Control jobs). The rest of the rebuild runs as in test_rebuild.py (moto server, fake stack).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from pulumi.automation import OutputValue

from scripts.common import DrctlError, ExitCode
from scripts.runbooks import rebuild as rb
from scripts.runbooks.repair import fill_jobs
from tests.scripts.test_rebuild import CloudOnly, FakeStack, cloud, source  # noqa: F401

DATASETS = ("creator-audio", "generated-archive", "user-assets")


def stubbed_s3control(region="us-west-2"):
    client = boto3.client(
        "s3control", region_name=region, aws_access_key_id="t", aws_secret_access_key="t"
    )
    captured: list[dict] = []
    client.meta.events.register(
        "provide-client-params.s3-control.CreateJob", lambda params, **_: captured.append(params)
    )
    return client, captured


def test_one_generated_manifest_job_per_dataset_from_the_new_primary(dr, prod):
    client, captured = stubbed_s3control()

    def client_for(service, region):
        assert (service, region) == ("s3control", "us-west-2"), "jobs run in the source region"
        return client

    with Stubber(client) as stub:
        for i, _ in enumerate(DATASETS):
            stub.add_response("create_job", {"JobId": f"job-{i}"})
        jobs = fill_jobs("dr", dr.outputs, client_for, stamp=lambda: "20260301T000000Z")
    assert sorted(jobs) == sorted(DATASETS)
    inventory = dr.outputs["inventory"]
    for request in captured:
        generator = request["ManifestGenerator"]["S3JobManifestGenerator"]
        dataset = request["Report"]["Prefix"].rsplit("/", 1)[-1]
        # The dr stack's primary is the copy prod kept in us-west-2 (adopted, not created).
        adopted = prod.outputs["buckets"][dataset]["us-west-2"]
        assert generator["SourceBucket"] == f"arn:aws:s3:::{adopted}"
        assert "REPLICA" in generator["Filter"]["ObjectReplicationStatuses"]
        assert request["RoleArn"] == inventory["batchReplicationRoleArn"]
        assert request["Report"]["Bucket"] == f"arn:aws:s3:::{inventory['buckets']['us-west-2']}"
        assert generator["ManifestOutputLocation"]["ManifestPrefix"].endswith("20260301T000000Z")


def test_a_stack_without_an_inventory_cannot_be_filled(dr):
    with pytest.raises(DrctlError) as err:
        fill_jobs("dr", {"regions": {}}, lambda *a: None)
    assert err.value.code == ExitCode.PRECONDITION_FAILED


class WithInventory(FakeStack):
    def __init__(self, inventory, **kw):
        super().__init__(**kw)
        self.inventory = inventory

    def outputs(self):
        values = {k: v.value for k, v in super().outputs().items()}
        return {
            k: OutputValue(v, False) for k, v in {**values, "inventory": self.inventory}.items()
        }


class StubbedControl(CloudOnly):
    def __init__(self, server, control):
        super().__init__(server)
        self.control = control

    def client(self, service, region):
        return self.control if service == "s3control" else super().client(service, region)


def test_the_rebuild_runbook_fills_after_it_verifies(cloud, source, dr, tmp_path):  # noqa: F811
    control, captured = stubbed_s3control()
    fake = WithInventory(dr.outputs["inventory"])
    kwargs = dict(
        yes=True,
        open_stack=lambda name: fake,
        source_outputs=lambda: source,
        which=lambda tool: "/usr/local/bin/pulumi",
        journal=tmp_path / "rebuild.json",
    )
    dry = rb.run_rebuild("dr", StubbedControl(cloud, control), execute=False, **kwargs)
    assert [(s["name"], s["status"]) for s in dry.steps][-1] == ("fill", "planned")
    assert captured == []
    with Stubber(control) as stub:
        for i, _ in enumerate(DATASETS):
            stub.add_response("create_job", {"JobId": f"job-{i}"})
        report = rb.run_rebuild("dr", StubbedControl(cloud, control), execute=True, **kwargs)
    assert report.status == "completed"
    steps = {s["name"]: s["result"] for s in report.steps}
    assert sorted(steps["fill"]["jobs"]) == sorted(DATASETS)
    assert len(captured) == len(DATASETS)
