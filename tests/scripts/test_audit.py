"""`drctl audit replication` on moto's S3, with reports written as S3 Inventory delivers them.

The local engine (DuckDB) must find exactly the injected discrepancies and nothing else: not the
writes still within the RPO, not the noncurrent versions lifecycle is expiring, not storage classes
that differ. Each verdict is also shown failing (exit 1), and every missing or damaged input is a
precondition (exit 4). The tests run in a non-UTC zone (conftest), so a comparison that used local
time instead of UTC would misjudge the recent writes.
"""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from typer.testing import CliRunner

from components.objectives import parse_objectives
from scripts.checks.audit import command
from scripts.checks.audit.engines import LocalEngine
from scripts.cli import app
from scripts.dataops.inventory_store import S3Store
from scripts.local.evaluate import read_stack_config
from scripts.local.inventory import synthesize, write_report
from tests.scripts.inventory_fixtures import (
    AGREE,
    DATASET,
    NOTHING,
    copies_of,
    create_buckets,
    moto_s3,
    write_reports,
)


@pytest.fixture
def aws(monkeypatch):
    yield from moto_s3(monkeypatch)


@pytest.fixture
def inventory(prod):
    return prod.outputs["inventory"]


@pytest.fixture
def objectives():
    return parse_objectives(read_stack_config("prod"), "prod")


def clients_for(region_clients):
    def client_for(service, region):
        return region_clients[region] if service == "s3" else boto3.client(service, region)

    return client_for


def run(aws, objectives, prod, tmp_path, **kwargs):
    return command.run_audits(
        "prod",
        objectives,
        prod.outputs,
        "local",
        clients_for(aws),
        datasets=[DATASET],
        cache=tmp_path / "cache",
        **kwargs,
    )


def found(audit, kinds=None):
    rows = audit.rows(None) if kinds is None else audit.rows(None, kinds)
    return {(r["key"], r["version_id"], r["region"], r["kind"]) for r in rows}


def test_finds_exactly_the_injected_discrepancies_and_nothing_else(
    aws, inventory, objectives, prod, tmp_path
):
    create_buckets(aws, inventory)
    synthetic = write_reports(aws, inventory)
    (audit,) = run(aws, objectives, prod, tmp_path)
    assert found(audit) == synthetic.expected
    assert audit.discrepancies == len(synthetic.expected) > 0
    # Not discrepancies: lifecycle expiring old versions on each copy's own clock...
    expiring = {(r["key"], r["version_id"]) for r in audit.rows(None, ["expiring"])}
    assert expiring == synthetic.quiet["expiring"]
    # ...writes still within the RPO (compared once they settle) and storage classes.
    keys = {r["key"] for r in audit.rows(None, audit.findings["kind"].unique().to_pylist())}
    assert not keys & {k for k, _ in synthetic.quiet["recent"]}
    assert not keys & {k for k, _ in synthetic.quiet["class-differs"]}
    assert audit.copies["us-east-1"]["unsettled"] == len(synthetic.quiet["recent"])
    assert audit.copies["us-west-2"]["versions"] == synthetic.rows["us-west-2"]
    assert audit.counts["us-east-1"] == {"replication-failed": 3, "replication-pending": 2}


def test_the_prefilter_changes_nothing_it_only_narrows(aws, inventory, objectives, prod, tmp_path):
    """Same findings and copy statistics with and without local.sql's pre-filter."""
    create_buckets(aws, inventory)
    write_reports(aws, inventory)
    store = S3Store(lambda region: aws[region])
    from scripts.checks import audit as audit_module

    kinds = [*audit_module.DISCREPANCIES, "expiring"]
    results = {}
    for prefilter in (True, False):
        engine = LocalEngine(store, tmp_path / "cache", prefilter=prefilter)
        result = audit_module.audit_dataset(inventory, DATASET, objectives, store, engine)
        results[prefilter] = (found(result, kinds), result.copies, engine.narrowed_rows)
    assert results[True][:2] == results[False][:2]
    narrowed, versions = results[True][2], sum(c["versions"] for c in results[True][1].values())
    assert narrowed is not None and 0 < narrowed < versions / 2
    assert results[False][2] is None


def test_copies_that_agree_pass(aws, inventory, objectives, prod, tmp_path):
    create_buckets(aws, inventory)
    clean = AGREE
    write_reports(aws, inventory, injections=clean)
    (audit,) = run(aws, objectives, prod, tmp_path)
    assert audit.discrepancies == 0 and audit.expiring == clean.expiring


def test_a_new_empty_copy_is_missing_every_settled_version(
    aws, inventory, objectives, prod, tmp_path
):
    """The rebuild case: the new third region holds nothing yet; the pre-filter steps aside."""
    create_buckets(aws, inventory)
    copies = copies_of(inventory)
    quiet = NOTHING
    synthetic = write_reports(aws, inventory, objects=600, injections=quiet, copies=copies[:2])
    third = copies[2]
    write_report(
        lambda b, k, d: aws[third.region].put_object(Bucket=b, Key=k, Body=d),
        third.store,
        third.bucket,
        inventory["configId"],
        third.started,
        [],
    )
    (audit,) = run(aws, objectives, prod, tmp_path)
    source_rows = synthetic.rows["us-east-1"]
    assert audit.counts == {third.region: {"missing": source_rows}}


def _cli(tmp_path, prod, *extra):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(prod.outputs))
    args = [
        "audit",
        "replication",
        "--stack",
        "prod",
        "--outputs",
        str(outputs),
        "--dataset",
        DATASET,
        "--cache",
        str(tmp_path / "cache"),
        *extra,
    ]
    return CliRunner().invoke(app, args)


def test_cli_exits_1_on_discrepancies_with_counts_per_region_and_kind(
    aws, inventory, prod, tmp_path
):
    create_buckets(aws, inventory)
    synthetic = write_reports(aws, inventory)
    result = _cli(tmp_path, prod, "--json", "--limit", "5")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (dataset,) = report["datasets"]
    assert report["discrepancies"] == len(synthetic.expected) == dataset["discrepancies"]
    assert dataset["counts"]["eu-west-1"]["missing"] == 5 + 2  # injected, plus pending
    # plus failed, plus pending, plus the archived one
    assert dataset["counts"]["us-west-2"]["missing"] == 5 + 3 + 2 + 1
    assert len(dataset["findings"]) == 5 and dataset["class"] == "critical"
    assert sum(report["classes"]["critical"].values()) == len(synthetic.expected)


def test_cli_exits_0_when_the_copies_agree_and_says_so(aws, inventory, prod, tmp_path):
    create_buckets(aws, inventory)
    write_reports(aws, inventory, injections=AGREE)
    result = _cli(tmp_path, prod)
    assert result.exit_code == 0, result.output
    assert "copies agree" in result.stdout


def test_a_copy_without_a_report_is_a_precondition(aws, inventory, prod, tmp_path):
    create_buckets(aws, inventory)
    result = _cli(tmp_path, prod)
    assert result.exit_code == 4
    assert "no complete inventory report" in result.output and "48 hours" in result.output


def test_a_report_still_being_written_is_skipped_for_the_previous_one(
    aws, inventory, objectives, prod, tmp_path
):
    create_buckets(aws, inventory)
    synthetic = write_reports(aws, inventory)
    source = copies_of(inventory)[0]
    # A newer report whose manifest.checksum S3 has not written yet.
    later = f"inventory/{source.bucket}/{inventory['configId']}/2026-03-02T01-00Z/manifest.json"
    aws[source.region].put_object(Bucket=source.store, Key=later, Body=b"{}")
    (audit,) = run(aws, objectives, prod, tmp_path)
    assert audit.copies["us-east-1"]["report_started"].startswith("2026-03-01T01:00")
    assert found(audit) == synthetic.expected


def test_a_damaged_data_file_is_refused(aws, inventory, prod, tmp_path):
    create_buckets(aws, inventory)
    write_reports(aws, inventory)
    source = copies_of(inventory)[1]
    manifests = aws[source.region].list_objects_v2(Bucket=source.store, Prefix="inventory/")
    key = next(o["Key"] for o in manifests["Contents"] if o["Key"].endswith(".parquet"))
    aws[source.region].put_object(Bucket=source.store, Key=key, Body=b"tampered")
    result = _cli(tmp_path, prod)
    assert result.exit_code == 4
    assert "does not match its manifest" in result.output


def test_a_manifest_whose_checksum_does_not_match_is_not_trusted(aws, inventory, prod, tmp_path):
    create_buckets(aws, inventory)
    write_reports(aws, inventory)
    source = copies_of(inventory)[2]
    prefix = f"inventory/{source.bucket}/{inventory['configId']}/2026-03-01T01-40Z/"
    aws[source.region].put_object(
        Bucket=source.store,
        Key=prefix + "manifest.checksum",
        Body=hashlib.md5(b"something else").hexdigest().encode(),
    )
    result = _cli(tmp_path, prod)
    assert result.exit_code == 4 and "no complete inventory report" in result.output


def test_unknown_dataset_and_engine_are_refused_by_name(aws, inventory, prod, tmp_path):
    result = _cli(tmp_path, prod, "--dataset", "nope")
    assert result.exit_code == 2 and "--dataset 'nope'" in result.output
    result = _cli(tmp_path, prod, "--engine", "spark")
    assert result.exit_code == 2 and "--engine 'spark'" in result.output


def test_reports_read_in_place_are_checked_against_their_manifest(prod, objectives, tmp_path):
    """A directory of reports (DirStore) is read where it is; a damaged file still fails it."""
    from scripts.checks import audit as audit_module
    from scripts.common import DrctlError
    from scripts.dataops.inventory_store import DirStore

    inventory = prod.outputs["inventory"]
    store = DirStore(tmp_path / "reports")
    synthesize(
        store.writer(),
        copies_of(inventory),
        800,
        config=inventory["configId"],
        rpo_s=900,
        noncurrent_days=365,
    )
    engine = LocalEngine(store, tmp_path / "cache")
    result = audit_module.audit_dataset(inventory, DATASET, objectives, store, engine)
    assert (
        result.discrepancies > 0
        and not (tmp_path / "cache" / inventory["buckets"]["us-east-1"]).exists()
    )
    damaged = next((tmp_path / "reports").rglob("*.parquet"))
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DrctlError, match="does not match its manifest"):
        audit_module.audit_dataset(inventory, DATASET, objectives, store, engine)
