"""The prod and dr stacks, evaluated from the real __main__.py and stack files under mocks."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from scripts.local.evaluate import ROOT, evaluate_stack

DATASETS = ("creator-audio", "user-assets", "generated-archive")


def test_prod_exports_what_later_stacks_and_scripts_need(prod):
    assert prod.outputs["regions"] == {
        "primary": "us-east-1",
        "dr": "us-west-2",
        "third": "eu-west-1",
    }
    for output in ("buckets", "bucketArns", "bucketKeyArns"):
        assert set(prod.outputs[output]) >= set(DATASETS)
        for dataset in DATASETS:
            assert set(prod.outputs[output][dataset]) == {"us-east-1", "us-west-2", "eu-west-1"}
    assert set(prod.outputs["alertTopicArns"]) == {"us-east-1", "us-west-2", "eu-west-1"}


def test_dr_adopts_prods_replicas_through_the_stack_reference(prod, dr):
    refs = dr.of_type("pulumi:pulumi:StackReference")
    assert [r.id for r in refs] == ["organization/platform-dr/prod"]
    for dataset in DATASETS:
        for region in ("us-west-2", "eu-west-1"):
            adopted = dr.named(f"{dataset}-{region}")
            # Read, not created: the id is prod's replica, and nothing is copied.
            assert adopted.import_id == prod.outputs["buckets"][dataset][region]
            assert dr.outputs["buckets"][dataset][region] == adopted.import_id
        fresh = dr.named(f"{dataset}-us-east-2")
        assert not fresh.import_id and fresh.inputs["bucketPrefix"].startswith(dataset[:20])


def test_dr_replicates_from_the_old_replica_to_the_remaining_regions(prod, dr):
    config = dr.named("creator-audio-replication")
    assert config.region == "us-west-2"
    assert config.inputs["bucket"] == prod.outputs["buckets"]["creator-audio"]["us-west-2"]
    assert [r["id"] for r in config.inputs["rules"]] == ["to-eu-west-1", "to-us-east-2"]


def test_dr_replication_can_decrypt_objects_written_under_prods_keys(prod, dr):
    policy = dr.named("creator-audio-replication-policy").inputs["policy"]
    assert prod.outputs["bucketKeyArns"]["creator-audio"]["us-west-2"] in policy


def test_dr_refuses_a_primary_where_prod_kept_no_copy():
    """In a process of its own: a program failing inside an apply leaves callbacks on Pulumi's
    event loop that would fail the next evaluation of this test process."""
    script = (
        "from scripts.local.evaluate import evaluate_stack\n"
        "evaluate_stack('dr', overrides={'primaryRegion': 'ap-south-1'})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert re.search(r"no .*copy.* in ap-south-1; a rebuild stack's primaryRegion", result.stderr)


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_every_aws_resource_is_regional_and_data_is_tagged(request, stack):
    evaluation = request.getfixturevalue(stack)
    global_types = ("aws:iam/", "aws:route53/", "aws:cloudfront/")  # global services
    for resource in evaluation.resources:
        if resource.type.startswith("aws:") and not resource.type.startswith(global_types):
            assert resource.region or resource.import_id, resource.name
        if resource.type in ("aws:s3/bucket:Bucket", "aws:kms/key:Key") and not resource.import_id:
            assert resource.tags.get("backup-class") in ("critical", "important", "operational")


def test_supabase_standby_targets_the_subscription_the_database_declares():
    from components.postgres_backup import SUBSCRIPTION

    evaluation = evaluate_stack("prod", overrides={"dbBackend": "supabase"})
    (subscription,) = evaluation.of_type("postgresql:index/subscription:Subscription")
    assert subscription.inputs["name"] == SUBSCRIPTION


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_every_taggable_aws_resource_carries_its_backup_class(request, stack):
    """AWS Backup selects on backup-class and posture groups by it: nothing taggable is left out."""
    import importlib
    import inspect

    untagged = []
    for resource in request.getfixturevalue(stack).resources:
        if not resource.type.startswith("aws:") or not resource.custom:
            continue
        module, cls = resource.type.split(":")[1].split("/")[0], resource.type.split(":")[2]
        init = getattr(importlib.import_module(f"pulumi_aws.{module}"), cls)._internal_init
        if "tags" in inspect.signature(init).parameters and "backup-class" not in resource.tags:
            untagged.append(resource.name)
    assert untagged == []
