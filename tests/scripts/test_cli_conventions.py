"""The conventions every drctl command keeps, checked over the registered command tree.

The commands are read from the Typer app (tests/scripts/cli_matrix.py), so a command added
later is held to the same rules: --version, -h/--help, -y for --yes, -s for --stack, flags shown
as flags, help that reads whole at 80 and 200 columns, one JSON shape, tables that keep
identifiers whole, and stack files from the project directory with state in the state directory.
"""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest
from rich.console import Console
from rich.markup import render as render_markup
from typer.testing import CliRunner

from scripts import locations
from scripts.cli import app
from scripts.cli_conventions import readable
from scripts.runbooks.engine import journal_path
from scripts.tables import print_table
from tests.scripts.cli_matrix import all_commands, leaf_commands, make_project, run
from tests.scripts.test_config_sync import world  # noqa: F401 (the moto config world)

runner = CliRunner()
BOX = re.compile(r"[\s│╭╮╰╯─]+")


def squeeze(text: str) -> str:
    """Text without whitespace or box lines: what must survive any wrapping."""
    return BOX.sub("", text)


def command_paths() -> list[list[str]]:
    paths = [[]]
    for name in leaf_commands():
        parts = name.split()
        for i in range(1, len(parts) + 1):
            if parts[:i] not in paths:
                paths.append(parts[:i])
    return paths


def help_of(path: list[str], columns: int, flag: str = "--help") -> str:
    result = runner.invoke(app, [*path, flag], env={"COLUMNS": str(columns), "TERMINAL_WIDTH": ""})
    assert result.exit_code == 0, (path, result.output)
    return result.stdout


def test_version():
    for flag in ("--version", "-V"):
        result = run([flag])
        assert (
            result.code == 0 and result.stdout.strip() == f"drctl {metadata.version('platform-dr')}"
        )


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "drctl")
def test_h_and_help_everywhere(path):
    assert help_of(path, 100, "-h") == help_of(path, 100, "--help")
    assert "Usage:" in help_of(path, 100, "-h")


def test_short_forms_on_every_command():
    """-y for --yes, -s for --stack; a command that can --execute can take --yes."""
    for command in all_commands():
        options = {o: p for p in command.params for o in p.opts}
        if "--yes" in options:
            assert "-y" in options["--yes"].opts, command.name
        if "--stack" in options:
            assert "-s" in options["--stack"].opts, command.name
        if "--execute" in options:
            assert "--yes" in options, command.name


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "drctl")
def test_help_reads_whole(path, columns):
    """Flags show no type; every option's help and default is there in full (wrapped, never cut);
    a short description is one line when the terminal is wide enough."""
    text = help_of(path, columns)
    assert "<bool>" not in text and "…" not in text
    command = app_command(path)
    flat = squeeze(text)
    for param in command.params:
        if param.help and not param.hidden:
            assert squeeze(render_markup(param.help).plain) in flat, (path, param.opts)
        default = param.default
        if default in (None, "", [], ()) or isinstance(default, bool) or not param.show_default:
            continue
        shown = ", ".join(map(str, default)) if isinstance(default, list | tuple) else default
        assert squeeze(f"[default: {shown}]") in flat, (path, param.opts, default)
    if columns == 200:
        for name, sub in getattr(command, "commands", {}).items():
            summary = readable(sub.help or "").split("\n\n")[0]
            summary = render_markup(summary).plain
            if len(summary) < 140:
                assert any(summary in line for line in text.splitlines()), (name, summary)


def app_command(path: list[str]):
    from tests.scripts.cli_matrix import root_command

    command = root_command()
    for part in path:
        command = command.commands[part]
    return command


def test_posture_json_is_one_shape_for_one_stack_and_several():
    one = runner.invoke(app, ["posture", "-s", "prod", "--json", "--allow-unknown"])
    both = runner.invoke(app, ["posture", "-s", "prod", "-s", "dr", "--json", "--allow-unknown"])
    assert one.exit_code == both.exit_code == 0, one.output + both.output
    one_doc, both_doc = json.loads(one.stdout), json.loads(both.stdout)
    assert set(one_doc) == set(both_doc) == {"stacks"}
    assert [d["stack"] for d in one_doc["stacks"]] == ["prod"]
    assert [d["stack"] for d in both_doc["stacks"]] == ["prod", "dr"]
    assert set(one_doc["stacks"][0]) == set(both_doc["stacks"][1])


LONG = "/platform-dr/prod/app/integrations/payments-provider-webhook-signing-secret-rotation"


def test_tables_keep_identifiers_whole_on_plain_lines_when_not_a_terminal(tmp_path):
    with (tmp_path / "out.txt").open("w") as stream:
        console = Console(file=stream, width=80, force_terminal=False)
        print_table(
            "parameters", ("parameter", "status", "hash"), [(LONG, "differs", "x" * 40)], console
        )
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert any(LONG in line and "differs" in line for line in lines), lines


def test_tables_fold_identifiers_on_a_narrow_terminal(tmp_path):
    with (tmp_path / "out.txt").open("w") as stream:
        console = Console(file=stream, width=60, force_terminal=True, color_system=None)
        print_table(
            "parameters", ("parameter", "status", "hash"), [(LONG, "differs", "x" * 40)], console
        )
    text = (tmp_path / "out.txt").read_text()
    first_column = [line.split("│")[1].strip() for line in text.splitlines() if "│" in line]
    assert "…" not in text and LONG in "".join(first_column), text


# -- one state location --------------------------------------------------------------------------


def _project_with_dr_region(where, region):
    project = make_project(where)
    stack = project / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace("drRegion: us-west-2", f"drRegion: {region}"))
    return project


def test_stack_files_come_from_project_dir_not_the_install_location(tmp_path, monkeypatch):
    """recover's dry run prints the DR region from the stack file it read."""
    project = _project_with_dr_region(tmp_path / "checkout", "ca-central-1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("DRCTL_PROJECT_DIR", raising=False)

    flag = run(["--project-dir", str(project), "recover", "--stack", "prod"])
    assert flag.code == 0 and "into ca-central-1" in flag.stdout, flag.output

    monkeypatch.setenv("DRCTL_PROJECT_DIR", str(project))
    env = run(["recover", "--stack", "prod"])
    assert env.code == 0 and "into ca-central-1" in env.stdout, env.output
    monkeypatch.delenv("DRCTL_PROJECT_DIR")

    monkeypatch.chdir(project)
    cwd = run(["recover", "--stack", "prod"])
    assert cwd.code == 0 and "into ca-central-1" in cwd.stdout, cwd.output


def test_an_installed_copy_does_not_read_its_own_stack_files(tmp_path, monkeypatch):
    """From a directory that is no project, drctl refuses instead of falling back to the stack
    files shipped beside its code (which exist: this checkout is the install location)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRCTL_PROJECT_DIR", raising=False)
    result = run(["recover", "--stack", "prod"])
    assert result.code == 2 and "not a Pulumi project" in result.stderr, result.output
    assert "Traceback" not in result.output


def test_state_dir_default_override_and_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv("DRCTL_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert locations.state_dir() == tmp_path / "xdg" / "drctl"
    assert journal_path("failover", "prod") == tmp_path / "xdg/drctl/journal/prod-failover.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert locations.state_dir() == tmp_path / "home/.local/state/drctl"
    monkeypatch.setenv("DRCTL_STATE_DIR", str(tmp_path / "env"))
    assert locations.journal_dir() == tmp_path / "env" / "journal"
    locations.set_state_dir(tmp_path / "flag")
    try:
        assert journal_path("rebuild", "dr") == tmp_path / "flag/journal/dr-rebuild.json"
    finally:
        locations.set_state_dir(None)


def test_state_dir_flag_reaches_the_commands(tmp_path, monkeypatch):
    seen = {}
    import scripts.runbooks.recover as recover

    original = recover.load_target

    def spy(stack, root=None):
        seen["journal_dir"] = locations.journal_dir()
        return original(stack, root)

    monkeypatch.setattr(recover, "load_target", spy)
    result = run(["--state-dir", str(tmp_path / "s"), "recover", "--stack", "prod"])
    assert result.code == 0, result.output
    assert seen["journal_dir"] == tmp_path / "s" / "journal"
    assert locations.state_dir() != tmp_path / "s"  # reset after the run


def test_config_diff_names_every_parameter_whole_in_a_log(world):  # noqa: F811 (fixture)
    """`config diff | tee log` at 80 columns: each drifted parameter's full name is in the log."""
    result = runner.invoke(app, ["config", "diff", "--stack", "prod"], env={"COLUMNS": "80"})
    assert result.exit_code == 1  # nothing imported into DR yet: everything is missing there
    lines = result.stdout.splitlines()
    assert world.names and all(any(name in line for line in lines) for name in world.names)
    assert "…" not in result.stdout
