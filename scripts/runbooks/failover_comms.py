"""What `drctl failover` tells users, the team, stakeholders and media, at each step.

When the stack's outputs declare the status page (``statusPage``) or the topics
(``communication``), failover publishes through the same ``IncidentPublisher`` as `drctl recover`
(scripts/dataops/incident.py), per the plan in docs/communication.md:

- **open-incident** (a journaled step of its own, first): the incident opens on the status page
  with the services that depend on the database *recovering* until the critical RTO's deadline;
  on-call level 0 is paged, the team, stakeholders and media are told;
- after every step: a plain-words update on the page and a team message; after **validate** the
  services show *operational* and the incident *monitoring*; after the last step it is
  *resolved* (team, stakeholders);
- a step that fails or refuses: the page says recovery is delayed (*investigating*), the team gets
  the reason (secrets scrubbed) and the command that resumes.

A resumed run continues the incident the journal recorded (``IncidentPublisher.resume``); it never
opens a second one. In a dry run ``open-incident`` prints what would be published, where, and
publishes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from components.objectives import format_duration
from components.services import Service
from scripts.dataops.failover_plan import FailoverPlan
from scripts.dataops.incident import IncidentPublisher, fmt_elapsed
from scripts.dataops.notify import Notifier, scrub
from scripts.dataops.status_page import StatusPageWriter, iso, label
from scripts.runbooks.engine import RunContext, Step

OPEN_STEP = "open-incident"
SERVICE_BACK_STEP = "validate"
# What users read after each step: plain words, no internals.
USERS_TEXT = {
    "assess": "We have checked the copy of our data kept in another region.",
    "isolate": "The failed database is isolated, so nothing is written to it any more.",
    "promote": "Our standby database in another region has taken over.",
    "switch-config": "Our services are being pointed at it.",
    "switch-dns": "Traffic is being routed to it.",
    "validate": "Service is back: our services read and write data again.",
    "rearm": "Backups of the new database are running.",
}


def affected_services(services: Iterable[Service]) -> list[Service]:
    """The services a database failover takes down: those that depend on the database."""
    return [s for s in services if any(d.kind == "database" for d in s.depends_on)]


def incident_publisher(
    plan: FailoverPlan, aws: Any, secrets: Iterable[str] = ()
) -> IncidentPublisher | None:
    """The publisher for the stack's declared page and topics; None when it declares neither."""
    if not (plan.status_page or plan.communication):
        return None
    from scripts.runbooks.recover.plan import load_target

    return IncidentPublisher(
        stack=plan.stack,
        region=plan.dr_region,
        catalogue=load_target(plan.stack).catalogue,
        page=StatusPageWriter(aws, plan.status_page) if plan.status_page else None,
        notifier=Notifier(aws, plan.communication) if plan.communication else None,
        secrets=secrets,
    )


def would_publish(plan: FailoverPlan, affected: Sequence[Service]) -> list[str]:
    """What an executed run would publish, and where (for the dry run)."""
    lines = []
    page = plan.status_page
    if page:
        order = [page["homeRegion"], page.get("failoverRegion")]
        where = ", then ".join(
            f"{page['bucketNames'][r]} ({r})" for r in order if r in page["bucketNames"]
        )
        lines.append(f"would open an incident on the status page {page.get('url', '')} ({where})")
        lines.append(
            "would show as recovering until T0+"
            f"{fmt_elapsed(plan.rto_s)}: {', '.join(s.name for s in affected) or 'none'}"
        )
    else:
        lines.append("no statusPage in the stack outputs: users would NOT be told")
    topics = plan.communication or {}
    team = next(iter((topics.get("teamTopicArns") or {}).values()), None)
    board = next(iter((topics.get("stakeholderTopicArns") or {}).values()), None)
    if team:
        lines.append(f"would page on-call level 0 and tell the team through {team}")
    else:
        lines.append("no team topic in the stack outputs: nobody would be paged")
    if board:
        lines.append(f"would tell stakeholders and media through {board}")
    lines.append(
        "then after each step a status-page update and a team message; on a failure or refusal "
        "'recovery delayed' and the reason; after validate the services operational; at the end "
        "resolved"
    )
    return lines


def announced(
    steps: Sequence[Step],
    plan: FailoverPlan,
    publisher: IncidentPublisher | None,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[Step]:
    """``steps`` with the open-incident step first and each step's outcome published."""
    if publisher is None:
        return list(steps)
    affected = affected_services(publisher.catalogue.services)
    last = steps[-1].name

    def opened(ctx: RunContext) -> Mapping[str, Any]:
        record = ctx.results[OPEN_STEP]
        if not publisher.incident_id:  # a resumed run continues the recorded incident
            publisher.resume(record["incident"], record["started_at"])
        return record

    def open_incident(ctx: RunContext) -> dict[str, Any]:
        if not ctx.execute:
            lines = would_publish(plan, affected)
            for line in lines:
                ctx.note(line)
            return {"would_publish": lines}
        started = clock()
        incident = f"{plan.stack}-failover-{started.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
        deadline = iso(started + dt.timedelta(seconds=plan.rto_s))
        comms = publisher.failover_opened(incident, started, deadline, plan.rto_s, affected)
        ctx.note(f"incident {incident} opened; services recovering until {label(deadline)}")
        return {
            "incident": incident,
            "started_at": iso(started),
            "deadline": deadline,
            "comms": comms,
        }

    def announce(step: Step) -> Callable[[RunContext], dict[str, Any]]:
        def action(ctx: RunContext) -> dict[str, Any]:
            if not ctx.execute:  # a read-only check in a dry run publishes nothing
                return dict(step.action(ctx) or {})
            record = opened(ctx)
            began = dt.datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))

            def elapsed() -> float:
                return time.time() - began.timestamp()

            try:
                result = dict(step.action(ctx) or {})
            except Exception as exc:
                detail = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
                comms = publisher.failover_failed(
                    step.title, elapsed(), detail or type(exc).__name__, record["deadline"]
                )
                ctx.note(f"published: {step.name} stopped ({_delivered(comms)})")
                raise
            text = USERS_TEXT.get(step.name, f"{step.title}: done.")
            if step.name == SERVICE_BACK_STEP:
                comms = publisher.failover_service_back(step.title, elapsed(), text, affected)
                comms["elapsed_s"] = round(elapsed(), 3)
            elif step.name == last:
                back = (ctx.results.get(SERVICE_BACK_STEP) or {}).get("comms") or {}
                summary = text + (
                    f" Service was back after {fmt_elapsed(back['elapsed_s'])} (objective "
                    f"{format_duration(plan.rto_s)})."
                    if back.get("elapsed_s") is not None
                    else ""
                )
                comms = publisher.failover_resolved(elapsed(), summary)
            else:
                comms = publisher.failover_step(step.title, elapsed(), text, record["deadline"])
            ctx.note(f"published: {step.name} ({_delivered(comms)})")
            return {**result, "comms": comms}

        return action

    first = Step(
        OPEN_STEP,
        "Open the incident: status page, on-call, team, stakeholders, media",
        open_incident,
        plan="open the incident on the status page and notify every audience",
        dry_run=True,
    )
    return [first] + [
        replace(step, action=announce(step), plan=(step.plan or step.title) + "; publish it")
        for step in steps
    ]


def _delivered(comms: Mapping[str, Any]) -> str:
    page = comms.get("page")
    shown = "page: none" if page is None else f"page: {page.get('written_to') or 'NOT written'}"
    sent = comms.get("messages") or []
    ok = sum(1 for m in sent if m.get("ok"))
    return f"{shown}; messages {ok}/{len(sent)} sent"
