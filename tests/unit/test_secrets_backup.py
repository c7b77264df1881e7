"""SecretsBackup under Pulumi mocks: the real __main__.py evaluated for prod and dr.

Secret inputs: under mocks the engine hands a secret input to ``new_resource`` wrapped in the
RPC secret envelope ``{rpc._special_sig_key: rpc._special_secret_sig, "value": ...}``
(``rpc.is_rpc_secret``). A value given in plain would arrive as a bare string, so walking every
input and requiring each occurrence of a secret value to sit inside an envelope proves that no
resource receives it unencrypted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi.runtime import rpc

from components.objectives import ConfigError, class_tags
from components.secrets_backup import SECURE_PLACEHOLDER, parse_settings
from scripts.local.evaluate import Evaluation, evaluate_stack

SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
PARAM = "aws:ssm/parameter:Parameter"
LAMBDA = "arn:aws:lambda:us-east-1:111122223333:function:rotate-api-keys"

# Values distinctive enough that a substring search cannot hit anything else.
SECRET_VALUES = {
    "platform-dr-secrets:payments": "sk_live_PAYMENTS_4f9c1e",
    "platform-dr-secrets:cdn": '{"token": "CDN_TOKEN_77ab10"}',
    "platform-dr-secrets:DATABASE_URL": "postgres://app:DBPASS_91e2@db.internal/app",
}


@pytest.fixture(scope="module")
def prod_with_secrets() -> Evaluation:
    return evaluate_stack("prod", overrides={**SECRET_VALUES, "secretRotationLambdaArn": LAMBDA})


def _ours(ev: Evaluation, type_token: str) -> list:
    return [r for r in ev.of_type(type_token) if r.name.startswith("app-config-")]


def _key_arn(ev: Evaluation, region: str) -> str:
    return ev.outputs["secretsKeyArns"][region]


def test_every_secret_replicates_to_dr_under_the_dr_replica_key(prod: Evaluation):
    secrets = _ours(prod, SECRET)
    assert len(secrets) == 5  # 3 API keys + 2 integrations from the Pulumi.yaml defaults
    replica_key = prod.named("app-config-key-us-west-2")
    assert replica_key.type == "aws:kms/replicaKey:ReplicaKey"
    assert replica_key.region == "us-west-2"
    assert _key_arn(prod, "us-west-2").endswith(f"key/{replica_key.id}")
    for s in secrets:
        assert s.region == "us-east-1"
        assert s.inputs["kmsKeyId"] == _key_arn(prod, "us-east-1")
        assert s.inputs["replicas"] == [
            {"region": "us-west-2", "kmsKeyId": _key_arn(prod, "us-west-2")}
        ]
        assert s.inputs["name"].startswith("platform-dr/prod/")
    # Exported ARNs cover both regions, for drctl verify/failover.
    for regions in prod.outputs["secretArns"].values():
        assert set(regions) == {"us-east-1", "us-west-2"}
        assert ":us-west-2:" in regions["us-west-2"]


def test_parameters_are_materialised_in_primary_and_dr(prod: Evaluation):
    params = _ours(prod, PARAM)
    by_region: dict[str, dict[str, Any]] = {}
    for p in params:
        by_region.setdefault(p.region, {})[p.inputs["name"]] = p.inputs
    assert set(by_region) == {"us-east-1", "us-west-2"}
    declared = set(prod.outputs["configParameterNames"])
    assert set(by_region["us-east-1"]) == set(by_region["us-west-2"]) == declared
    assert "/platform-dr/prod/flags/maintenance-mode" in declared
    # pulumi_aws sends every parameter value as a secret, String ones too
    flag = by_region["us-west-2"]["/platform-dr/prod/flags/maintenance-mode"]["value"]
    assert rpc.unwrap_rpc_secret(flag) == "false"
    for name, inputs in by_region["us-east-1"].items():
        twin = by_region["us-west-2"][name]
        assert (inputs["type"], inputs["value"]) == (twin["type"], twin["value"])


def test_sensitive_parameters_are_securestrings_under_the_customer_key(prod: Evaluation):
    params = _ours(prod, PARAM)
    secure = [p for p in params if p.inputs["type"] == "SecureString"]
    assert {p.inputs["name"] for p in secure} == {"/platform-dr/prod/env/DATABASE_URL"}
    for p in secure:
        # the region's own copy of the multi-Region key, never the AWS-managed alias/aws/ssm
        assert p.inputs["keyId"] == _key_arn(prod, p.region)
        # no value configured: a placeholder, still sent as a secret
        assert rpc.is_rpc_secret(p.inputs["value"])
        assert rpc.unwrap_rpc_secret(p.inputs["value"]) == SECURE_PLACEHOLDER
    for p in params:
        if p.inputs["type"] == "String":
            assert "keyId" not in p.inputs


def test_no_secret_version_without_a_configured_value(prod: Evaluation):
    assert _ours(prod, VERSION) == []
    assert _ours(prod, ROTATION) == []
    assert prod.outputs["secretRotationEnabled"] is False


def test_rotation_lambda_turns_rotation_on_for_api_keys(prod_with_secrets: Evaluation):
    rotations = _ours(prod_with_secrets, ROTATION)
    assert {r.name for r in rotations} == {
        f"app-config-secret-api-keys-{k}-rotation" for k in ("payments", "email", "ai-model")
    }
    for r in rotations:
        assert r.inputs["rotationLambdaArn"] == LAMBDA
        assert r.inputs["rotationRules"] == {"automaticallyAfterDays": 30}
        assert r.inputs["secretId"].startswith("app-config-secret-api-keys-")
    assert prod_with_secrets.outputs["secretRotationEnabled"] is True


def test_configured_values_become_secret_versions(prod_with_secrets: Evaluation):
    versions = {v.name: v for v in _ours(prod_with_secrets, VERSION)}
    assert set(versions) == {
        "app-config-secret-api-keys-payments-value",
        "app-config-secret-integrations-cdn-value",
    }
    payments = versions["app-config-secret-api-keys-payments-value"].inputs["secretString"]
    assert rpc.is_rpc_secret(payments)
    assert rpc.unwrap_rpc_secret(payments) == SECRET_VALUES["platform-dr-secrets:payments"]


def _strings(value: Any, plain: list[str], wrapped: list[str], in_secret: bool = False) -> None:
    """Every string reachable from value, split by whether a secret envelope encloses it."""
    if rpc.is_rpc_secret(value):
        _strings(rpc.unwrap_rpc_secret(value), plain, wrapped, True)
    elif isinstance(value, str):
        (wrapped if in_secret else plain).append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            (wrapped if in_secret else plain).append(str(k))
            _strings(v, plain, wrapped, in_secret)
    elif isinstance(value, list | tuple):
        for v in value:
            _strings(v, plain, wrapped, in_secret)


def test_no_secret_value_is_in_plain_in_any_input_or_output(prod_with_secrets: Evaluation):
    ev = prod_with_secrets
    values = list(SECRET_VALUES.values())
    seen_wrapped = set()
    for r in ev.resources:
        plain: list[str] = []
        wrapped: list[str] = []
        _strings(r.inputs, plain, wrapped)
        for v in values:
            assert not any(v in s for s in plain), f"{r.name} receives a secret value in plain"
            if any(v in s for s in wrapped):
                seen_wrapped.add(v)
    # The values did reach resources (wrapped): otherwise the check above proves nothing.
    assert seen_wrapped == set(values)
    for name, output in ev.outputs.items():
        if name in ev.secret_outputs:
            continue
        text = json.dumps(output, default=str)
        assert not any(v in text for v in values), f"stack output {name} carries a secret value"


def test_every_resource_carries_class_tags(prod: Evaluation):
    for r in [*_ours(prod, SECRET), *_ours(prod, PARAM)]:
        role = r.tags["config-role"]
        cls = "critical" if role == "api-keys" else "operational"
        assert r.tags == class_tags(cls, "app-config", {"config-role": role}), r.name
    for key in ("app-config-key-us-east-1", "app-config-key-us-west-2"):
        assert prod.named(key).tags == class_tags("critical", "app-config")
    for region, bucket in prod.outputs["configBucketNames"].items():
        res = prod.named(f"app-config-snapshots-{region}")
        assert res.tags["dr-dataset"] == "config-snapshots"
        assert res.inputs["objectLockEnabled"] is True, bucket


def test_rebuild_reads_prods_dr_copies_and_materialises_the_new_dr_region(dr: Evaluation):
    params = _ours(dr, PARAM)
    read = [p for p in params if p.region == "us-west-2"]
    created = [p for p in params if p.region == "eu-west-1"]
    names = set(dr.outputs["configParameterNames"])
    # The app keeps its names after failover: the namespace is the source stack's.
    assert dr.outputs["configParameterPrefix"] == "/platform-dr/prod"
    assert {p.import_id for p in read} == names and not any(p.custom for p in read)
    assert {p.inputs["name"] for p in created} == names and all(p.custom for p in created)
    for p in created:
        if p.inputs["type"] == "SecureString":
            assert p.inputs["keyId"] == _key_arn(dr, "eu-west-1")
    secrets = _ours(dr, SECRET)
    adopted = [s for s in secrets if s.region == "us-west-2"]
    copies = [s for s in secrets if s.region == "eu-west-1"]
    for s in adopted:
        assert not s.custom and s.import_id.startswith("arn:aws:secretsmanager:us-west-2:")
    # The rebuild re-establishes a copy of each secret in ITS DR region, under its DR key,
    # holding the adopted secret's current value (a secret, never plain).
    assert {c.inputs["name"] for c in copies} == set(dr.outputs["secretArns"])
    for c in copies:
        assert c.custom and c.inputs["kmsKeyId"] == _key_arn(dr, "eu-west-1")
        assert "replicas" not in c.inputs
        assert set(dr.outputs["secretArns"][c.inputs["name"]]) == {"us-west-2", "eu-west-1"}
    versions = [v for v in _ours(dr, VERSION) if v.region == "eu-west-1"]
    assert len(versions) == len(copies)
    for v in versions:
        assert rpc.is_rpc_secret(v.inputs["secretString"])
        assert rpc.unwrap_rpc_secret(v.inputs["secretString"]).startswith(
            "offline-example-secret-of:arn:aws:secretsmanager:us-west-2:"
        )
    # Parameter copies carry what the adopted parameter holds now, not this stack's defaults.
    for p in created:
        assert rpc.unwrap_rpc_secret(p.inputs["value"]).startswith("offline-example-value-of:/")


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"featureFlags": "social-feed=maybe"}, "featureFlags", "true or false"),
        ({"envConfig": "LOG_LEVEL"}, "envConfig", "name=value"),
        ({"secureEnv": "LOG_LEVEL"}, "secureEnv", "not also in envConfig"),
        ({"apiKeys": "payments,payments"}, "apiKeys", "without duplicates"),
        ({"apiKeys": "cdn"}, "apiKeys", "not also used"),
        ({"secretRotationLambdaArn": "rotate-me"}, "secretRotationLambdaArn", "Lambda"),
        ({"secretRotationDays": "0"}, "secretRotationDays", "between 1 and 365"),
    ],
)
def test_bad_settings_name_key_value_and_what_is_allowed(raw, key, fragment):
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    assert err.value.key == key
    assert f"platform-dr:{key} = " in str(err.value)
    assert fragment in str(err.value)


def test_bad_settings_stop_the_program_before_any_resource():
    with pytest.raises(SystemExit) as err:
        evaluate_stack("prod", overrides={"featureFlags": "social-feed=maybe"})
    assert err.value.code == 2


def _declare_directly(build) -> list:
    """Run ``build`` under the same mocks as evaluate_stack, outside __main__.py."""
    import contextvars

    import pulumi
    from pulumi.runtime import settings as pulumi_settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from scripts.local.evaluate import PROJECT, RecordingMocks

    mocks = RecordingMocks()

    def run():
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="prod", preview=False)
        pulumi_settings.SETTINGS.rpc_manager.clear()
        _sync_await(run_pulumi_func(build))

    contextvars.Context().run(run)
    return mocks.records


def test_under_rotation_a_configured_value_only_seeds_the_secret():
    """Resource options are not visible to mocks, so a (legacy, in-process) transformation on
    the component records the options each child is declared with."""
    import pulumi

    from components.objectives import parse_objectives
    from components.secrets_backup import SecretsBackup, SecretsBackupArgs, SecretSpec
    from scripts.local.evaluate import read_stack_config

    seen: dict[str, pulumi.ResourceOptions] = {}

    def record(args):
        seen[args.name] = args.opts
        return None

    def build():
        objectives = parse_objectives(read_stack_config("prod"), "prod")
        SecretsBackup(
            "t",
            SecretsBackupArgs(
                objectives=objectives,
                secrets=[
                    SecretSpec("api-keys/a", value=pulumi.Output.secret("seed-a")),
                    SecretSpec("integrations/b", value=pulumi.Output.secret("b"), rotate=False),
                ],
                rotation_lambda_arn=LAMBDA,
            ),
            opts=pulumi.ResourceOptions(transformations=[record]),
        )

    records = _declare_directly(build)
    assert {r.name for r in records if r.type == ROTATION} == {"t-secret-api-keys-a-rotation"}
    rotated = seen["t-secret-api-keys-a-value"]
    assert set(rotated.ignore_changes or []) == {"secretString", "versionStages"}
    assert "secretString" in rotated.additional_secret_outputs
    fixed = seen["t-secret-integrations-b-value"]
    assert not fixed.ignore_changes  # not rotated: Pulumi config stays the source of truth
