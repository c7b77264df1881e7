"""What a restored copy's server log says about its recovery: did it stop at the target, and if
not, which WAL segment was missing. Judged from the log only, so it works for copies never
started by drctl and for clusters that refused to start (scripts/dataops/pgbackrest.py runs the
copy; this module reads what it wrote)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WAL_SEGMENTS_PER_XLOGID = 0x100  # 16 MiB segments: 4 GiB per "log" id


def segment_number(name: str) -> int:
    """'00000001000000000000002A' -> absolute segment number (timeline ignored)."""
    return int(name[8:16], 16) * WAL_SEGMENTS_PER_XLOGID + int(name[16:24], 16)


def segment_name(timeline: int, number: int) -> str:
    log, seg = divmod(number, WAL_SEGMENTS_PER_XLOGID)
    return f"{timeline:08X}{log:08X}{seg:08X}"


@dataclass
class RecoveryResult:
    """What Postgres reported while replaying a restored copy to its target."""

    data_dir: str
    target_time: str | None
    reached_target: bool
    stop_line: str
    last_restored_segment: str | None
    recovery_s: float
    log_tail: list[str] = field(default_factory=list)
    expected_wal: str | None = None  # latest: the newest archived segment it had to reach
    short_of_archive: bool = False  # latest: stopped before expected_wal (a gap)

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "target_time": self.target_time or "latest",
            "reached_target": self.reached_target,
            "stop": self.stop_line,
            "last_restored_segment": self.last_restored_segment,
            "recovery_s": round(self.recovery_s, 3),
            "expected_wal": self.expected_wal,
        }


def format_target(when: datetime) -> str:
    """A recovery_target_time Postgres parses unambiguously (UTC, microseconds, +00)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


_STOP = re.compile(
    r"recovery stopping (before|after) .*?, time (?P<time>[0-9-]+ [0-9:.]+[+-][0-9:]+)"
)


_RESTORED = re.compile(r'restored log file "(?P<seg>[0-9A-F]{24})" from archive')


_ENDED_EARLY = "recovery ended before configured recovery target was reached"


def analyse_recovery_log(
    text: str, data_dir: Path, target_time: datetime | None, elapsed_s: float
) -> RecoveryResult:
    """Did recovery stop at the target? Judged from the server log only, so it works for copies
    that were never started by us before and for clusters that refused to start."""
    lines = text.splitlines()
    stop = next((ln for ln in lines if _STOP.search(ln)), "")
    restored = [m.group("seg") for ln in lines if (m := _RESTORED.search(ln))]
    ended_early = any(_ENDED_EARLY in ln for ln in lines)
    ready = any("database system is ready to accept connections" in ln for ln in lines)
    if target_time is None:
        # Restore to the end of the archive: running out of WAL *is* the target.
        reached = ready and not ended_early
    else:
        reached = bool(stop) and not ended_early
        if reached:
            stopped_at = datetime.fromisoformat(_STOP.search(stop).group("time"))
            # Postgres stops *before* the first commit later than T (or *after* one at T): a stop
            # earlier than T means it stopped somewhere we did not ask for.
            reached = stopped_at >= target_time.astimezone(UTC) or "after" in stop
    return RecoveryResult(
        data_dir=str(data_dir),
        target_time=format_target(target_time) if target_time else None,
        reached_target=reached,
        stop_line=_strip_prefix(stop) if stop else "",
        last_restored_segment=restored[-1] if restored else None,
        recovery_s=elapsed_s,
        log_tail=[_strip_prefix(ln) for ln in lines[-12:]],
    )


def recovery_failure_message(result: RecoveryResult, pg_ctl_rc: int) -> str:
    target = result.target_time or "the end of the archive"
    if result.short_of_archive:
        last = result.last_restored_segment or "none"
        return (
            f"recovery of {result.data_dir} to latest stopped after segment {last}, but "
            f"pgbackrest info lists {result.expected_wal} as the newest archived WAL: the segment "
            "after the last replayed one is missing or unreadable in every repository (a gap in "
            "the archive), so the copy ends early. The copy is incomplete and must not be used; "
            "remove it before retrying"
        )
    if result.last_restored_segment:
        last = result.last_restored_segment
        nxt = segment_name(int(last[:8], 16), segment_number(last) + 1)
        where = (
            f"the last WAL segment replayed from the archive was {last}; the next one ({nxt}) "
            "is missing or corrupt in every repository"
        )
    else:
        where = "no WAL segment could be fetched from the archive after the backup"
    errors = [ln for ln in result.log_tail if "ERROR" in ln or "FATAL" in ln]
    detail = f" (server log: {' | '.join(errors[-3:])})" if errors else ""
    return (
        f"recovery of {result.data_dir} did not reach target {target}: {where}. "
        f"The copy is incomplete and must not be used; remove it before retrying{detail}"
    )


def _strip_prefix(line: str) -> str:
    # "2026-11-26 18:50:01.123 UTC [123] LOG:  text" -> "LOG:  text"
    match = re.search(r"\b(LOG|FATAL|ERROR|WARNING|PANIC|DETAIL|HINT):", line)
    return line[match.start() :] if match else line
