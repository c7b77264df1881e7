"""The CrossGuard pack: real pulumi_policy classes around the rules in policy/rules.py.

The policies are driven with the SDK's own argument classes (ResourceValidationArgs,
StackValidationArgs, PolicyResource) and its unknown-checking proxy, exactly as its analyzer
servicer builds them; the last test starts the real pack the way the Pulumi policy host does
(``python -m pulumi.policy <engine> policy/``) and talks to it over the analyzer gRPC protocol.
The Pulumi CLI itself is not installed here, so `pulumi preview --policy-pack policy` is not run.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
    unknown_checking_proxy,
)

from policy import pack, rules
from tests.policy.test_rules import CASES

ROOT = Path(__file__).resolve().parents[2]
RULES = {rule.name: rule for rule in rules.RESOURCE_RULES}


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def _resource_args(type_: str, name: str, props: dict) -> ResourceValidationArgs:
    urn = f"urn:pulumi:prod::platform-dr::{type_}::{name}"
    return ResourceValidationArgs(
        type_, unknown_checking_proxy(copy.deepcopy(props)), urn, name, _opts(), None
    )


def _stack_args(resources) -> StackValidationArgs:
    return StackValidationArgs(
        [
            PolicyResource(
                r.type,
                unknown_checking_proxy(copy.deepcopy(r.inputs)),
                r.urn,
                r.name,
                _opts(),
                None,
                None,
                [],
                {},
            )
            for r in resources
        ]
    )


def _run(policy, args) -> list[str]:
    reported: list[str] = []
    policy.validate(args, lambda message, urn=None: reported.append(message))
    return reported


POLICIES = {p.name: p for p in pack.build_policies()}


def test_one_mandatory_policy_per_rule_plus_the_objectives():
    names = [p.name for p in pack.build_policies()]
    semantic = [rule.name for rule in rules.SEMANTIC_RULES]
    assert names == [rule.name for rule in rules.RESOURCE_RULES] + [pack.STACK_POLICY_NAME] + (
        semantic
    )
    for name, policy in POLICIES.items():
        assert policy.enforcement_level == EnforcementLevel.MANDATORY, name
        stack_level = name == pack.STACK_POLICY_NAME or name in semantic
        expected = StackValidationPolicy if stack_level else ResourceValidationPolicy
        assert isinstance(policy, expected)
    for rule in rules.RESOURCE_RULES:
        assert POLICIES[rule.name].description == rule.description


def test_duplicate_rule_names_are_refused(monkeypatch):
    rule = rules.RESOURCE_RULES[0]
    monkeypatch.setattr(rules, "RESOURCE_RULES", [rule, rule])
    with pytest.raises(ValueError, match=f"rule name '{rule.name}' is used twice"):
        pack.build_policies()


@pytest.mark.parametrize("name", sorted(RULES))
def test_policy_reports_exactly_what_the_rule_finds(name):
    rule = RULES[name]
    compliant, bad, _ = CASES[name]
    assert _run(POLICIES[name], _resource_args(rule.resource_type, "res", compliant)) == []
    reported = _run(POLICIES[name], _resource_args(rule.resource_type, "res", bad))
    assert reported == [f"res: {problem}" for problem in rule.check(bad)]
    assert reported


@pytest.mark.parametrize("name", sorted(RULES))
def test_policy_ignores_other_resource_types(name):
    _, bad, _ = CASES[name]
    assert _run(POLICIES[name], _resource_args("aws:ec2/vpc:Vpc", "res", bad)) == []


def _leaf_paths(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaf_paths(v, (*path, i))
    else:
        yield path, value


def _with_unknown(props, path, leaf):
    changed = copy.deepcopy(props)
    target = changed
    for key in path[:-1]:
        target = target[key]
    sentinel = (
        UNKNOWN_BOOLEAN_VALUE
        if isinstance(leaf, bool)
        else UNKNOWN_NUMBER_VALUE
        if isinstance(leaf, int | float)
        else UNKNOWN_STRING_VALUE
    )
    target[path[-1]] = sentinel
    return changed


@pytest.mark.parametrize("name", sorted(RULES))
def test_unknown_values_never_make_a_compliant_resource_fail(name):
    """Preview: any one value of a compliant resource unknown -> no violation and no crash.

    Either the rule does not read that value and passes, or reading it raises the SDK's
    UnknownValueError, which the analyzer turns into an advisory "can't run during preview".
    """
    rule = RULES[name]
    compliant, _, _ = CASES[name]
    outcomes = set()
    for path, leaf in _leaf_paths(compliant):
        args = _resource_args(rule.resource_type, "res", _with_unknown(compliant, path, leaf))
        try:
            assert _run(POLICIES[name], args) == [], path
            outcomes.add("passed")
        except UnknownValueError as err:
            assert err.props[-1] == str(path[-1])
            outcomes.add("unknown")
    assert outcomes


def test_a_rule_still_judges_what_is_known_during_preview():
    # A new bucket's name is unknown in a preview; its versioning status is not.
    props = {"bucket": UNKNOWN_STRING_VALUE, "versioningConfiguration": {"status": "Suspended"}}
    reported = _run(
        POLICIES["s3-versioning-enabled"],
        _resource_args("aws:s3/bucketVersioning:BucketVersioning", "b-versioning", props),
    )
    assert reported == ["b-versioning: versioning status is 'Suspended', must be 'Enabled'"]


def test_known_copies_sdk_proxies_into_plain_containers():
    proxied = unknown_checking_proxy(
        {"rules": [{"id": "a", "destination": {"bucket": UNKNOWN_STRING_VALUE}}], "n": 1.0}
    )
    plain = pack.known(proxied)
    assert isinstance(plain, dict) and isinstance(plain["rules"], list)
    assert plain["rules"][0]["id"] == "a" and plain["n"] == 1.0
    assert plain.get("missing", "d") == "d"
    with pytest.raises(UnknownValueError) as err:
        plain["rules"][0]["destination"]["bucket"]
    assert (
        err.value.message
        == "string value at .rules.0.destination.bucket can't be known during preview"
    )


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_stack_policy_passes_on_the_real_stacks(stack, request):
    evaluation = request.getfixturevalue(stack)
    assert _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(evaluation.resources)) == []


def _mutated(evaluation, name, change):
    resources = copy.deepcopy(evaluation.resources)
    for resource in resources:
        if resource.name == name:
            change(resource.inputs)
            return resources
    raise KeyError(name)


def test_stack_policy_fails_when_a_copy_stops_versioning(prod):
    def suspend(inputs):
        inputs["versioningConfiguration"]["status"] = "Suspended"

    resources = _mutated(prod, "creator-audio-us-west-2-versioning", suspend)
    reported = _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(resources))
    assert reported == [
        "class critical: creator-audio: copies without versioning in us-west-2",
    ]


def test_stack_policy_fails_when_rtc_and_its_alarms_go_with_a_15m_rpo(prod):
    """Without Replication Time Control or a latency alarm nothing bounds the 15-minute RPO."""

    def drop_rtc(inputs):
        for rule in inputs["rules"]:
            rule["destination"].pop("replicationTime")
            rule["destination"].pop("metrics")

    resources = _mutated(prod, "creator-audio-replication", drop_rtc)
    resources = [r for r in resources if not r.name.startswith("creator-audio-latency-")]
    reported = _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(resources))
    assert reported == [
        "class critical: creator-audio: nothing bounds data loss on region loss",
    ]


def test_stack_policy_fails_when_only_a_latency_alarm_is_left_however_fast(prod):
    """An alarm detects a lagging copy; it bounds nothing. Without RTC even a 5-minute latency
    alarm leaves the 15-minute RPO unbounded (counting the alarm would call it met)."""

    def drop_rtc(inputs):
        for rule in inputs["rules"]:
            rule["destination"].pop("replicationTime")

    def fast_alarm(inputs):
        inputs["threshold"] = 300.0

    resources = _mutated(prod, "creator-audio-replication", drop_rtc)
    for region in ("us-west-2", "eu-west-1"):
        resources = _mutated(
            type(prod)(prod.stack, resources, {}), f"creator-audio-latency-{region}", fast_alarm
        )
    reported = _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(resources))
    assert reported == ["class critical: creator-audio: nothing bounds data loss on region loss"]


def test_stack_policy_names_a_record_without_objectives(prod):
    """What the engine would hand over if the record registered no outputs (see pack docstring)."""
    resources = _mutated(prod, "objectives", lambda inputs: inputs.clear())
    reported = _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(resources))
    assert len(reported) == 1 and "carries no 'objectives' output" in reported[0]


def test_stack_policy_without_objectives_record(prod):
    resources = [r for r in prod.resources if r.type != rules.OBJECTIVES_TYPE]
    reported = _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(resources))
    assert reported == ["stack: no ObjectivesRecord in the stack"]


# ---------------------------------------------------------------------------------------------
# The real pack, started the way the Pulumi policy host starts a Python pack.


def _struct(props: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(props)), struct_pb2.Struct())


@pytest.fixture(scope="module")
def analyzer():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # The host runs `python -m pulumi.policy <engine address> <pack dir>`; the engine address is
    # only used for logging, which these requests do not reach.
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(ROOT / "policy")],
        cwd=ROOT / "policy",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            proc.kill()
            pytest.fail(f"policy pack did not start: {line!r} {proc.stderr.read()}")
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_real_pack_lists_every_policy_as_mandatory(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "platform-dr"
    listed = {p.name: p.enforcementLevel for p in info.policies}
    assert listed == {name: analyzer_pb2.MANDATORY for name in POLICIES}


def test_real_pack_analyzes_a_resource(analyzer):
    rule = RULES["s3-versioning-enabled"]
    compliant, bad, _ = CASES[rule.name]
    for props, expect_violation in ((compliant, False), (bad, True)):
        response = analyzer.Analyze(
            analyzer_pb2.AnalyzeRequest(
                type=rule.resource_type,
                properties=_struct(props),
                urn=f"urn:pulumi:prod::platform-dr::{rule.resource_type}::b-versioning",
                name="b-versioning",
            ),
            timeout=30,
        )
        found = [(d.policyName, d.enforcementLevel) for d in response.diagnostics]
        assert found == ([(rule.name, analyzer_pb2.MANDATORY)] if expect_violation else [])


def test_real_pack_defers_an_unknown_policy_document_to_the_update(analyzer):
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type="aws:s3/bucketPolicy:BucketPolicy",
            properties=_struct({"bucket": UNKNOWN_STRING_VALUE, "policy": UNKNOWN_STRING_VALUE}),
            urn="urn:pulumi:prod::platform-dr::aws:s3/bucketPolicy:BucketPolicy::b-policy",
            name="b-policy",
        ),
        timeout=30,
    )
    # Every rule of bucket policies reads the document: each defers, none judges the sentinel.
    assert {d.policyName for d in response.diagnostics} == {
        rule.name
        for rule in rules.RESOURCE_RULES
        if rule.resource_type == "aws:s3/bucketPolicy:BucketPolicy"
    }
    for diagnostic in response.diagnostics:
        assert diagnostic.enforcementLevel == analyzer_pb2.ADVISORY
        assert "can't be known during preview" in diagnostic.message


def test_real_pack_analyzes_the_prod_stack(analyzer, prod):
    """Stack analysis over prod's declared inputs: met; then with versioning suspended: not met."""

    def request(resources):
        return analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name
                )
                for r in resources
            ]
        )

    assert list(analyzer.AnalyzeStack(request(prod.resources), timeout=60).diagnostics) == []

    def suspend(inputs):
        inputs["versioningConfiguration"]["status"] = "Suspended"

    broken = _mutated(prod, "creator-audio-us-west-2-versioning", suspend)
    [diagnostic] = analyzer.AnalyzeStack(request(broken), timeout=60).diagnostics
    assert diagnostic.policyName == pack.STACK_POLICY_NAME
    assert diagnostic.enforcementLevel == analyzer_pb2.MANDATORY
    assert "copies without versioning in us-west-2" in diagnostic.message


# ---------------------------------------------------------------------------------------------
# Docs cannot drift from the registry.


def test_docs_rule_table_matches_the_registry():
    section = (ROOT / "docs" / "policy.md").read_text()
    assert "pulumi preview --policy-pack policy" in section
    assert pack.markdown_table() in section, (
        "the docs/policy.md rule table is out of date; paste the output of `python -m policy.pack`"
    )
    for name in POLICIES:
        assert f"`{name}`" in section


# ---------------------------------------------------------------------------------------------
# What the engine really hands a stack policy.


def test_components_are_seen_as_the_engine_shows_them_to_stack_policies(prod):
    """Stack policies get each resource's *outputs* (the engine's AnalyzeStack sends
    ``v.Outputs``); for a component those are only what it passed to ``register_outputs``.
    The harness hands posture and these tests the same shape, so a component that stops
    registering what the rules read makes the stack policy fail here, not only in a preview."""
    record = prod.named("objectives")
    assert record.custom is False and record.inputs["objectives"]["stack"] == "prod"
    audio = prod.named("creator-audio")
    assert audio.inputs["dataset"] == "creator-audio" and audio.inputs["dataClass"] == "critical"
    assert "bucket_names" in audio.inputs  # registered outputs, not constructor props
    assert _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(prod.resources)) == []


def test_an_unknown_rendered_file_during_preview_is_advisory_not_a_violation(prod):
    """A new stack's preview: the database's files name buckets not created yet. Reading one
    raises the SDK's UnknownValueError (advisory); it is never parsed as a file."""

    def unknown_conf(inputs):
        inputs["artefacts"]["postgresql/conf.d/pgbackrest-archiving.conf"] = UNKNOWN_STRING_VALUE

    resources = _mutated(prod, "database", unknown_conf)
    with pytest.raises(UnknownValueError) as err:
        _run(POLICIES[pack.STACK_POLICY_NAME], _stack_args(resources))
    assert err.value.props[-1] == "postgresql/conf.d/pgbackrest-archiving.conf"
