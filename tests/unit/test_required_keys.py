"""Required means required: keys that name real infrastructure have no placeholder default.

A stack whose backend needs one of them and does not set it, or (not being an example stack) sets
it to a reserved example name, is refused: by the model with a ConfigError naming the key, by the
real program with exit 2 before any resource is declared, and by `drctl posture` alike.
"""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from components.objectives import (
    CONFIG_KEYS,
    ConfigError,
    is_placeholder_name,
    parse_stack_config,
)
from scripts.cli import app
from scripts.local.evaluate import ROOT, RecordingMocks, evaluate_stack, read_stack_config
from tests.unit.test_objectives import _config as objectives_config

REAL = {
    "platform-dr:primaryRegion": "us-east-1",
    "platform-dr:drRegion": "us-west-2",
    "platform-dr:thirdRegion": "eu-west-1",
    "platform-dr:dbHost": "pg-primary.db.musicco.net",
    "platform-dr:dnsZoneName": "musicco.net",
    "platform-dr:drDbHost": "pg-subscriber.db.musicco.net",
    "platform-dr:supabaseProjectRef": "abcdefghijklmnopqrst",
    "platform-dr:primaryVpcId": "vpc-0123456789abcdef0",
    "platform-dr:primaryVpcCidr": "10.40.0.0/16",
    "platform-dr:primaryRouteTableIds": "rtb-0123456789abcdef0",
    "platform-dr:primaryDbSecurityGroupId": "sg-0123456789abcdef0",
}
NEEDED = {
    "self-managed": [
        "dbHost",
        "dnsZoneName",
        "primaryVpcId",
        "primaryVpcCidr",
        "primaryRouteTableIds",
        "primaryDbSecurityGroupId",
    ],
    "supabase": ["dbHost", "dnsZoneName", "drDbHost", "supabaseProjectRef"],
    "rds": ["dnsZoneName"],
}


def _config(backend, **changes):
    """REAL for ``backend``, with keys changed (None: removed) the way test_objectives does."""
    base = {k.removeprefix("platform-dr:"): v for k, v in REAL.items()}
    return objectives_config({**base, "dbBackend": backend, **changes})


def test_the_needed_keys_per_backend_are_declared_once_with_no_placeholder_default():
    for backend, keys in NEEDED.items():
        declared = [k.name for k in CONFIG_KEYS if backend in k.needed_by]
        assert sorted(declared) == sorted(keys), backend
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key in CONFIG_KEYS:
        if key.needed_by:
            assert key.default == "" and project[key.name]["default"] == "", key.name


@pytest.mark.parametrize(("backend", "key"), [(b, k) for b, keys in NEEDED.items() for k in keys])
def test_a_missing_needed_key_is_a_config_error_naming_it(backend, key):
    parse_stack_config(_config(backend), "live")  # complete: accepted
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_config(backend, **{key: None}), "live")
    assert raised.value.key == key
    message = str(raised.value)
    assert message.startswith(f"platform-dr:{key} = (missing) is not valid: required for ")
    assert f"dbBackend={backend}" in message and "pulumi config set" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dbHost", "localhost"),
        ("dbHost", "127.0.0.1"),
        ("dbHost", "db-primary.music-platform.example"),
        ("dnsZoneName", "music-platform.example"),
        ("dnsZoneName", "example.com"),
    ],
)
def test_placeholders_are_refused_unless_the_stack_is_an_example(key, value):
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_config("self-managed", **{key: value}), "live")
    assert raised.value.key == key and "marked platform-dr:example" in str(raised.value)
    example = parse_stack_config(_config("self-managed", example=True, **{key: value}), "ex")
    assert example.example is True


def test_placeholder_names():
    assert is_placeholder_name("db.internal.test") and is_placeholder_name("LOCALHOST.")
    assert not is_placeholder_name("pg-primary.db.musicco.net")
    assert not is_placeholder_name("10.40.1.5")  # a private address is a real host


def test_a_rebuild_stack_peers_with_its_source_and_needs_no_primary_vpc_keys():
    config = {k: v for k, v in _config("self-managed").items() if "primary" not in k.lower()}
    config |= {
        "platform-dr:primaryRegion": "us-west-2",
        "platform-dr:drRegion": "eu-west-1",
        "platform-dr:thirdRegion": "us-east-2",
        "platform-dr:rebuildFrom": "organization/platform-dr/prod",
    }
    assert parse_stack_config(config, "dr").is_rebuild
    with pytest.raises(ConfigError, match="dbHost"):
        parse_stack_config({k: v for k, v in config.items() if not k.endswith(":dbHost")}, "dr")


def test_the_shipped_stacks_are_examples_and_evaluate():
    for stack in ("prod", "dr"):
        assert parse_stack_config(read_stack_config(stack), stack).example is True


def test_prod_without_the_example_marker_exits_2_before_any_resource(capsys, monkeypatch):
    declared = []
    original = RecordingMocks.new_resource

    def spy(self, args):
        declared.append(args.name)
        return original(self, args)

    monkeypatch.setattr(RecordingMocks, "new_resource", spy)
    with pytest.raises(SystemExit) as raised:
        evaluate_stack("prod", overrides={"example": None})
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "error: platform-dr:dbHost = 'db-primary.music-platform.example' is not valid" in err
    assert declared == []


def test_a_real_stack_evaluates_with_real_names():
    evaluation = evaluate_stack("live", config=_config("self-managed"))
    assert evaluation.outputs["drStandby"]["recordName"] == "db.musicco.net"


def test_posture_refuses_a_stack_missing_a_needed_key(tmp_path):
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    config = _config("supabase", drDbHost=None)
    (tmp_path / "Pulumi.live.yaml").write_text(yaml.safe_dump({"config": config}))
    result = CliRunner().invoke(app, ["posture", "--stack", "live", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "platform-dr:drDbHost = (missing) is not valid: required for dbBackend=supabase" in (
        " ".join(result.output.split())
    )
