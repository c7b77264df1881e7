"""What every drctl command shares: exit codes, output streams, and the safety gate."""

from __future__ import annotations

import enum
import json
import sys
from typing import Any

from rich.console import Console

# Progress and diagnostics: stderr, so stdout stays machine-readable.
# soft_wrap: a message stays on one line when stderr is a file or a pipe, so logs see it whole.
progress = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class ExitCode(enum.IntEnum):
    """Documented in docs/exit-codes.md. Scripts at 3 a.m. branch on these."""

    OK = 0
    OBJECTIVE_NOT_MET = 1  # posture/verify/drill: a class misses its RPO or RTO
    INVALID_CONFIG = 2  # bad stack config or arguments; nothing was done
    REFUSED = 3  # a safety check refused (data loss beyond the RPO, unexpected deletes, no --yes)
    PRECONDITION_FAILED = 4  # something the command needs is missing (tool, backup, replica)
    STEP_FAILED = 5  # an action failed part-way; the journal says where to resume
    INTERRUPTED = 130


class DrctlError(Exception):
    """An error drctl reports as one clear message and a distinct exit code, never a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.STEP_FAILED):
        super().__init__(message)
        self.code = code


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def fail(message: str, code: ExitCode) -> None:
    progress.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise SystemExit(int(code))


def confirm_execute(execute: bool, yes: bool, what: str) -> bool:
    """The gate in front of every destructive action. Returns True only when it may act.

    Without --execute it is a dry run. With --execute and no TTY, --yes is required; with a TTY
    and no --yes, the operator is asked.
    """
    if not execute:
        progress.print(f"dry run: {what}; add --execute to act")
        return False
    if yes:
        return True
    if not sys.stdin.isatty():
        fail(f"refusing to {what} without --yes: no terminal to confirm on", ExitCode.REFUSED)
    answer = progress.input(f"{what}? type 'yes' to continue: ")
    if answer.strip() != "yes":
        fail("not confirmed", ExitCode.REFUSED)
    return True
