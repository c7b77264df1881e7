"""Schedules: systemd OnCalendar and cron expressions, expanded into firing times, and the longest
gap between firings (standard library only; policy/artefacts.py reads the rendered units with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


class ArtefactError(ValueError):
    """A rendered file the host would reject or read differently than the rules could."""


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


_SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
}


_CRON_SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


# Expansion starts on a Monday, 2024-01-01, and covers a leap year.
_EPOCH = date(2024, 1, 1)


_LONG_CYCLE_DAYS = 4 * 366


@dataclass(frozen=True)
class Schedule:
    """A calendar as sets: weekdays 0=Mon..6=Sun, months 1-12, days 1-31, hours, minutes.

    ``day_or_weekday``: cron's rule that a restricted day-of-month *or* a restricted weekday
    matches; systemd requires both. ``zone``: the zone named in the spec, "" for local time.
    """

    text: str
    weekdays: frozenset[int]
    months: frozenset[int]
    days: frozenset[int]
    hours: frozenset[int]
    minutes: frozenset[int]
    day_or_weekday: bool = False
    zone: str = ""

    @property
    def cycle_days(self) -> int:
        if self.months != _ALL_MONTHS or self.days != _ALL_DAYS:
            return _LONG_CYCLE_DAYS
        return 7 if self.weekdays != _ALL_WEEKDAYS else 1

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        weekday_ok = day.weekday() in self.weekdays
        day_ok = day.day in self.days
        if self.day_or_weekday and self.days != _ALL_DAYS and self.weekdays != _ALL_WEEKDAYS:
            return weekday_ok or day_ok
        return weekday_ok and day_ok

    def firings(self, days: int) -> list[int]:
        """Minutes from the start of the expansion at which the schedule fires, in order."""
        times = sorted(h * 60 + m for h in self.hours for m in self.minutes)
        found = []
        for offset in range(days):
            if self.fires_on(_EPOCH + timedelta(days=offset)):
                found += [offset * 1440 + t for t in times]
        return found


_ALL_WEEKDAYS = frozenset(range(7))


_ALL_MONTHS = frozenset(range(1, 13))


_ALL_DAYS = frozenset(range(1, 32))


def _names(token: str, names: tuple[str, ...], base: int) -> str:
    for i, name in enumerate(names):
        token = re.sub(rf"\b{name}[a-z]*\b", str(i + base), token, flags=re.I)
    return token


def _field(token: str, low: int, high: int, what: str, *, range_sep: str, spec: str) -> set[int]:
    values: set[int] = set()
    for item in token.split(","):
        step = 1
        if "/" in item:
            item, step_text = item.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ArtefactError(f"{spec!r}: bad repetition {step_text!r} in the {what}")
            step = int(step_text)
            if item not in ("*", "") and range_sep not in item:
                item = f"{item}{range_sep}{high}"  # systemd '0/2' and cron '5/10': start/step
        if item in ("*", ""):
            start, end = low, high
        elif range_sep in item:
            a, b = item.split(range_sep, 1)
            if not (a.isdigit() and b.isdigit()):
                raise ArtefactError(f"{spec!r}: cannot read {item!r} in the {what}")
            start, end = int(a), int(b)
        elif item.isdigit():
            start = end = int(item)
        else:
            raise ArtefactError(f"{spec!r}: cannot read {item!r} in the {what}")
        if not low <= start <= end <= high:
            raise ArtefactError(f"{spec!r}: {item!r} is outside {low}-{high} in the {what}")
        values.update(range(start, end + 1, step))
    return values


def parse_on_calendar(spec: str) -> Schedule:
    """systemd.time(7) calendar events as this project renders them (weekday lists and
    ranges, ``*``/lists/ranges/``start/step`` in date and time, shorthands, a trailing zone)."""
    text = _SHORTHANDS.get(spec.strip().lower(), spec.strip())
    tokens = text.split()
    zone = ""
    if tokens and not any(c in tokens[-1] for c in ":-*,") and not _is_weekdays(tokens[-1]):
        zone = tokens.pop()
    weekdays = set(_ALL_WEEKDAYS)
    if tokens and _is_weekdays(tokens[0]):
        weekdays = _field(
            _names(tokens.pop(0), _WEEKDAYS, 0), 0, 6, "weekday", range_sep="..", spec=spec
        )
    date_part, time_part = "*-*-*", "00:00:00"
    for token in tokens:
        if ":" in token:
            time_part = token
        elif "-" in token:
            date_part = token
        else:
            raise ArtefactError(f"OnCalendar={spec!r}: cannot read {token!r}")
    date_fields = date_part.split("-")
    if len(date_fields) == 2:
        date_fields.insert(0, "*")
    time_fields = time_part.split(":")
    if len(date_fields) != 3 or len(time_fields) not in (2, 3) or "~" in date_part:
        raise ArtefactError(f"OnCalendar={spec!r}: not a date and time systemd would read")
    _, month, day = date_fields
    return Schedule(
        text=spec,
        weekdays=frozenset(weekdays),
        months=frozenset(_field(month, 1, 12, "month", range_sep="..", spec=spec)),
        days=frozenset(_field(day, 1, 31, "day", range_sep="..", spec=spec)),
        hours=frozenset(_field(time_fields[0], 0, 23, "hour", range_sep="..", spec=spec)),
        minutes=frozenset(_field(time_fields[1], 0, 59, "minute", range_sep="..", spec=spec)),
        zone=zone,
    )


def _is_weekdays(token: str) -> bool:
    parts = re.split(r"\.\.|,", token.lower())
    return all(p[:3] in _WEEKDAYS and p.isalpha() for p in parts)


def parse_cron(expression: str) -> Schedule:
    """The five time fields of a cron line (vixie cron: names, lists, ranges, steps, 7=Sun)."""
    text = _CRON_SHORTHANDS.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ArtefactError(f"cron {expression!r}: five time fields expected")
    minute, hour, dom, month, dow = fields
    cron_dow = _field(
        _names(dow, _WEEKDAYS[6:] + _WEEKDAYS[:6], 0),
        0,
        7,
        "weekday",
        range_sep="-",
        spec=expression,
    )
    weekdays = {(d - 1) % 7 for d in cron_dow}  # cron 0/7 = Sunday -> 6, 1 = Monday -> 0
    return Schedule(
        text=expression,
        weekdays=frozenset(weekdays),
        months=frozenset(
            _field(_names(month, _MONTHS, 1), 1, 12, "month", range_sep="-", spec=expression)
        ),
        days=frozenset(_field(dom, 1, 31, "day", range_sep="-", spec=expression)),
        hours=frozenset(_field(hour, 0, 23, "hour", range_sep="-", spec=expression)),
        minutes=frozenset(_field(minute, 0, 59, "minute", range_sep="-", spec=expression)),
        day_or_weekday=True,
    )


def max_gap_s(schedules: Iterable[Schedule]) -> int | None:
    """The longest wait between consecutive firings of all ``schedules`` together, in seconds;
    None when they never fire. Expanded over two full cycles so the wrap-around gap counts."""
    schedules = list(schedules)
    if not schedules:
        return None
    days = 2 * max(s.cycle_days for s in schedules)
    days = days if days < _LONG_CYCLE_DAYS else _LONG_CYCLE_DAYS + 62
    firings = sorted({t for s in schedules for t in s.firings(days)})
    if len(firings) < 2:
        return None
    return max(b - a for a, b in zip(firings, firings[1:], strict=False)) * 60
