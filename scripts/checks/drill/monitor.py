"""Detection and DNS as the application sees them: a health monitor, Route 53's failover answer,
and a caching resolver that honours the record's TTL.

moto stores health checks and failover records but runs no health checkers and answers no DNS
queries, so the drill runs them itself, at the declared cadence divided by the time scale:

- ``HealthMonitor`` polls the primary's TCP port every ``poll_interval_s`` (one checker; Route 53
  runs many and judges by the share that fail), turns unhealthy after ``failure_threshold``
  failures in a row (healthy again after as many successes), publishes that status once per
  ``publication_s`` and evaluates the alarm on the published status once per
  ``alarm_period_s``; the alarm firing after the failure is the moment somebody (or something)
  starts `drctl failover`.
- ``FailoverAuthority`` answers a failover record the way Route 53 does: PRIMARY while its health
  check is healthy (or it has none), otherwise SECONDARY; the records are read from moto's
  Route 53, so the runbook's UPSERT of the PRIMARY record changes the answer.
- ``CachingResolver`` is the application's resolver: it keeps an answer for the record's TTL
  (scaled), so a switch reaches the application only when the cached answer expires.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from scripts.checks.drill.timescale import Detection


class HealthMonitor(threading.Thread):
    """Polls ``host:port`` over TCP at the (scaled) declared cadence; times are wall clock."""

    def __init__(self, detection: Detection, host: str, port: int):
        super().__init__(name="drill-health-monitor", daemon=True)
        self.detection = detection
        self.address = (host, port)
        self.healthy = True
        self.polls = 0
        self.went_unhealthy: list[float] = []  # wall times the check turned unhealthy
        self.alarms: list[float] = []  # wall times the alarm went from OK to ALARM
        self._halt = threading.Event()
        self._changed = threading.Condition()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def unhealthy_since(self, after: float) -> float | None:
        return next((t for t in self.went_unhealthy if t >= after), None)

    def alarm_since(self, after: float) -> float | None:
        return next((t for t in self.alarms if t >= after), None)

    def wait_for_alarm(self, after: float, timeout: float) -> float | None:
        """Wall time the alarm fired at or after ``after``; None if not within ``timeout`` s."""
        with self._changed:
            self._changed.wait_for(lambda: self.alarm_since(after) is not None, timeout)
        return self.alarm_since(after)

    def _reachable(self) -> bool:
        try:
            with socket.create_connection(
                self.address, timeout=max(0.05, self.detection.poll_interval_s)
            ):
                return True
        except OSError:
            return False

    def run(self) -> None:
        self.begin(time.time())
        next_poll = time.time()
        while not self._halt.is_set():
            ok = self._reachable()
            self.observe(ok, time.time())
            next_poll += self.detection.poll_interval_s
            self._halt.wait(max(0.0, next_poll - time.time()))

    def begin(self, now: float) -> None:
        """Start the clock: first publication and alarm period from ``now``."""
        d = self.detection
        self._next_publication = now + d.publication_s
        self._next_period = now + d.alarm_period_s
        self._failures = self._successes = self._breaching = 0
        self._published_healthy, self._unhealthy_in_period, self._alarm = True, False, False

    def observe(self, ok: bool, now: float) -> None:
        """One poll's result, observed at ``now``.

        Every publication and alarm period that ended before ``now`` is settled first, on what
        had been observed by then: a poll that comes late (a busy machine) tells CloudWatch
        nothing about a period that is already over, so it can never back-date an alarm to a
        boundary before the failure was seen. Then the observation counts for the current
        period.
        """
        d = self.detection
        self._settle(now)
        self.polls += 1
        self._failures, self._successes = (
            (0, self._successes + 1) if ok else (self._failures + 1, 0)
        )
        # Route 53: unhealthy after `threshold` failures in a row, healthy again after as many
        # successes in a row.
        if self.healthy and self._failures >= d.failure_threshold:
            self.healthy = False
            self.went_unhealthy.append(now)
            if d.alarm_periods == 0:
                self._record(self.alarms, now)
        elif not self.healthy and self._successes >= d.failure_threshold:
            self.healthy = True
        if not d.publication_s:
            self._published_healthy = self.healthy
        self._unhealthy_in_period |= not self._published_healthy

    def _settle(self, now: float) -> None:
        """Publications (CloudWatch sees the status as of the last one) and alarm periods (one
        datapoint each: the Minimum of HealthCheckStatus, 0 if unhealthy at all) that ended at
        or before ``now``, in the order they ended."""
        d = self.detection
        while True:
            publish = bool(d.publication_s) and self._next_publication <= now
            period = bool(d.alarm_periods) and self._next_period <= now
            # A datapoint published at a period's end belongs to the next period.
            if publish and (not period or self._next_publication < self._next_period):
                self._published_healthy = self.healthy
                self._unhealthy_in_period |= not self._published_healthy
                self._next_publication += d.publication_s
            elif period:
                self._breaching = self._breaching + 1 if self._unhealthy_in_period else 0
                if self._breaching >= d.alarm_periods and not self._alarm:
                    self._record(self.alarms, self._next_period)
                self._alarm = self._breaching >= d.alarm_periods
                self._unhealthy_in_period = not self._published_healthy
                self._next_period += d.alarm_period_s
            else:
                return

    def _record(self, where: list[float], at: float) -> None:
        with self._changed:
            where.append(at)
            self._changed.notify_all()

    def to_record(self, failure_at: float) -> dict[str, Any]:
        return {
            "by": self.detection.by,
            "alarm": self.detection.alarm,
            "poll_interval_s": self.detection.poll_interval_s,
            "failure_threshold": self.detection.failure_threshold,
            "alarm_period_s": self.detection.alarm_period_s,
            "alarm_periods": self.detection.alarm_periods,
            "publication_s": self.detection.publication_s,
            "polls": self.polls,
            "unhealthy_at_s": _rel(self.unhealthy_since(failure_at), failure_at),
            "at_s": _rel(self.alarm_since(failure_at), failure_at),
            "false_alarms_before_the_failure": sum(1 for t in self.alarms if t < failure_at),
        }


def _rel(at: float | None, origin: float) -> float | None:
    return None if at is None else round(at - origin, 3)


def _normalise(name: str) -> str:
    return name.rstrip(".").lower()


class FailoverAuthority:
    """Route 53's answer for a failover record, from the record sets stored in moto."""

    def __init__(self, route53: Any, zone_id: str, health: Callable[[str], bool]):
        self.route53 = route53
        self.zone_id = zone_id
        self.health = health

    def answer(self, name: str) -> tuple[str, float]:
        sets = self.route53.list_resource_record_sets(HostedZoneId=self.zone_id)
        found = {
            rs["Failover"]: rs
            for rs in sets["ResourceRecordSets"]
            if _normalise(rs["Name"]) == _normalise(name) and rs.get("Failover")
        }
        if "PRIMARY" not in found:
            raise LookupError(f"no PRIMARY failover record {name} in zone {self.zone_id}")
        primary = found["PRIMARY"]
        check = primary.get("HealthCheckId")
        chosen = primary if not check or self.health(check) else found.get("SECONDARY", primary)
        return chosen["ResourceRecords"][0]["Value"], float(chosen.get("TTL", 0))


class CachingResolver:
    """Caches each answer for its TTL divided by the time scale; records when answers changed."""

    def __init__(
        self,
        authority: FailoverAuthority,
        time_scale: float,
        clock: Callable[[], float] = time.time,
    ):
        self.authority = authority
        self.time_scale = time_scale
        self.clock = clock
        self.changes: list[tuple[float, str]] = []  # (wall time, answer) when it changed
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str) -> str:
        with self._lock:
            hit = self._cache.get(name)
            if hit and hit[1] > self.clock():
                return hit[0]
            value, ttl = self.authority.answer(name)
            # The application has the answer when it arrives, not when it asked: the authority
            # may have seen a health change (timed by the monitor) while the query was out.
            received = self.clock()
            self._cache[name] = (value, received + ttl / self.time_scale)
            if not self.changes or self.changes[-1][1] != value:
                self.changes.append((received, value))
            return value

    def first_answer(self, value: str, after: float) -> float | None:
        """When the application first got ``value`` at or after ``after`` (wall time)."""
        return next((t for t, v in self.changes if v == value and t >= after), None)
