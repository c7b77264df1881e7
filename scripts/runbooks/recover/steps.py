"""The steps of ``drctl recover`` and the escalation watchdog (see the package docstring)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from components.objectives import format_duration
from components.services import Service, Tier
from scripts.common import DrctlError, ExitCode, progress
from scripts.dataops.incident import IncidentPublisher, fmt_elapsed
from scripts.dataops.services import DependencyChecker, HttpClient, check_health, switch_endpoint
from scripts.dataops.status_page import iso, label
from scripts.runbooks.engine import RunContext, Step
from scripts.runbooks.recover.plan import RecoverOptions, RecoverTarget, tier_steps

PAGE_PLAN = (
    "start the incident clock, page on-call level 0, open the incident on the status page, "
    "notify the team, stakeholders and media"
)


class Escalation:
    """Pages the next on-call level when a step overruns its share of the tier RTO."""

    def __init__(self, levels: int, publisher: IncidentPublisher | None):
        self.levels, self.publisher = levels, publisher
        self.level = 0
        self._lock = threading.Lock()

    def overrun(self, step: str, elapsed_s: float, budget_s: float) -> dict[str, Any]:
        with self._lock:
            if self.level + 1 >= self.levels:
                return {
                    "level": self.level,
                    "step": step,
                    "paged": False,
                    "note": "no next contact",
                }
            self.level += 1
            level = self.level
        progress.print(
            f"    [yellow]overrun[/]: {step} past its share {fmt_elapsed(budget_s)}; "
            f"paging escalation level {level}"
        )
        sent = self.publisher.escalate(level, step, elapsed_s, budget_s) if self.publisher else {}
        return {"level": level, "step": step, "paged": True, "at_s": round(elapsed_s, 3), **sent}

    @contextlib.contextmanager
    def watch(self, step: str, budget_s: float) -> Iterator[list[dict[str, Any]]]:
        """Escalate once per ``budget_s`` the step keeps running."""
        fired: list[dict[str, Any]] = []
        started = time.monotonic()
        done = threading.Event()

        def watchdog() -> None:
            while not done.wait(budget_s):
                fired.append(self.overrun(step, time.monotonic() - started, budget_s))

        thread = threading.Thread(target=watchdog, name=f"escalation-{step}", daemon=True)
        thread.start()
        try:
            yield fired
        finally:
            done.set()
            thread.join()


def _sleep_until(moment: float, interval: float) -> None:
    time.sleep(max(0.0, min(interval, moment - time.time())))


def recover_steps(
    target: RecoverTarget,
    options: RecoverOptions,
    *,
    checker: DependencyChecker | None,
    aws: Any,
    outputs: Mapping[str, Any],
    publisher: IncidentPublisher | None,
    escalation: Escalation,
    http: HttpClient,
    health_url: Callable[[Service], str] | None = None,
    rebuild_preflight: Callable[[RunContext], Mapping[str, Any]] | None = None,
) -> list[Step]:
    tiers = target.catalogue.tiers
    url_of = health_url or (lambda s: s.health_url(target.zone))
    interval = options.scaled(options.retry_interval_s)
    budgets: dict[str, tuple[Tier, float]] = {}
    for index, tier in enumerate(tiers):
        names = (["page", "preflight"] if index == 0 else []) + tier_steps(tier)
        for name in names:
            budgets[name] = (tier, options.scaled(tier.rto_s) / len(names))

    def t0(ctx: RunContext) -> float:
        return dt.datetime.fromisoformat(ctx.results["page"]["started_at"]).timestamp()

    def deadline(ctx: RunContext, tier: Tier) -> float:
        return t0(ctx) + options.scaled(tier.rto_s)

    def resume(ctx: RunContext) -> None:
        """A rerun after an interruption continues the same incident and escalation level."""
        if publisher is not None and "page" in ctx.results and not publisher.incident_id:
            page = ctx.results["page"]
            publisher.resume(page["incident"], page["started_at"])
        recorded = [
            e.get("level", 0) for r in ctx.results.values() for e in r.get("escalations", [])
        ]
        escalation.level = max([escalation.level, *recorded])

    def guarded(name: str, action: Callable[[RunContext], dict[str, Any]]) -> Callable:
        def run(ctx: RunContext) -> dict[str, Any]:
            resume(ctx)
            _, budget = budgets[name]
            with escalation.watch(name, budget) as fired:
                result = action(ctx)
            return {**result, "budget_s": round(budget, 3), "escalations": list(fired)}

        return run

    def page(ctx: RunContext) -> dict[str, Any]:
        started = options.incident_start or dt.datetime.now(dt.UTC)
        incident = f"{target.stack}-{started.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
        first = iso(started + dt.timedelta(seconds=options.scaled(tiers[0].rto_s)))
        comms = publisher.opened(incident, started, first) if publisher else None
        ctx.note(f"incident {incident}; clock started {label(iso(started))}")
        return {"incident": incident, "started_at": started.isoformat(), "comms": comms}

    def preflight(ctx: RunContext) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if rebuild_preflight is not None:
            result["rebuild"] = dict(rebuild_preflight(ctx))
        zone_id = (outputs.get("drStandby") or {}).get("zoneId")
        if not zone_id:
            raise DrctlError(
                "the stack outputs have no drStandby.zoneId: nothing to switch the services in",
                ExitCode.PRECONDITION_FAILED,
            )
        try:
            aws.client("route53", "us-east-1").get_hosted_zone(Id=zone_id)
        except Exception as exc:
            raise DrctlError(
                f"hosted zone {zone_id} does not answer ({type(exc).__name__})",
                ExitCode.PRECONDITION_FAILED,
            ) from None
        result["zone_id"] = zone_id
        result["status_page"] = bool(outputs.get("statusPage"))
        result["topics"] = bool(outputs.get("communication"))
        for what in ("status_page", "topics"):
            if not result[what]:
                ctx.note(f"warning: the outputs have no {what.replace('_', ' ')}; not published")
        return result

    def start(tier: Tier, previous: Tier | None) -> Callable:
        def action(ctx: RunContext) -> dict[str, Any]:
            if previous is None:
                reason = "the first tier starts after the preflight"
            elif ctx.results[f"validate-{previous.name}"]["healthy"]:
                reason = f"tier {previous.name} is healthy"
            else:
                due = deadline(ctx, previous)
                while time.time() < due:
                    _sleep_until(due, interval)
                reason = (
                    f"tier {previous.name} is NOT healthy; its deadline "
                    f"{label(iso(dt.datetime.fromtimestamp(due, dt.UTC)))} has passed"
                )
            ctx.note(f"tier {tier.name} starts: {reason}")
            due_iso = iso(dt.datetime.fromtimestamp(deadline(ctx, tier), dt.UTC))
            comms = (
                publisher.tier_started(tier.name, tier.rto_s, due_iso, tier.services, reason)
                if publisher
                else None
            )
            return {"reason": reason, "deadline": due_iso, "comms": comms}

        return action

    def deps(tier: Tier, service: Service) -> Callable:
        def action(ctx: RunContext) -> dict[str, Any]:
            earlier = {
                d["ref"]: name
                for name, r in ctx.results.items()
                if name.startswith("deps-")
                for d in r.get("dependencies", [])
                if d.get("ok")
            }
            records: dict[str, dict] = {
                d.ref: {"ref": d.ref, "ok": True, "detail": f"verified by {earlier[d.ref]}"}
                for d in service.depends_on
                if d.ref in earlier
            }
            pending = [d for d in service.depends_on if d.ref not in earlier]
            attempts, due = 0, deadline(ctx, tier)
            while pending and checker is not None:
                attempts += 1
                for dependency in pending:
                    verdict = checker.check(dependency)
                    records[dependency.ref] = {"ref": dependency.ref, **verdict.to_record()}
                pending = [d for d in pending if not records[d.ref]["ok"]]
                if not pending or time.time() >= due:
                    break
                waiting = "; ".join(f"{d.ref}: {records[d.ref]['detail']}" for d in pending)
                ctx.note(f"{service.name} waits for {waiting}")
                _sleep_until(due, interval)
            verified = not pending
            for ref, rec in records.items():
                mark = "ok" if rec["ok"] else "NOT verified"
                ctx.note(f"{mark:<12} {service.name} <- {ref}: {rec['detail']}")
            ordered = [records[d.ref] for d in service.depends_on if d.ref in records]
            return {"verified": verified, "dependencies": ordered, "attempts": attempts}

        return action

    def switch(service: Service) -> Callable:
        def action(ctx: RunContext) -> dict[str, Any]:
            if not ctx.results[f"deps-{service.name}"]["verified"]:
                ctx.note(f"{service.name} does not start: its dependencies are not verified")
                return {"switched": False, "skipped": "dependencies not verified"}
            zone_id = ctx.results["preflight"]["zone_id"]
            result = switch_endpoint(aws, zone_id, target.zone, service, target.region)
            ctx.note(f"{result['record']} -> {result['to']} (was {result['from']})")
            return {"switched": True, **result}

        return action

    def validate(tier: Tier) -> Callable:
        def action(ctx: RunContext) -> dict[str, Any]:
            due, begin = deadline(ctx, tier), t0(ctx)
            state: dict[str, dict[str, Any]] = {}
            for s in tier.services:
                started = ctx.results[f"switch-{s.name}"].get("switched")
                state[s.name] = {
                    "healthy": False,
                    "attempts": 0,
                    "healthy_after_s": None,
                    "detail": "" if started else "not started: dependencies not verified",
                    "url": url_of(s),
                }
            pending = [s for s in tier.services if not state[s.name]["detail"]]
            while pending:
                for s in pending:
                    timeout = min(options.http_timeout_s, max(0.5, due - time.time()))
                    verdict = check_health(http, state[s.name]["url"], timeout)
                    state[s.name]["attempts"] += 1
                    state[s.name]["detail"] = verdict.detail
                    if verdict.ok:
                        after = time.time() - begin
                        state[s.name].update(healthy=True, healthy_after_s=round(after, 3))
                        ctx.note(f"healthy  {s.name} after {fmt_elapsed(after)} ({verdict.detail})")
                        if publisher:
                            state[s.name]["comms"] = publisher.service_result(s, True, after, "")
                pending = [s for s in pending if not state[s.name]["healthy"]]
                if not pending or time.time() >= due:
                    break
                _sleep_until(due, interval)
            for s in tier.services:
                if not state[s.name]["healthy"]:
                    ctx.note(f"UNHEALTHY {s.name}: {state[s.name]['detail']}")
                    if publisher:
                        detail = state[s.name]["detail"]
                        state[s.name]["comms"] = publisher.service_result(s, False, 0, detail)
            healthy = all(v["healthy"] for v in state.values())
            elapsed = max(v["healthy_after_s"] for v in state.values()) if healthy else None
            rto = options.scaled(tier.rto_s)
            met = healthy and elapsed is not None and elapsed <= rto
            verdict = "met" if met else "NOT met"
            shown = "not healthy by the deadline" if elapsed is None else fmt_elapsed(elapsed)
            ctx.note(f"tier {tier.name}: {verdict} ({shown} against {fmt_elapsed(rto)})")
            comms = (
                publisher.tier_result(tier.name, met, elapsed, tier.rto_s, tier.services)
                if publisher
                else None
            )
            return {
                "tier": tier.name,
                "healthy": healthy,
                "met": met,
                "elapsed_s": elapsed,
                "rto_s": round(rto, 3),
                "services": state,
                "comms": comms,
            }

        return action

    def close(ctx: RunContext) -> dict[str, Any]:
        resume(ctx)
        rows = [
            {
                k: ctx.results[f"validate-{t.name}"][k]
                for k in ("tier", "healthy", "met", "elapsed_s", "rto_s")
            }
            for t in tiers
        ]
        all_met = all(r["met"] for r in rows)
        summary = "; ".join(
            f"{r['tier']} {'met' if r['met'] else 'NOT met'}"
            + (f" in {fmt_elapsed(r['elapsed_s'])}" if r["elapsed_s"] is not None else "")
            for r in rows
        )
        comms = publisher.resolved(all_met, summary + ".") if publisher else None
        return {"tiers": rows, "all_met": all_met, "comms": comms}

    steps = [
        Step("page", "Page on-call, open the incident", guarded("page", page), plan=PAGE_PLAN),
        Step(
            "preflight",
            f"Preflight {target.region}",
            guarded("preflight", preflight),
            plan="check the target environment"
            + (" (the rebuild's preflight first)" if target.objectives.is_rebuild else ""),
        ),
    ]
    for index, tier in enumerate(tiers):
        previous = tiers[index - 1] if index else None
        due = f"T0+{fmt_elapsed(options.scaled(tier.rto_s))}"
        after = "the preflight" if previous is None else f"tier {previous.name} is healthy or late"
        steps.append(
            Step(
                f"start-{tier.name}",
                f"Tier {tier.name} (RTO {format_duration(tier.rto_s)}): start",
                guarded(f"start-{tier.name}", start(tier, previous)),
                plan=f"start tier {tier.name} after {after}; deadline {due}",
            )
        )
        for s in tier.services:
            needs = ", ".join(d.ref for d in s.depends_on) or "nothing"
            steps.append(
                Step(
                    f"deps-{s.name}",
                    f"{s.name}: verify its data",
                    guarded(f"deps-{s.name}", deps(tier, s)),
                    plan=f"verify or restore {needs} in {target.region} by {due}",
                )
            )
        for s in tier.services:
            endpoint = s.endpoint(target.region, target.zone)
            steps.append(
                Step(
                    f"switch-{s.name}",
                    f"{s.name}: switch its endpoint",
                    guarded(f"switch-{s.name}", switch(s)),
                    plan=f"point {s.record}.{target.zone} at {endpoint}",
                )
            )
        names = ", ".join(s.name for s in tier.services)
        steps.append(
            Step(
                f"validate-{tier.name}",
                f"Tier {tier.name}: validate health",
                guarded(f"validate-{tier.name}", validate(tier)),
                plan=f"check {names} until healthy or {due}",
            )
        )
    steps.append(
        Step(
            "close",
            "Per-tier RTO; resolve the incident",
            close,
            plan="report each tier's time against its RTO; resolve or keep monitoring",
        )
    )
    return steps
