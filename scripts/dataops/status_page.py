"""The public status page's content: a board of per-service status and incident updates,
rendered to static HTML (templates/status/index.html) and JSON, and written to the copies the
StatusPage component declares (components/status_page.py).

Writes go to the home copy (DR region) first; when it does not answer, to the next copy (the
third region's, which CloudFront fails over to), then any other. Replication carries an update
from the home copy to the others, so one successful write is enough. Objects carry
``Cache-Control: max-age=<cacheTtlS>`` so viewers see an update within seconds.

Times are shown in UTC and say so: a status page read across time zones must not guess.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.services import Catalogue

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
PAGE_TEMPLATE = TEMPLATES / "status" / "index.html"
STATUSES = ("operational", "recovering", "degraded", "outage")
STATUS_LABELS = {
    "operational": "Operational",
    "recovering": "Recovering",
    "degraded": "Degraded",
    "outage": "Outage",
}
INCIDENT_STATUSES = ("investigating", "recovering", "monitoring", "resolved")
INDEX_KEY, JSON_KEY = "index.html", "status.json"
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def label(moment_iso: str | None) -> str:
    """'2025-03-09T06:30:00Z' -> '09 Mar 2025 06:30 UTC'."""
    if not moment_iso:
        return ""
    moment = dt.datetime.fromisoformat(moment_iso.replace("Z", "+00:00"))
    return moment.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")


@dataclass
class ServiceStatus:
    name: str
    title: str
    tier: str
    status: str = "operational"
    since: str | None = None
    expected_by: str | None = None  # the tier's deadline while it is being restored


@dataclass
class IncidentUpdate:
    at: str
    status: str
    text: str


@dataclass
class Incident:
    id: str
    title: str
    status: str
    started_at: str
    updates: list[IncidentUpdate] = field(default_factory=list)


@dataclass
class StatusBoard:
    """What the page shows. ``sequence`` increases with every publish."""

    title: str
    services: list[ServiceStatus]
    incident: Incident | None = None
    updated_at: str | None = None
    sequence: int = 0

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue, title: str) -> StatusBoard:
        return cls(title, [ServiceStatus(s.name, s.title, s.tier) for s in catalogue.services])

    def service(self, name: str) -> ServiceStatus:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def set_status(
        self, name: str, status: str, now: dt.datetime, expected_by: str | None = None
    ) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r}: one of {', '.join(STATUSES)}")
        service = self.service(name)
        if service.status != status:
            service.since = iso(now)
        service.status = status
        service.expected_by = expected_by if status != "operational" else None

    def open_incident(
        self,
        incident_id: str,
        title: str,
        text: str,
        now: dt.datetime,
        affected: Iterable[str] | None = None,
    ) -> None:
        """Open (or continue) the incident; ``affected`` services (default all) go down."""
        if self.incident is None or self.incident.id != incident_id:
            self.incident = Incident(incident_id, title, "investigating", iso(now))
        down = None if affected is None else set(affected)
        for service in self.services:
            if service.status == "operational" and (down is None or service.name in down):
                self.set_status(service.name, "outage", now)
        self.add_update("investigating", text, now)

    def add_update(self, status: str, text: str, now: dt.datetime) -> None:
        if self.incident is None:
            raise ValueError("no open incident to update")
        if status not in INCIDENT_STATUSES:
            raise ValueError(f"incident status {status!r}: one of {', '.join(INCIDENT_STATUSES)}")
        self.incident.status = status
        self.incident.updates.insert(0, IncidentUpdate(iso(now), status, text))

    @property
    def overall(self) -> tuple[str, str]:
        """(css class, what the banner says)."""
        down = [s for s in self.services if s.status != "operational"]
        if not down:
            return "operational", "All systems operational"
        if any(s.tier == "critical" for s in down):
            return "major", "Major outage: we are restoring service"
        return "partial", "Partial outage: some services are still being restored"

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        overall_class, overall_label = self.overall
        record["overall"] = {"status": overall_class, "label": overall_label}
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StatusBoard:
        incident = record.get("incident")
        return cls(
            title=record["title"],
            services=[ServiceStatus(**s) for s in record["services"]],
            incident=(
                Incident(
                    **{k: v for k, v in incident.items() if k != "updates"},
                    updates=[IncidentUpdate(**u) for u in incident.get("updates", [])],
                )
                if incident
                else None
            ),
            updated_at=record.get("updated_at"),
            sequence=int(record.get("sequence", 0)),
        )


def _row(service: ServiceStatus) -> str:
    expected = label(service.expected_by) if service.status != "operational" else ""
    return (
        f'<tr data-service="{html.escape(service.name)}" data-status="{service.status}">'
        f"<td>{html.escape(service.title)}</td>"
        f'<td class="status {service.status}">{STATUS_LABELS[service.status]}</td>'
        f"<td>{html.escape(expected)}</td></tr>"
    )


def _incident_section(incident: Incident | None) -> str:
    if incident is None:
        return ""
    updates = "\n".join(
        f'<div class="update" data-status="{u.status}"><time datetime="{u.at}">'
        f"{html.escape(label(u.at))}</time> <strong>{u.status.capitalize()}</strong>: "
        f"{html.escape(u.text)}</div>"
        for u in incident.updates
    )
    return (
        f'<section id="incident" data-status="{incident.status}">'
        f"<h2>{html.escape(incident.title)}</h2>\n{updates}\n</section>"
    )


def render_html(board: StatusBoard, template: Path = PAGE_TEMPLATE) -> str:
    overall_class, overall_label = board.overall
    return string.Template(template.read_text()).substitute(
        title=html.escape(board.title),
        overall_class=overall_class,
        overall_label=html.escape(overall_label),
        service_rows="\n".join(_row(s) for s in board.services),
        incident_section=_incident_section(board.incident),
        updated_at=board.updated_at or "",
        updated_label=html.escape(label(board.updated_at)),
    )


def render_json(board: StatusBoard) -> str:
    return json.dumps(board.to_record(), indent=2, sort_keys=False)


class StatusPageWriter:
    """Writes the board to the StatusPage copies (``statusPage`` stack output), home first."""

    def __init__(self, aws: Any, outputs: Mapping[str, Any]):
        self._aws = aws
        self.buckets: dict[str, str] = dict(outputs["bucketNames"])
        home, failover = outputs["homeRegion"], outputs.get("failoverRegion")
        rest = [r for r in self.buckets if r not in (home, failover)]
        self.order: list[str] = [r for r in (home, failover, *rest) if r in self.buckets]
        self.cache_ttl_s = int(outputs.get("cacheTtlS") or 10)
        self.url = outputs.get("url", "")

    def load(self) -> StatusBoard | None:
        """The board as last published (from the first copy that answers), or None."""
        for region in self.order:
            try:
                body = self._aws.client("s3", region).get_object(
                    Bucket=self.buckets[region], Key=JSON_KEY
                )["Body"]
                return StatusBoard.from_record(json.loads(body.read()))
            except Exception:  # noqa: BLE001 - no page yet, or the region is down: try the next
                continue
        return None

    def publish(self, board: StatusBoard, now: dt.datetime) -> dict[str, Any]:
        board.sequence += 1
        board.updated_at = iso(now)
        objects = (
            (INDEX_KEY, render_html(board), "text/html; charset=utf-8"),
            (JSON_KEY, render_json(board), "application/json"),
        )
        errors: dict[str, str] = {}
        for region in self.order:
            s3 = self._aws.client("s3", region)
            try:
                for key, body, content_type in objects:
                    s3.put_object(
                        Bucket=self.buckets[region],
                        Key=key,
                        Body=body.encode(),
                        ContentType=content_type,
                        CacheControl=f"public, max-age={self.cache_ttl_s}",
                    )
            except Exception as exc:  # noqa: BLE001 - the next copy may answer
                errors[region] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                continue
            return {"written_to": region, "sequence": board.sequence, "errors": errors}
        return {"written_to": None, "sequence": board.sequence, "errors": errors}


def service_names(services: Sequence[Any]) -> str:
    return ", ".join(s.title for s in services)
