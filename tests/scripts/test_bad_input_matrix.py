"""Every drctl command against bad input: one line naming the input, the documented exit code,
no traceback, and nothing changed on disk.

Each run happens in a copy of the project (the current directory, as an operator's checkout),
with a private state directory, and no AWS credentials or Pulumi CLI: a command that would need
them must have refused the input before reaching for them. Exit codes are scripts/common.py
ExitCode (docs/exit-codes.md): bad input is 2, never 1 (1 means an objective is not met).
"""

from __future__ import annotations

import json

import pytest

from scripts.common import ExitCode
from tests.scripts.cli_matrix import leaf_commands, make_project, options_of, run, snapshot

INVALID = ExitCode.INVALID_CONFIG
CIPHERTEXT = "v1:ZW5jcnlwdGVkLWJ5LXB1bHVtaS1ub3QtZm9yLWV5ZXM="

# What each command needs on its command line to get as far as reading its input.
REQUIRED = {
    "backup": ["--type", "full"],
    "restore": ["--target-time", "latest", "--to", "{tmp}/restored"],
    "restore-objects": ["--bucket", "music-audio"],
    "render": ["--out", "{tmp}/rendered"],
    "config import": ["{tmp}/snapshot.json", "--region", "us-east-1"],
    "verdict": ["--posture", "{tmp}/posture.json", "--drill", "{tmp}/drill"],
}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """cwd = a copy of the project; private state; no credentials, no metadata service."""
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "DRCTL_STATE_DIR",
        "DRCTL_PROJECT_DIR",
        "DRCTL_PRIMARY_DSN",
        "DRCTL_STANDBY_DSN",
        "DRCTL_APP_DSN",
        "DRCTL_DATABASE_DSN",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")  # no pulumi CLI
    return tmp_path


def args_for(command: str, tmp, *extra: str) -> list[str]:
    required = [a.format(tmp=tmp) for a in REQUIRED.get(command, [])]
    return [*command.split(), *required, *extra]


def check_refused(result, code, *names: str, tmp=None, before=None, json_output=False):
    """The one assertion of this module: refused with ``code``, one line naming the input."""
    assert "Traceback" not in result.output, result.output
    assert result.code == code, (result.code, result.output)
    lines = result.error_lines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert CIPHERTEXT not in result.output
    if before is not None:
        assert snapshot(tmp) == before, "the command changed files"
    if json_output:
        document = json.loads(result.stdout)
        assert document["error"]["code"] == code and document["error"]["message"], document


STACK_COMMANDS = sorted(c for c, cmd in leaf_commands().items() if "--stack" in options_of(cmd))
OUTPUTS_COMMANDS = sorted(c for c, cmd in leaf_commands().items() if "--outputs" in options_of(cmd))
JSON_COMMANDS = sorted(c for c, cmd in leaf_commands().items() if "--json" in options_of(cmd))


def test_the_matrix_covers_every_command():
    """Every command takes --stack (and so every stack case) except these, which have their
    own cases below; a new command without --stack must be added to them deliberately."""
    assert set(leaf_commands()) - set(STACK_COMMANDS) == {"drill", "config import", "verdict"}
    assert {"failover", "failback", "recover", "verify", "audit replication"} <= set(
        OUTPUTS_COMMANDS
    )


@pytest.mark.parametrize("command", STACK_COMMANDS)
def test_unknown_stack(world, command):
    before = snapshot(world)
    result = run(args_for(command, world, "--stack", "typo"))
    check_refused(result, INVALID, "'typo'", "Pulumi.typo.yaml", tmp=world, before=before)


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_json_on_failure(world, command):
    """One shape for every --json command when it fails: {"error": {code, name, message}}."""
    extra = ["--stack", "typo"] if command in STACK_COMMANDS else []
    if command == "drill":
        extra = ["--local", "--out", "/etc/hostname"]
    if command == "config import":
        extra = []  # the snapshot file does not exist
    result = run(args_for(command, world, *extra, "--json"))
    check_refused(result, INVALID, json_output=True)


@pytest.mark.parametrize("command", STACK_COMMANDS)
def test_yaml_syntax_error_in_the_stack_file(world, command):
    stack_file = world / "project" / "Pulumi.prod.yaml"
    stack_file.write_text(stack_file.read_text() + "  platform-dr:criticalRpo: [15m\n")
    before = snapshot(world)
    result = run(args_for(command, world, "--stack", "prod"))
    check_refused(result, INVALID, "Pulumi.prod.yaml", "line", tmp=world, before=before)


@pytest.mark.parametrize("command", STACK_COMMANDS)
def test_secure_value_for_a_setting(world, command):
    """`pulumi config set --secret dbHost` writes `secure:`; drctl cannot read it offline."""
    stack_file = world / "project" / "Pulumi.prod.yaml"
    text = stack_file.read_text().replace(
        "  platform-dr:dbHost: db-primary.music-platform.example\n",
        f"  platform-dr:dbHost:\n    secure: {CIPHERTEXT}\n",
    )
    stack_file.write_text(text)
    before = snapshot(world)
    result = run(args_for(command, world, "--stack", "prod"))
    check_refused(result, INVALID, "platform-dr:dbHost", "secure", tmp=world, before=before)


def test_secure_values_of_secrets_stay_opaque(world):
    """A secret (what `pulumi config set --secret` is for) is evaluated as an opaque secret:
    posture runs, and neither the ciphertext nor a decrypted value is printed, in any form."""
    stack_file = world / "project" / "Pulumi.prod.yaml"
    stack_file.write_text(
        stack_file.read_text()
        + f"  platform-dr-secrets:STRIPE_SECRET_KEY:\n    secure: {CIPHERTEXT}\n"
        + f"  platform-dr-db:app_password:\n    secure: {CIPHERTEXT}\n"
    )
    result = run(["posture", "--stack", "prod", "--json", "--allow-unknown"])
    assert "Traceback" not in result.output
    assert result.code == 0, result.output
    assert CIPHERTEXT not in result.output and CIPHERTEXT[3:20] not in result.output
    assert json.loads(result.stdout)["stacks"][0]["stack"] == "prod"


@pytest.mark.parametrize("command", OUTPUTS_COMMANDS)
@pytest.mark.parametrize("content", ["garbage {", None], ids=["garbage", "missing"])
def test_bad_outputs_file(world, command, content):
    outputs = world / "garbage.json"
    if content is not None:
        outputs.write_text(content)
    extra = ["--stack", "prod"] if command in STACK_COMMANDS else []
    before = snapshot(world)
    result = run(args_for(command, world, *extra, "--outputs", str(outputs)))
    check_refused(result, INVALID, "garbage.json", tmp=world, before=before)


def _typed_options() -> list[tuple[str, str]]:
    cases = []
    for name, command in leaf_commands().items():
        for param in command.params:
            annotation = getattr(param, "type_descriptor", None)
            annotation = getattr(annotation, "annotation", None)
            if annotation in (int, float, list[int]):
                cases.append((name, param.opts[0]))
    return cases


@pytest.mark.parametrize(("command", "option"), _typed_options())
def test_wrong_type(world, command, option):
    before = snapshot(world)
    result = run(args_for(command, world, option, "not-a-number"))
    check_refused(result, INVALID, option, tmp=world, before=before)


@pytest.mark.parametrize("command", sorted(leaf_commands()))
def test_unknown_option(world, command):
    result = run(args_for(command, world, "--no-such-option"))
    check_refused(result, INVALID, "--no-such-option")


@pytest.mark.parametrize(
    "args",
    [
        ["drill", "--local", "--out", "/etc/hostname"],
        ["drill", "--local", "--out", "/etc/hostname/evidence"],
        ["render", "--example", "--out", "/etc/hostname"],
    ],
    ids=["drill-file", "drill-under-a-file", "render-file"],
)
def test_unwritable_output_is_refused_before_any_work(world, args):
    before = snapshot(world)
    result = run(args)
    check_refused(result, INVALID, "--out", "/etc/hostname", tmp=world, before=before)
    assert "evaluating" not in result.stderr and "scenario" not in result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["restore-objects", "--bucket", "b", "--as-of", "2999-01-01T00:00:00Z"], "--as-of"),
        (["restore-objects", "--bucket", "b", "--as-of", "2026-01-01T00:00:00"], "--as-of"),
        (["restore-objects", "--bucket", "b", "--as-of", "yesterday"], "--as-of"),
        (["restore", "--target-time", "2026-01-01T00:00:00", "--to", "x"], "--target-time"),
        (["restore", "--target-time", "soon", "--to", "x"], "--target-time"),
    ],
    ids=["as-of-future", "as-of-no-offset", "as-of-garbage", "target-no-offset", "target-bad"],
)
def test_times(world, args, option):
    before = snapshot(world)
    result = run(args)
    check_refused(result, INVALID, option, tmp=world, before=before)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["posture", "--evidence", "{tmp}/missing.json"], ["missing.json"]),
        (["config", "import", "{tmp}/missing.json", "--region", "us-east-1"], ["missing.json"]),
        (["backup", "--type", "full", "--config", "{tmp}/missing.conf"], ["missing.conf"]),
        (
            ["verify", "--outputs", "{tmp}/o.json", "--pgbackrest-config", "{tmp}/missing.conf"],
            ["--dsn"],
        ),
        (["backup", "--type", "weekly"], ["--type", "weekly"]),
        (["restore", "--target-time", "latest", "--to", "x", "--from-repo", "3"], ["3"]),
        (["drill", "--local", "--scenario", "alien-invasion"], ["alien-invasion"]),
        (["drill", "--local", "--inject", "no-such-fault"], ["no-such-fault"]),
        (["drill", "--local", "--time-scale", "0"], ["--time-scale"]),
        (["audit", "replication", "--engine", "spark"], ["spark"]),
        (["posture", "--project-dir", "{tmp}/nowhere"], ["nowhere"]),
        (["--project-dir", "{tmp}", "posture"], ["Pulumi.yaml"]),
        (["recover", "--incident-start", "tomorrow"], ["--incident-start", "tomorrow"]),
        (
            ["verdict", "--posture", "{tmp}/missing.json", "--drill", "{tmp}/o.json"],
            ["missing.json"],
        ),
        (
            ["verdict", "--posture", "{tmp}/o.json", "--drill", "{tmp}/o.json"],
            ["--drill", "o.json"],
        ),
    ],
    ids=[
        "posture-evidence",
        "config-import-snapshot",
        "backup-config",
        "verify-half-database",
        "backup-type",
        "restore-repo",
        "drill-scenario",
        "drill-inject",
        "drill-time-scale",
        "audit-engine",
        "posture-project-dir",
        "not-a-project",
        "recover-incident-start",
        "verdict-missing-posture",
        "verdict-not-a-drill-record",
    ],
)
def test_missing_files_and_bad_values(world, args, names):
    (world / "o.json").write_text("{}")
    before = snapshot(world)
    result = run([a.format(tmp=world) for a in args])
    check_refused(result, INVALID, *names, tmp=world, before=before)


def test_verify_without_credentials_is_one_precondition_line(world):
    outputs = world / "outputs.json"
    outputs.write_text("{}")
    result = run(["verify", "--stack", "prod", "--outputs", str(outputs)])
    check_refused(result, ExitCode.PRECONDITION_FAILED, "AWS credentials")
    assert "NoCredentialsError" not in result.output
