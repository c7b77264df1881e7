"""Drill scenario "region rebuild in priority order": the spec's System Recovery and Service
Restoration Priority, on the local platform, measured against the objectives.

What it starts (all on 127.0.0.1, all stopped at the end):

- moto's server, seeded with exactly what the program declares for ``prod`` (the dataset copies,
  secrets and parameters in the DR region, the status page's three copies, the team and
  stakeholder topics) and the SNS subscriptions NotificationTopics declares for drill contacts
  that point at a local webhook receiver (scripts/local/recovery_platform.py);
- a real PostgreSQL 15 primary as the DR region's database (the ``database`` dependency);
- one stand-in service per catalogue service: a real HTTP server whose /healthz answers 200
  once it has warmed up.

Then it runs ``drctl recover`` (scripts/runbooks/recover/) with ``--execute`` at a time scale
(objectives and intervals divided by ``time_scale``) and checks, each verdict able to fail:

- **tiers**: each tier's measured time (incident start to its last service healthy) against its
  scaled RTO;
- **status page**: every version of ``status.json`` in the home copy (the bucket is versioned,
  so the history is the page as it was published): the incident opened with every service down;
  no tier started before the tier before it was healthy or past its deadline; at the end each
  service shows operational exactly when recover measured it healthy, and the incident is
  resolved only if all are; the page a viewer gets through the local edge says the same;
- **notifications**: the team chat, the level-0 pager, the stakeholders and the media inbox each
  received their messages, and no message, page or journal entry carries a secret (the drill's
  webhook tokens and the database DSN's password).

``inject`` turns a verdict NOT MET from the environment: ``unhealthy-service`` (a health endpoint
answers 500), ``missing-dependency`` (a dataset copy is gone), ``slow-tier`` (the important tier
warms up slower than its scaled RTO), ``status-page-down`` (no copy of the page can be written),
``receiver-down`` (the webhook receiver is gone).

Not yet wired into ``drctl drill`` (the drill's scenario registry is being reorganised);
``run_priority_rebuild`` is its entry point and tests/integration/test_priority_rebuild.py runs it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.common import progress
from scripts.local.postgres import LocalCluster
from scripts.local.recovery_platform import (
    LocalEdge,
    StandInService,
    WebhookReceiver,
    declared,
    seed,
)

STACK = "prod"
DEFAULT_TIME_SCALE = 600.0  # the critical tier's 1 h is 6 s
WARM_UP_S = 0.3  # how long a stand-in takes to answer 200 after it is started
FAULTS = (
    "unhealthy-service",
    "missing-dependency",
    "slow-tier",
    "status-page-down",
    "receiver-down",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class PriorityRebuildResult:
    name: str = "priority-rebuild"
    time_scale: float = DEFAULT_TIME_SCALE
    inject: str | None = None
    tiers: list[dict[str, Any]] = field(default_factory=list)
    page_checks: list[Check] = field(default_factory=list)
    notification_checks: list[Check] = field(default_factory=list)
    rto_measured_s: float | None = None
    duration_s: float = 0.0
    error: str | None = None

    @property
    def tiers_met(self) -> bool:
        return bool(self.tiers) and all(t["met"] for t in self.tiers)

    @property
    def met(self) -> bool:
        checks = [*self.page_checks, *self.notification_checks]
        return self.error is None and self.tiers_met and bool(checks) and all(c.ok for c in checks)

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "tiers_met": self.tiers_met, "met": self.met}


def _contacts(receiver: WebhookReceiver, tokens: dict[str, str]) -> dict[str, Any]:
    return {
        "oncall": [{"https": receiver.url(f"pager/{tokens['level0']}")}],
        "team": [{"https": receiver.url(f"chat/{tokens['chat']}")}],
        "stakeholders": [
            {"https": receiver.url(f"board/{tokens['board']}"), "audiences": ["stakeholders"]},
            {"https": receiver.url(f"press/{tokens['press']}"), "audiences": ["media"]},
        ],
    }


def page_history(aws: Any, outputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Every version of status.json in the home copy, in publish order."""
    page = outputs["statusPage"]
    home = page["homeRegion"]
    s3, bucket = aws.client("s3", home), page["bucketNames"][home]
    try:
        versions = s3.list_object_versions(Bucket=bucket, Prefix="status.json").get("Versions", [])
    except Exception:  # noqa: BLE001 - no page at all is what the checks report
        return []
    docs = []
    for version in versions:
        body = s3.get_object(Bucket=bucket, Key="status.json", VersionId=version["VersionId"])
        docs.append(json.loads(body["Body"].read()))
    return sorted(docs, key=lambda d: d["sequence"])


def check_page(
    history: list[dict[str, Any]], tiers: list[dict[str, Any]], catalogue: Any, viewer: str
) -> list[Check]:
    checks = []
    if not history:
        return [Check("page published", False, "no version of status.json in the home copy")]
    first = history[0]
    down = {s["status"] for s in first["services"]}
    checks.append(
        Check(
            "incident opened with every service down",
            down == {"outage"} and (first.get("incident") or {}).get("status") == "investigating",
            f"first version: services {sorted(down)}, "
            f"incident {(first.get('incident') or {}).get('status')}",
        )
    )
    order_ok, detail = True, "each tier started after the one before it was healthy or late"
    measured = {t["tier"]: t for t in tiers}
    names = {t.name: [s.name for s in t.services] for t in catalogue.tiers}
    for before, after in zip(catalogue.tiers, catalogue.tiers[1:], strict=False):
        started = next(
            (
                d["sequence"]
                for d in history
                if any(
                    s["name"] in names[after.name] and s["status"] != "outage"
                    for s in d["services"]
                )
            ),
            None,
        )
        if started is None:
            continue
        at_start = next(d for d in history if d["sequence"] == started)
        previous = [s for s in at_start["services"] if s["name"] in names[before.name]]
        healthy_before = all(s["status"] == "operational" for s in previous)
        if not healthy_before and measured.get(before.name, {}).get("healthy", False):
            order_ok = False
            detail = f"tier {after.name} started (version {started}) before {before.name} was up"
    checks.append(Check("tiers started in order", order_ok, detail))
    last = history[-1]
    healthy = {
        name: state["healthy"] for t in tiers for name, state in t.get("services", {}).items()
    }
    wrong = [
        s["name"]
        for s in last["services"]
        if (s["status"] == "operational") != healthy.get(s["name"], False)
    ]
    incident = (last.get("incident") or {}).get("status")
    expected = "resolved" if all(healthy.values()) else "monitoring"
    checks.append(
        Check(
            "final page matches the health checks",
            not wrong and incident == expected,
            f"services shown wrong: {wrong or 'none'}; incident {incident} (expected {expected})",
        )
    )
    banner_ok = last["overall"]["label"] in viewer
    checks.append(Check("a viewer sees the final state", banner_ok, last["overall"]["label"]))
    return checks


def check_notifications(
    receiver: WebhookReceiver, tokens: dict[str, str], published: str
) -> list[Check]:
    expectations = [
        ("team chat", f"chat/{tokens['chat']}", "[DR prod] recovery started"),
        ("pager (level 0)", f"pager/{tokens['level0']}", "[PAGE prod] DR recovery needs you"),
        ("stakeholders", f"board/{tokens['board']}", "Service disruption: recovery under way"),
        ("media", f"press/{tokens['press']}", "Holding statement: service disruption"),
    ]
    checks = []
    for label, path, subject in expectations:
        got = [d.subject for d in receiver.at(path)]
        checks.append(
            Check(
                f"{label} reached", any(s.startswith(subject) for s in got), f"{len(got)} received"
            )
        )
    leaked = [name for name, token in tokens.items() if token in published]
    checks.append(
        Check(
            "no secret in any message, page or journal",
            not leaked,
            f"leaked: {leaked}" if leaked else "none of the drill's secrets appear",
        )
    )
    return checks


def run_priority_rebuild(
    *,
    time_scale: float = DEFAULT_TIME_SCALE,
    inject: str | None = None,
    workdir: Path | None = None,
) -> PriorityRebuildResult:
    """Start the local platform, recover every service in priority order, check, tear down."""
    from scripts.local.aws import CachedClients, LocalAws
    from scripts.runbooks.recover import RecoverOptions, load_target, run_recover

    if inject is not None and inject not in FAULTS:
        raise ValueError(f"inject {inject!r}: one of {', '.join(FAULTS)}")
    result = PriorityRebuildResult(time_scale=time_scale, inject=inject)
    started = time.monotonic()
    tokens = {k: f"drill-{k}-{secrets.token_hex(8)}" for k in ("level0", "chat", "board", "press")}
    tokens["db-password"] = f"drill-pw-{secrets.token_hex(8)}"
    work = Path(workdir or tempfile.mkdtemp(prefix="drctl-priority-rebuild-"))
    with contextlib.ExitStack() as stack:
        local = LocalAws().start()
        stack.callback(local.stop)
        # moto keeps its state per process, not per server: start from an empty cloud.
        urllib.request.urlopen(
            urllib.request.Request(f"{local.endpoint_url}/moto-api/reset", method="POST"),
            timeout=30,
        ).close()
        aws = CachedClients(local)
        receiver = WebhookReceiver().start()
        stack.callback(receiver.stop)
        target = load_target(STACK)
        region = target.region
        evaluation = declared(STACK, _contacts(receiver, tokens))
        outputs = seed(aws, evaluation, region, zone=target.zone)
        database = stack.enter_context(LocalCluster("priority-rebuild-db"))
        # trust auth ignores the password: it is there to prove it never leaks
        dsn = f"postgresql://postgres:{tokens['db-password']}@127.0.0.1:{database.port}/postgres"
        services = {}
        for service in target.catalogue.services:
            services[service.name] = StandInService(service.name, up_after_s=WARM_UP_S).start()
            stack.callback(services[service.name].stop)
        _inject(inject, aws, outputs, region, target, services, receiver, time_scale)
        for server in services.values():
            server.bring_up()
        progress.print(
            f"priority rebuild: {len(services)} services into {region}, 1/{time_scale:g}"
        )
        try:
            recovered = run_recover(
                target,
                aws,
                execute=True,
                yes=True,
                outputs=outputs,
                options=RecoverOptions(time_scale=time_scale, retry_interval_s=60),
                database_dsn=dsn,
                health_url=lambda s: services[s.name].url,
                journal=work / "recover.json",
            )
        except Exception as exc:  # noqa: BLE001 - the drill reports, it does not crash
            result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            recovered = None
        if recovered is not None:
            steps = {row["name"]: row.get("result") or {} for row in recovered.report.steps}
            result.tiers = [
                {
                    **tier,
                    "rto_objective_s": tier["rto_s"],
                    "services": steps.get(f"validate-{tier['tier']}", {}).get("services", {}),
                }
                for tier in recovered.tiers
            ]
            elapsed = [t["elapsed_s"] for t in result.tiers if t["elapsed_s"] is not None]
            result.rto_measured_s = max(elapsed) if len(elapsed) == len(result.tiers) else None
        history = page_history(aws, outputs)
        edge = LocalEdge(aws, outputs["statusPage"]).start()
        stack.callback(edge.stop)
        viewer = edge.fetch("/")[2].decode("utf-8", "replace")
        result.page_checks = check_page(history, result.tiers, target.catalogue, viewer)
        journal = (work / "recover.json").read_text() if (work / "recover.json").exists() else ""
        published = json.dumps(history) + viewer + journal
        published += "".join(d.subject + d.message for d in receiver.deliveries)
        result.notification_checks = check_notifications(receiver, tokens, published)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _inject(inject, aws, outputs, region, target, services, receiver, time_scale) -> None:
    if inject == "unhealthy-service":
        services[target.catalogue.tiers[0].services[0].name].failing = 500
    elif inject == "missing-dependency":
        bucket = outputs["buckets"]["user-assets"][region]
        aws.client("s3", region).delete_bucket(Bucket=bucket)
    elif inject == "slow-tier":
        important = target.catalogue.tier("important")
        for service in important.services:
            services[service.name].up_after_s = important.rto_s / time_scale * 1.5
    elif inject == "status-page-down":
        for copy_region, bucket in outputs["statusPage"]["bucketNames"].items():
            aws.client("s3", copy_region).delete_bucket(Bucket=bucket)
    elif inject == "receiver-down":
        receiver.stop()


def format_result(result: PriorityRebuildResult) -> str:
    fault = f", inject {result.inject}" if result.inject else ""
    verdict = "MET" if result.met else "NOT MET"
    lines = [f"priority rebuild (1/{result.time_scale:g}{fault}): {verdict}"]
    for tier in result.tiers:
        shown = "not healthy" if tier["elapsed_s"] is None else f"{tier['elapsed_s']:.2f} s"
        lines.append(
            f"  tier {tier['tier']:<9} {shown:>12} / RTO {tier['rto_s']:.2f} s  "
            f"{'met' if tier['met'] else 'NOT met'}"
        )
    for check in [*result.page_checks, *result.notification_checks]:
        lines.append(f"  {'ok ' if check.ok else 'NOT'} {check.name}: {check.detail}")
    if result.error:
        lines.append(f"  error: {result.error}")
    return "\n".join(lines)
