"""The objectives model: defaults from the spec, and every bad config refused with a clear message.

Each bad config is checked three ways: the model raises ConfigError naming the key; the real
program (evaluated under Pulumi mocks) exits 2 with the same one-paragraph message and declares
nothing; and `drctl posture` prints that message and exits 2.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from components.objectives import (
    CONFIG_KEYS,
    DAY,
    HOUR,
    MINUTE,
    ConfigError,
    Objectives,
    parse_objectives,
)
from scripts.cli import app
from scripts.local.evaluate import ROOT, RecordingMocks, evaluate_stack, read_stack_config

BASE = {
    "platform-dr:primaryRegion": "us-east-1",
    "platform-dr:drRegion": "us-west-2",
    "platform-dr:thirdRegion": "eu-west-1",
}

# (overrides, key named in the error, words the message must contain)
BAD_CONFIGS = {
    "dr region equals primary": ({"drRegion": "us-east-1"}, "drRegion", "other than primaryRegion"),
    "region repeated": (
        {"thirdRegion": "us-west-2"},
        "thirdRegion",
        "not already used by drRegion",
    ),
    "unknown region": ({"primaryRegion": "us-east-9"}, "primaryRegion", "AWS region name"),
    "unknown data class": ({"vitalRpo": "15m"}, "vitalRpo", "unknown data class 'vital'"),
    "rpo zero": ({"criticalRpo": "0m"}, "criticalRpo", "positive duration"),
    "rpo negative": ({"importantRpo": "-5m"}, "importantRpo", "positive duration"),
    "rto not a number": ({"criticalRto": "soon"}, "criticalRto", "positive duration"),
    "rpo without unit": ({"criticalRpo": "15"}, "criticalRpo", "with a unit"),
    "critical rpo over 24h": ({"criticalRpo": "25h"}, "criticalRpo", "at most 24h"),
    "pitr under a day": ({"pitrWindowDays": 0}, "pitrWindowDays", "between 1 and 35"),
    "pitr over 35 days": ({"pitrWindowDays": 36}, "pitrWindowDays", "between 1 and 35"),
    "retention under pitr": (
        {"operationalRetention": "3d"},
        "operationalRetention",
        "at least the PITR window of 7d",
    ),
    "missing required key": ({"primaryRegion": None}, "primaryRegion", "(missing)"),
    "wrong type integer": ({"pitrWindowDays": "seven"}, "pitrWindowDays", "an integer"),
    "wrong type boolean": ({"protectData": "maybe"}, "protectData", "true or false"),
    "unknown backend": ({"dbBackend": "mysql"}, "dbBackend", "rds, self-managed, supabase"),
}


def _config(overrides: dict) -> dict:
    config = dict(BASE)
    for key, value in overrides.items():
        if value is None:
            config.pop(f"platform-dr:{key}", None)
        else:
            config[f"platform-dr:{key}"] = value
    return config


def test_defaults_are_the_specs_numbers():
    objectives = parse_objectives(BASE, "t")
    critical, important, operational = (objectives.of(c) for c in objectives.classes)
    assert (critical.rpo_s, critical.rto_s) == (15 * MINUTE, HOUR)
    assert (important.rpo_s, important.rto_s) == (HOUR, 4 * HOUR)
    assert (operational.rpo_s, operational.rto_s) == (24 * HOUR, 24 * HOUR)
    assert objectives.pitr_window_days == 7
    schedule = objectives.schedule
    assert (schedule.log_backup_s, schedule.differential_s) == (HOUR, DAY)
    assert (schedule.full_s, schedule.archive_s) == (7 * DAY, 30 * DAY)
    assert objectives.regions.all == ("us-east-1", "us-west-2", "eu-west-1")


def test_values_arrive_as_text_from_the_engine():
    objectives = parse_objectives(
        {**BASE, "platform-dr:pitrWindowDays": "14", "platform-dr:protectData": "false"}, "t"
    )
    assert objectives.pitr_window_days == 14 and objectives.protect_data is False


def test_record_round_trips():
    objectives = parse_objectives(BASE, "t")
    assert Objectives.from_record(objectives.to_record()) == objectives


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_model_rejects(case):
    overrides, key, words = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as raised:
        parse_objectives(_config(overrides), "t")
    message = str(raised.value)
    assert raised.value.key == key
    assert message.startswith(f"platform-dr:{key} = ")
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_program_exits_with_the_message_and_declares_nothing(case, capsys, monkeypatch):
    overrides, key, words = BAD_CONFIGS[case]
    declared = []
    original = RecordingMocks.new_resource

    def spy(self, args):
        declared.append(args.name)
        return original(self, args)

    monkeypatch.setattr(RecordingMocks, "new_resource", spy)
    with pytest.raises(SystemExit) as raised:
        evaluate_stack("prod", config=_config(overrides))
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert f"error: platform-dr:{key} = " in err and words in err
    assert "Traceback" not in err
    assert declared == []


@pytest.fixture
def project_copy(tmp_path):
    for name in ("Pulumi.yaml", "__main__.py", "Pulumi.prod.yaml", "Pulumi.dr.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("case", ["dr region equals primary", "unknown data class", "rpo zero"])
def test_posture_prints_the_same_message(case, project_copy):
    overrides, key, words = BAD_CONFIGS[case]
    (project_copy / "Pulumi.bad.yaml").write_text(yaml.safe_dump({"config": _config(overrides)}))
    result = CliRunner().invoke(
        app, ["posture", "--stack", "bad", "--project-dir", str(project_copy)]
    )
    assert result.exit_code == 2
    with pytest.raises(ConfigError) as raised:
        parse_objectives(_config(overrides), "bad")
    assert str(raised.value) in result.output.replace("\n", " ") or str(raised.value) in (
        " ".join(result.output.split())
    )


def test_pulumi_yaml_declares_every_key_with_description_and_default():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    declared = project["config"]
    assert set(declared) == {k.name for k in CONFIG_KEYS}
    for key in CONFIG_KEYS:
        entry = declared[key.name]
        assert entry["type"] == key.type and entry["description"]
        if not key.required:
            assert entry["default"] == key.default, key.name
    assert project["name"] == "platform-dr"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_stack_files_are_valid(stack):
    objectives = parse_objectives(read_stack_config(stack), stack)
    assert objectives.stack == stack


def test_keys_of_other_namespaces_are_left_alone():
    objectives = parse_objectives(
        {**BASE, "platform-dr-secrets:payments": "x", "aws:region": "y"}, "t"
    )
    assert objectives.regions.primary == "us-east-1"
