"""Helpers for the CLI-wide tests: the registered command tree, an isolated project, one run.

The command list comes from the Typer app itself, so a command added later is in every
convention test and in the bad-input matrix without anyone remembering to add it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from scripts.cli import app
from scripts.cli_conventions import walk
from scripts.local.evaluate import ROOT

PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "Pulumi.prod.yaml", "Pulumi.dr.yaml")


def root_command():
    return typer.main.get_command(app)


def leaf_commands() -> dict[str, object]:
    """``"config diff"`` -> its click command, for every command that runs something."""
    leaves: dict[str, object] = {}

    def visit(command, path: tuple[str, ...]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                visit(sub, (*path, name))
        else:
            leaves[" ".join(path)] = command

    visit(root_command(), ())
    return leaves


def options_of(command) -> dict[str, object]:
    return {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def all_commands() -> list[object]:
    return list(walk(root_command()))


def make_project(where: Path) -> Path:
    """A copy of the shipped project (program, Pulumi.yaml, stack files) to break at will."""
    where.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, where / name)
    return where


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` with its hash: equal before and after = nothing changed."""
    state: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file():
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[str(path)] = "dir"
    return state


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def run(args: list[str]) -> Run:
    result = CliRunner().invoke(app, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # an exception escaped the CLI: keep its traceback in the output the test inspects
        import traceback

        tb = "".join(traceback.format_exception(result.exception))
        return Run(result.exit_code, result.stdout, result.stderr + "\nTraceback\n" + tb)
    return Run(result.exit_code, result.stdout, result.stderr)
