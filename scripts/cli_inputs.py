"""Inputs many commands share, checked before a command starts: one rule and one message each.

A command declares ``--stack``, ``--outputs`` or ``--out`` as it likes; ``check_first`` wraps its
callback so that, before any work (an evaluation, a drill, an AWS call), an unknown stack, a stack
file with a YAML error or a ``secure:`` setting, an unreadable outputs file or an output path that
cannot be written is refused as INVALID_CONFIG (exit 2) in one line that names the option and the
value. Commands still read these inputs themselves; this only makes them fail first and alike.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from scripts import locations
from scripts.common import DrctlError, ExitCode

JSON_OBJECT_FILES = ("--outputs", "--source-outputs", "--evidence")
OUTPUT_DIRECTORIES = ("--out", "--cache")
OUTPUT_FILES = ("--journal",)
# Commands that may run where the project is not (a database host): given this option, a stack
# file that is absent is fine (one that is present is still checked).
STACK_FILE_OPTIONAL_WITH = {"render": "--outputs"}


def json_object_file(path: Path, option: str) -> dict[str, Any]:
    """A JSON object from a file named by ``option``, or one INVALID_CONFIG line naming both."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DrctlError(f"{option} {str(path)!r}: no such file", ExitCode.INVALID_CONFIG) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DrctlError(
            f"{option} {str(path)!r}: cannot read it ({err})", ExitCode.INVALID_CONFIG
        ) from None
    except json.JSONDecodeError as err:
        raise DrctlError(
            f"{option} {str(path)!r} is not valid JSON ({err.msg}, line {err.lineno})",
            ExitCode.INVALID_CONFIG,
        ) from None
    if not isinstance(document, dict):
        raise DrctlError(f"{option} {str(path)!r}: expected a JSON object", ExitCode.INVALID_CONFIG)
    return document


def _param_names(command: Any) -> dict[str, str]:
    """option string -> the callback's keyword for it."""
    return {
        opt: param.name
        for param in command.params
        for opt in getattr(param, "opts", ())
        if opt.startswith("--")
    }


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _stack_file_present(stack: str, root: Any) -> bool:
    try:
        locations.stack_file(stack, root)
    except DrctlError:
        return False
    return True


def check(command: Any, kwargs: dict[str, Any]) -> None:
    """The checks, in the order an operator would want to hear about them."""
    names = _param_names(command)
    root = kwargs.get("project_dir") or None
    if "--stack" in names:
        optional_with = STACK_FILE_OPTIONAL_WITH.get(command.name)
        optional = optional_with is not None and kwargs.get(names[optional_with]) is not None
        for stack in _values(kwargs.get(names["--stack"])):
            if optional and not _stack_file_present(stack, root):
                continue
            locations.read_stack_config(stack, root)
    for option in JSON_OBJECT_FILES:
        for path in _values(kwargs.get(names.get(option, ""))):
            json_object_file(path, option)
    for option in OUTPUT_DIRECTORIES:
        for path in _values(kwargs.get(names.get(option, ""))):
            locations.writable_output(Path(path), option, directory=True)
    for option in OUTPUT_FILES:
        for path in _values(kwargs.get(names.get(option, ""))):
            locations.writable_output(Path(path), option, directory=False)


def check_first(command: Any) -> None:
    """Wrap ``command``'s callback so ``check`` runs before it."""
    callback = getattr(command, "callback", None)
    if callback is None or getattr(command, "commands", None) is not None:
        return

    @functools.wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(command, kwargs)
        return callback(*args, **kwargs)

    command.callback = checked
