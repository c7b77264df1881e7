"""One incident's communication, per the plan in docs/communication.md: what each audience is
told at each step, on the status page and through the topics.

``drctl recover`` calls one method per step; ``failover`` can call the same ones. Each method
updates the board, publishes the page, sends the messages, and returns a JSON-able record of what
went where (for the runbook's journal): never a message body, never a secret.

| event            | users (page)          | team                    | stakeholders | media      |
|------------------|-----------------------|-------------------------|--------------|------------|
| opened           | all services: outage  | incident-opened, page 0 | incident     | holding    |
| tier started     | tier: recovering      | tier-started            |              |            |
| service result   | operational / outage  | restored / unhealthy    |              |            |
| tier result      | update                | tier-result             | tier-result  |            |
| escalation       |                       | page at level n         |              |            |
| resolved         | resolved / monitoring | incident-resolved       | resolved     |            |

``drctl failover`` (scripts/runbooks/failover_comms.py) moves only the database, so only the
services that depend on it go down on the page:

| event           | users (page)                     | team                    | stakeholders |
|-----------------|----------------------------------|-------------------------|--------------|
| failover opened | database services: recovering    | failover-opened, page 0 | incident     |
| step done       | a plain-words update             | failover-step           |              |
| step failed     | recovery delayed (investigating) | failover-failed         |              |
| service back    | operational; monitoring          | failover-step           |              |
| resolved        | resolved                         | failover-resolved       | resolved     |

(and media: the holding statement when the failover opens)

A failed delivery never stops the recovery: it is recorded (``ok: false``) and the runbook goes on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from components.objectives import format_duration
from components.services import Catalogue, Service
from scripts.dataops.notify import Message, Notifier, Templates
from scripts.dataops.status_page import (
    Clock,
    StatusBoard,
    StatusPageWriter,
    iso,
    label,
    utc_now,
)


def fmt_elapsed(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def dsn_secrets(*dsns: str | None) -> list[str]:
    """Each DSN given and its password: what messages must be scrubbed of."""
    from psycopg.conninfo import conninfo_to_dict

    found: list[str] = []
    for dsn in dsns:
        if dsn:
            found += [dsn, str(conninfo_to_dict(dsn).get("password") or "")]
    return [s for s in found if s]


class IncidentPublisher:
    def __init__(
        self,
        *,
        stack: str,
        region: str,
        catalogue: Catalogue,
        page: StatusPageWriter | None,
        notifier: Notifier | None,
        templates: Templates | None = None,
        secrets: Iterable[str] = (),
        title: str = "Platform status",
        clock: Clock = utc_now,
    ):
        self.stack, self.region, self.catalogue = stack, region, catalogue
        self.page, self.notifier = page, notifier
        self.templates = templates or Templates()
        self.secrets = list(secrets)
        self.clock = clock
        self.title = title
        self._board: StatusBoard | None = None
        self.incident_id = ""
        self.started_at = ""

    @property
    def board(self) -> StatusBoard:
        """The page as last published (read on first use, so building a publisher touches no
        cloud), or a new one when there is none or the catalogue changed."""
        if self._board is None:
            loaded = self.page.load() if self.page else None
            known = {s.name for s in self.catalogue.services}
            if loaded is None or {s.name for s in loaded.services} != known:
                loaded = StatusBoard.from_catalogue(self.catalogue, self.title)
            self._board = loaded
        return self._board

    # -- plumbing ----------------------------------------------------------------------------------

    def _values(self, **extra: Any) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "incident": self.incident_id,
            "started_at": label(self.started_at),
            "now": label(iso(self.clock())),
            "status_url": self.page.url if self.page else "(no status page)",
            **extra,
        }

    def _message(self, audience: str, event: str, **extra: Any) -> Message:
        return self.templates.render(audience, event, self._values(**extra), self.secrets)

    def _send(self, records: list, audience: str, event: str, level=None, **extra) -> None:
        if self.notifier is None or not self.templates.has(audience, event):
            return
        if level is not None:
            extra["level"] = level
        result = self.notifier.send(self._message(audience, event, **extra), level=level)
        records.append({**result, "ok": result.get("region") is not None})

    def _users(self, event: str, status: str, **extra: Any) -> None:
        if self.board.incident is not None and self.templates.has("users", event):
            self.board.add_update(status, self._message("users", event, **extra).body, self.clock())

    def _publish(self) -> dict[str, Any] | None:
        if self.page is None:
            return None
        result = self.page.publish(self.board, self.clock())
        return {**result, "ok": result.get("written_to") is not None}

    def _record(self, messages: list) -> dict[str, Any]:
        return {"page": self._publish(), "messages": messages}

    # -- the events --------------------------------------------------------------------------------

    def opened(self, incident_id: str, started_at: dt.datetime, deadline: str) -> dict[str, Any]:
        self.incident_id, self.started_at = incident_id, iso(started_at)
        order = ", ".join(f"{s.title} ({s.tier})" for s in self.catalogue.services)
        first = self.catalogue.tiers[0]
        values = {"deadline": label(deadline), "services": order}
        values["tier_rto"] = format_duration(first.rto_s)
        text = self._message("users", "incident-opened", **values).body
        self.board.open_incident(
            incident_id, "Service disruption: restoring in order", text, started_at
        )
        messages: list = []
        self._send(messages, "team", "incident-opened", **values)
        self._send(messages, "team", "page", level=0, step="page the on-call team", **values)
        self._send(messages, "stakeholders", "incident-opened", **values)
        self._send(messages, "media", "holding-statement", **values)
        return self._record(messages)

    def resume(self, incident_id: str, started_at: str) -> None:
        """A resumed run continues the same incident (the board came from the page)."""
        self.incident_id, self.started_at = incident_id, started_at

    def tier_started(
        self, tier: str, rto_s: int, deadline: str, services: Sequence[Service], reason: str
    ) -> dict[str, Any]:
        for service in services:
            if self.board.service(service.name).status != "operational":
                self.board.set_status(service.name, "recovering", self.clock(), deadline)
        names = ", ".join(s.title for s in services)
        self._users("tier-started", "recovering", tier=tier, services=names)
        messages: list = []
        self._send(
            messages,
            "team",
            "tier-started",
            tier=tier,
            tier_rto=format_duration(rto_s),
            deadline=label(deadline),
            services=", ".join(s.name for s in services),
            reason=reason,
        )
        return self._record(messages)

    def service_result(
        self, service: Service, healthy: bool, elapsed_s: float, detail: str
    ) -> dict[str, Any]:
        self.board.set_status(service.name, "operational" if healthy else "outage", self.clock())
        messages: list = []
        self._send(
            messages,
            "team",
            "service-restored" if healthy else "service-unhealthy",
            service=service.name,
            owner=service.owner,
            elapsed=fmt_elapsed(elapsed_s),
            detail=detail,
        )
        return self._record(messages)

    def tier_result(
        self, tier: str, met: bool, elapsed_s: float | None, rto_s: int, services: Sequence[Service]
    ) -> dict[str, Any]:
        back = [s.title for s in services if self.board.service(s.name).status == "operational"]
        missing = [s.title for s in services if s.title not in back]
        summary = (f"{', '.join(back)}: back. " if back else "") + (
            f"{', '.join(missing)}: not yet back, we are still working on it." if missing else ""
        )
        values = {
            "tier": tier,
            "verdict": "met" if met else "NOT met",
            "elapsed": "not healthy by the deadline"
            if elapsed_s is None
            else fmt_elapsed(elapsed_s),
            "tier_rto": format_duration(rto_s),
            "summary": summary.strip(),
        }
        self._users("tier-result", "recovering", **values)
        messages: list = []
        self._send(messages, "team", "tier-result", **values)
        self._send(messages, "stakeholders", "tier-result", **values)
        return self._record(messages)

    def escalate(self, level: int, step: str, elapsed_s: float, budget_s: float) -> dict[str, Any]:
        messages: list = []
        self._send(
            messages,
            "team",
            "escalation",
            level=level,
            step=step,
            elapsed=fmt_elapsed(elapsed_s),
            budget=fmt_elapsed(budget_s),
        )
        return {"page": None, "messages": messages}

    def resolved(self, all_met: bool, summary: str) -> dict[str, Any]:
        healthy = all(s.status == "operational" for s in self.board.services)
        verdict = "all tiers met" if all_met else "NOT all tiers met"
        values = {"verdict": verdict, "summary": summary}
        if healthy:
            self._users("incident-resolved", "resolved", **values)
        else:
            self._users("tier-result", "monitoring", **values)
        messages: list = []
        self._send(messages, "team", "incident-resolved", **values)
        self._send(messages, "stakeholders", "incident-resolved", **values)
        return self._record(messages)

    # -- a database failover (drctl failover) ------------------------------------------------

    def failover_opened(
        self,
        incident_id: str,
        started_at: dt.datetime,
        deadline: str,
        rto_s: int,
        affected: Sequence[Service],
    ) -> dict[str, Any]:
        """The incident opens with the services that need the database recovering."""
        self.incident_id, self.started_at = incident_id, iso(started_at)
        values = {
            "deadline": label(deadline),
            "services": ", ".join(s.title for s in affected) or "none",
            "tier_rto": format_duration(rto_s),
        }
        text = self._message("users", "failover-opened", **values).body
        self.board.open_incident(
            incident_id,
            "Service disruption: moving our database",
            text,
            started_at,
            affected=[s.name for s in affected],
        )
        for service in affected:
            self.board.set_status(service.name, "recovering", self.clock(), deadline)
        messages: list = []
        self._send(messages, "team", "failover-opened", **values)
        self._send(messages, "team", "page", level=0, step="database failover", **values)
        self._send(messages, "stakeholders", "incident-opened", **values)
        self._send(messages, "media", "holding-statement", **values)
        return self._record(messages)

    def _failover_update(
        self, users_event: str, status: str, team_event: str, elapsed_s: float, **values: Any
    ) -> dict[str, Any]:
        values["elapsed"] = fmt_elapsed(elapsed_s)
        if "deadline" in values:
            values["deadline"] = label(values["deadline"])
        self._users(users_event, status, **values)
        messages: list = []
        self._send(messages, "team", team_event, **values)
        return self._record(messages)

    def failover_step(
        self, step: str, elapsed_s: float, users_text: str, deadline: str
    ) -> dict[str, Any]:
        return self._failover_update(
            "failover-step",
            "recovering",
            "failover-step",
            elapsed_s,
            step=step,
            summary=users_text,
            deadline=deadline,
        )

    def failover_failed(
        self, step: str, elapsed_s: float, detail: str, deadline: str
    ) -> dict[str, Any]:
        return self._failover_update(
            "failover-failed",
            "investigating",
            "failover-failed",
            elapsed_s,
            step=step,
            detail=detail,
            deadline=deadline,
        )

    def failover_service_back(
        self, step: str, elapsed_s: float, users_text: str, affected: Sequence[Service]
    ) -> dict[str, Any]:
        for service in affected:
            self.board.set_status(service.name, "operational", self.clock())
        return self._failover_update(
            "failover-back", "monitoring", "failover-step", elapsed_s, step=step, summary=users_text
        )

    def failover_resolved(self, elapsed_s: float, summary: str) -> dict[str, Any]:
        values = {"elapsed": fmt_elapsed(elapsed_s), "summary": summary}
        self._users("incident-resolved", "resolved", **values)
        messages: list = []
        self._send(messages, "team", "failover-resolved", **values)
        self._send(messages, "stakeholders", "incident-resolved", **values)
        return self._record(messages)
