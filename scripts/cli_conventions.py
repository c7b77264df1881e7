"""CLI conventions every drctl command keeps, applied in one place to the whole command tree.

Each command module declares its options as it likes; ``apply`` then makes the tree uniform, so a
new command gets the conventions without remembering them (tests/scripts/test_cli_conventions.py
walks every registered command and fails when one does not keep them):

- ``-y`` for ``--yes`` and ``-s`` for ``--stack`` (``-h`` for ``--help`` comes from the root
  context's ``help_option_names``, which every sub-context inherits);
- boolean flags are shown as flags: Typer's rich help prints a ``<bool>`` type column for them,
  as if they took a value, so their type label is blanked;
- the inputs every command shares (``--stack``, ``--outputs``, ``--out``, ...) are checked
  before the command starts (scripts/cli_inputs.py);
- help reads whole: a docstring's hard line breaks are joined into its paragraphs (Typer's rich
  mode would otherwise keep them mid-sentence), and ``[...]`` in help text is escaped, because
  Rich would take ``[login@]`` for a markup tag and silently drop it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

from rich.markup import escape

from scripts import cli_inputs

SHORT_ALIASES = {"--yes": "-y", "--stack": "-s"}
_LIST_ITEM = re.compile(r"^\s*(?:[-*]|\d+[.)])\s")


def walk(command: Any) -> Iterator[Any]:
    """The command and every subcommand under it."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from walk(sub)


def readable(text: str) -> str:
    """Paragraphs as whole lines: single line breaks joined, list items kept on their own lines."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    joined = []
    for paragraph in paragraphs:
        if paragraph.startswith("\b"):
            joined.append(paragraph)
            continue
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not _LIST_ITEM.match(line):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.strip())
        joined.append("\n".join(lines))
    return "\n\n".join(joined)


def _flag_help_option(command: Any) -> None:
    # --help/-h is made per context (get_help_option), not kept in params: blank its type there.
    make = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


def apply(root: Any) -> None:
    """Make the tree under ``root`` (a click command, Typer's vendored click or not) keep them."""
    for command in walk(root):
        _flag_help_option(command)
        cli_inputs.check_first(command)
        if command.help and command is not root:
            command.help = escape(readable(command.help))
        if command.short_help:
            command.short_help = escape(readable(command.short_help))
        used = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for param in command.params:
            if param.param_type_name != "option":
                continue
            for long, short in SHORT_ALIASES.items():
                if long in param.opts and short not in used:
                    param.opts.append(short)
                    used.add(short)
            if param.is_flag:
                param.metavar = ""  # Typer's rich help shows metavar instead of "<bool>"
            if param.help:
                param.help = escape(readable(param.help))
