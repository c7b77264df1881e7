"""What every drctl command shares: exit codes, output streams, and the safety gate."""

from __future__ import annotations

import datetime as dt
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
    INTERNAL_ERROR = 70  # a bug in drctl (EX_SOFTWARE): one line; DRCTL_DEBUG=1 shows the traceback
    INTERRUPTED = 130


class DrctlError(Exception):
    """An error drctl reports as one clear message and a distinct exit code, never a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.STEP_FAILED):
        super().__init__(message)
        self.code = code


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


class Failure(SystemExit):
    """What ``fail`` raises: a SystemExit (callers and tests see the exit code) that keeps the
    message, so the CLI can also report it as ``{"error": ...}`` JSON under ``--json``."""

    def __init__(self, message: str, code: ExitCode):
        super().__init__(int(code))
        self.message = message
        self.exit_code = ExitCode(code)


def print_error(message: str) -> None:
    """One ``error:`` line on stderr (markup off: a message may hold brackets or paths)."""
    progress.print("[bold red]error:[/] ", end="", markup=True, highlight=False)
    progress.print(" ".join(message.splitlines()), markup=False, highlight=False)


def fail(message: str, code: ExitCode) -> None:
    print_error(message)
    raise Failure(message, code)


def parse_instant(value: str, option: str, *, allow_future: bool = False) -> dt.datetime:
    """An ISO 8601 time with an explicit UTC offset (or Z), as aware UTC; anything else, and a
    time in the future unless allowed, is INVALID_CONFIG naming the option. A time without an
    offset is refused rather than guessed: the operator's zone and the server's differ at 3 a.m."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise DrctlError(
            f"{option} {value!r} is not valid: an ISO 8601 time with a UTC offset "
            "(e.g. 2026-11-26T18:30:00Z)",
            ExitCode.INVALID_CONFIG,
        )
    parsed = parsed.astimezone(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    if not allow_future and parsed > now:
        raise DrctlError(
            f"{option} {value!r} is in the future (now {now.isoformat(timespec='seconds')})",
            ExitCode.INVALID_CONFIG,
        )
    return parsed


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
