"""Progress of long work (a restore, WAL replay, a backup) on stderr, the way a log or a terminal
wants it.

- On a terminal: Rich progress bars, redrawn in place.
- Anywhere else (a pipe, a file, CI, `| tee restore.log`): one plain line per meter at most every
  ``DRCTL_PROGRESS_INTERVAL`` seconds (default 15), plus the first and the last, so a log shows
  that the work moves and how far it got when it stopped.

``DRCTL_PROGRESS`` forces a mode: ``bars`` (e.g. under `script` or a CI log viewer that renders
ANSI), ``lines`` or ``off``. Results never go here: stdout stays machine-readable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from scripts.common import DrctlError, ExitCode, progress

Mode = Literal["bars", "lines", "off"]
MODES: tuple[str, ...] = ("bars", "lines", "off")
DEFAULT_INTERVAL_S = 15.0
Unit = Literal["bytes", "%"]


class Meter(Protocol):
    """One piece of long work: what a runner reports into."""

    def update(self, completed: float, total: float | None = None, note: str = "") -> None: ...


class NullMeter:
    """A meter that shows nothing (library callers and tests that do not watch progress)."""

    def update(self, completed: float, total: float | None = None, note: str = "") -> None:
        return None


def progress_mode(console: Console | None = None) -> Mode:
    """``DRCTL_PROGRESS`` if set, else bars on a terminal and lines anywhere else."""
    forced = os.environ.get("DRCTL_PROGRESS", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise DrctlError(
                f"DRCTL_PROGRESS={forced!r} is not valid: one of {', '.join(MODES)}",
                ExitCode.INVALID_CONFIG,
            )
        return forced  # type: ignore[return-value]
    return "bars" if (console or progress).is_terminal else "lines"


def line_interval_s() -> float:
    raw = os.environ.get("DRCTL_PROGRESS_INTERVAL", "")
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise DrctlError(
            f"DRCTL_PROGRESS_INTERVAL={raw!r} is not valid: seconds between progress lines, >= 0",
            ExitCode.INVALID_CONFIG,
        )
    return value


def format_amount(value: float, unit: Unit) -> str:
    if unit == "%":
        return f"{value:.1f}%"
    size = float(value)
    for name in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or name == "TiB":
            return f"{size:.0f} {name}" if name == "B" else f"{size:.1f} {name}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


class _LineMeter:
    """Plain lines: ``restore: 45.0% (56.7 MiB of 126.1 MiB) base/5/16384``."""

    def __init__(self, report: ProgressReport, label: str, total: float | None, unit: Unit):
        self.report, self.label, self.total, self.unit = report, label, total, unit
        self.completed = 0.0
        self.note = ""
        self.last_line_at: float | None = None
        self.last_line = ""

    def update(self, completed: float, total: float | None = None, note: str = "") -> None:
        self.completed = completed
        if total is not None:
            self.total = total
        if note:
            self.note = note
        now = self.report.clock()
        if self.last_line_at is None or now - self.last_line_at >= self.report.interval_s:
            self._emit(now)

    def finish(self) -> None:
        if self.render() != self.last_line:
            self._emit(self.report.clock())

    def render(self) -> str:
        done = format_amount(self.completed, self.unit)
        if self.total:
            share = 100.0 * min(self.completed / self.total, 1.0)
            if self.unit == "%":
                amount = f"{share:.1f}%"
            else:
                amount = f"{share:.1f}% ({done} of {format_amount(self.total, self.unit)})"
        else:
            amount = done
        return f"{self.label}: {amount}" + (f" {self.note}" if self.note else "")

    def _emit(self, now: float) -> None:
        self.last_line_at = now
        self.last_line = self.render()
        self.report.console.print(self.last_line, markup=False, highlight=False)


class _BarMeter:
    def __init__(self, bars: Progress, task: TaskID, unit: Unit):
        self.bars, self.task, self.unit = bars, task, unit

    def update(self, completed: float, total: float | None = None, note: str = "") -> None:
        fields = {"note": note} if note else {}
        self.bars.update(self.task, completed=completed, total=total, **fields)

    def finish(self) -> None:
        self.bars.refresh()


class ProgressReport:
    """A context that hands out meters, one per piece of long work, and closes them all.

    ``mode`` None: ``progress_mode()``. ``console`` defaults to drctl's stderr console; a forced
    ``bars`` mode on a non-terminal stderr draws on a console that writes ANSI anyway.
    """

    def __init__(
        self,
        mode: Mode | None = None,
        console: Console | None = None,
        *,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.console = console or progress
        self.mode = mode or progress_mode(self.console)
        self.interval_s = line_interval_s() if interval_s is None else interval_s
        self.clock = clock
        self._meters: list[_LineMeter | _BarMeter] = []
        self._bars: Progress | None = None

    def __enter__(self) -> ProgressReport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def meter(self, label: str, total: float | None = None, unit: Unit = "bytes") -> Meter:
        if self.mode == "off":
            return NullMeter()
        if self.mode == "lines":
            line = _LineMeter(self, label, total, unit)
            self._meters.append(line)
            return line
        bars = self._ensure_bars()
        task = bars.add_task(label, total=total, note="")
        bar = _BarMeter(bars, task, unit)
        self._meters.append(bar)
        return bar

    def close(self) -> None:
        for meter in self._meters:
            meter.finish()
        self._meters.clear()
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def _ensure_bars(self) -> Progress:
        if self._bars is None:
            console = self.console
            if not console.is_terminal:
                console = Console(file=console.file, force_terminal=True, highlight=False)
            self._bars = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}", markup=False),
                console=console,
                transient=False,
            )
            self._bars.start()
        return self._bars
