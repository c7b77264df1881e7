"""Scenario ``priority-rebuild``: the spec's System Recovery in its Service Restoration Priority,
with the communication plan, on the drill's platform and time scale.

What it starts (all on 127.0.0.1, all stopped with the scenario):

- the drill's moto, seeded with exactly what the program declares for ``prod`` (the dataset
  copies, secrets and parameters in the DR region, the status page's three copies, the team and
  stakeholder topics) and the SNS subscriptions NotificationTopics declares for drill contacts
  that point at a local webhook receiver (scripts/local/recovery_platform.py);
- a real PostgreSQL 15 primary as the DR region's database (the ``database`` dependency);
- one stand-in service per catalogue service: a real HTTP server whose /healthz answers 200
  once it has warmed up.

Before the failure the DR region holds known data: objects in every dataset copy and rows in the
database. At the failure instant the primary region is declared lost and ``drctl recover``
(scripts/runbooks/recover/) runs with ``--execute`` on the drill's time scale, its incident clock
started at the failure. Then the drill checks, each verdict able to fail:

- **tiers** (``result.tiers``): each tier's time (failure to its last service healthy) against
  that tier's own scaled RTO; the scenario's RTO is the critical tier's;
- **data**: every object and row the DR region held at the failure is still there with its exact
  content (the rebuild must not lose what it serves); the RPO is measured from it;
- **status page** (``result.checks``): every version of ``status.json`` in the home copy (the
  bucket is versioned, so its history is the page as it was published): the incident opened
  with every service down; no tier started before the tier before it was healthy or past its
  deadline; at the end each service shows operational exactly when recover measured it healthy,
  and the incident is resolved only if all are; the page a viewer gets through the local edge
  says the same;
- **notifications**: the team chat, the level-0 pager, the stakeholders and the media inbox each
  received their messages, and no message, page or journal entry carries a secret (the drill's
  webhook tokens and the database DSN's password).

Its faults (scripts/checks/drill/faults.py) change the environment only.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import time
from collections import Counter
from typing import Any

from scripts.checks.drill.datacheck import PROMISED, check_data, measure_rpo
from scripts.checks.drill.model import ScenarioResult, Write
from scripts.checks.drill.platform import STACK, DrillContext
from scripts.checks.drill.writers import sha256

WARM_UP_S = 0.3  # how long a stand-in takes to answer 200 after it is started
RETRY_INTERVAL_S = 60  # declared re-check interval of recover in the drill (scaled like the rest)
OBJECTS_PER_DATASET = 12
DATABASE_ROWS = 200
# The recover runbook's steps, by the drill's phases (model.PHASES).
STEP_PHASES = (
    ("page", "assess"),
    ("preflight", "assess"),
    ("start-", "recover"),
    ("deps-", "restore"),
    ("switch-", "dns"),
    ("validate-", "validate"),
    ("close", "service"),
)
PLANTED_TOKEN_LINE = "Escalation bridge: "  # what the secret-in-template fault adds


def check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "detail": detail}


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
) -> list[dict[str, Any]]:
    if not history:
        return [check("status page published", False, "no version of status.json in the home copy")]
    checks = []
    first = history[0]
    down = {s["status"] for s in first["services"]}
    opened = (first.get("incident") or {}).get("status")
    checks.append(
        check(
            "status page: incident opened with every service down",
            down == {"outage"} and opened == "investigating",
            f"first version: services {sorted(down)}, incident {opened}",
        )
    )
    order_ok, detail = True, "each tier started after the one before it was healthy or late"
    measured = {t["tier"]: t for t in tiers}
    names = {t.name: [s.name for s in t.services] for t in catalogue.tiers}
    for before, after in zip(catalogue.tiers, catalogue.tiers[1:], strict=False):
        started = next(
            (
                d
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
        previous = [s for s in started["services"] if s["name"] in names[before.name]]
        healthy_before = all(s["status"] == "operational" for s in previous)
        if not healthy_before and measured.get(before.name, {}).get("healthy", False):
            order_ok = False
            detail = (
                f"tier {after.name} started (version {started['sequence']}) before "
                f"{before.name} was up"
            )
    checks.append(check("status page: tiers started in order", order_ok, detail))
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
    expected = "resolved" if healthy and all(healthy.values()) else "monitoring"
    checks.append(
        check(
            "status page: final state matches the health checks",
            not wrong and incident == expected,
            f"services shown wrong: {wrong or 'none'}; incident {incident} (expected {expected})",
        )
    )
    banner = last["overall"]["label"]
    checks.append(check("status page: a viewer sees the final state", banner in viewer, banner))
    return checks


def check_notifications(
    receiver: Any, tokens: dict[str, str], published: str
) -> list[dict[str, Any]]:
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
            check(
                f"notified: {label}",
                any(s.startswith(subject) for s in got),
                f"{len(got)} received",
            )
        )
    leaked = sorted(name for name, token in tokens.items() if token in published)
    checks.append(
        check(
            "no secret in any message, page or journal",
            not leaked,
            f"leaked: {', '.join(leaked)}" if leaked else "none of the drill's secrets appear",
        )
    )
    return checks


def _phase(step: str) -> str:
    return next(phase for prefix, phase in STEP_PHASES if step.startswith(prefix))


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _hold_data(aws: Any, outputs: dict[str, Any], region: str, database: Any) -> list[Write]:
    """What the DR region holds when the primary is lost: objects in each dataset copy, rows in
    the database. Keys are ``<dataset>/<key>`` and ``database/<id>``."""
    writes = []
    s3 = aws.client("s3", region)
    for dataset, copies in sorted(outputs["buckets"].items()):
        for i in range(OBJECTS_PER_DATASET):
            body = secrets.token_bytes(2048)
            key = f"drill/{i:03d}.bin"
            sent = time.time()
            s3.put_object(Bucket=copies[region], Key=key, Body=body)
            writes.append(Write(f"{dataset}/{key}", sha256(body), sent, time.time()))
    database.execute("create table service_data (id int primary key, content text not null)")
    rows = [(i, secrets.token_hex(16)) for i in range(DATABASE_ROWS)]
    sent = time.time()
    with database.connect() as conn, conn.cursor() as cur:
        with cur.copy("copy service_data (id, content) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
    acked = time.time()
    writes += [Write(f"database/{i}", content, sent, acked) for i, content in rows]
    return writes


def _read_back(aws: Any, outputs: dict[str, Any], region: str, database: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    s3 = aws.client("s3", region)
    for dataset, copies in outputs["buckets"].items():
        try:
            listed = s3.list_objects_v2(Bucket=copies[region], Prefix="drill/").get("Contents", [])
        except Exception:  # noqa: BLE001 - a lost copy holds nothing: the check counts it
            continue
        for item in listed:
            body = s3.get_object(Bucket=copies[region], Key=item["Key"])["Body"].read()
            found[f"{dataset}/{item['Key']}"] = sha256(body)
    for i, content in database.query("select id, content from service_data"):
        found[f"database/{i}"] = content
    return found


def _drop_bucket(s3: Any, bucket: str) -> None:
    """A copy lost with everything in it (every version, then the bucket)."""
    for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket=bucket)


def _templates_with_a_pasted_token(ctx: DrillContext, token_url: str) -> Any:
    """A copy of templates/messages/ whose team message has a webhook URL pasted in by hand."""
    from scripts.dataops.notify import MESSAGES, Templates

    copy = ctx.workdir / "messages-with-token"
    shutil.copytree(MESSAGES, copy)
    team = copy / "team.md"
    text = team.read_text().replace(
        "Critical deadline: $deadline.",
        f"Critical deadline: $deadline. {PLANTED_TOKEN_LINE}{token_url}.",
        1,
    )
    team.write_text(text)
    return Templates(copy)


def scenario_priority_rebuild(ctx: DrillContext, result: ScenarioResult) -> None:
    from scripts.local.aws import CachedClients
    from scripts.local.postgres import LocalCluster
    from scripts.local.recovery_platform import (
        LocalEdge,
        StandInService,
        WebhookReceiver,
        declared,
        drill_contacts,
        seed,
    )
    from scripts.runbooks.recover import RecoverOptions, load_target, run_recover

    aws = CachedClients(ctx.aws)
    tokens = {k: f"drill-{k}-{secrets.token_hex(8)}" for k in ("level0", "chat", "board", "press")}
    tokens["database"] = f"drill-pw-{secrets.token_hex(8)}"
    target = load_target(STACK)
    region, catalogue = target.region, target.catalogue
    receiver = WebhookReceiver().start()
    ctx.cleanups.append(receiver.stop)
    with ctx.step("the declared platform on moto: datasets, secrets, status page, topics", "setup"):
        evaluation = declared(STACK, drill_contacts(receiver, tokens))
        outputs = seed(aws, evaluation, region, zone=target.zone)
    services: dict[str, Any] = {}
    with ctx.step(f"the DR database and {len(catalogue.services)} stand-in services", "setup"):
        database = LocalCluster("priority-rebuild-db", base_dir=ctx.workdir)
        ctx.cleanups.append(database.cleanup)
        database.init()
        database.start()
        for service in catalogue.services:
            services[service.name] = StandInService(service.name, up_after_s=WARM_UP_S).start()
            ctx.cleanups.append(services[service.name].stop)
    # trust auth ignores the password: it is there to prove it never leaks
    dsn = f"postgresql://postgres:{tokens['database']}@127.0.0.1:{database.port}/postgres"
    templates = None
    if ctx.faults.active("slow-tier"):
        important = catalogue.tier("important")
        for service in important.services:
            services[service.name].up_after_s = important.rto_s / ctx.time_scale * 1.5
    if ctx.faults.active("unhealthy-service"):
        services[catalogue.tiers[0].services[0].name].failing = 500
    if ctx.faults.active("secret-in-template"):
        templates = _templates_with_a_pasted_token(ctx, receiver.url(f"pager/{tokens['level0']}"))
    with ctx.step("the DR region holds the data the services serve", "load"):
        writes = _hold_data(aws, outputs, region, database)
    failure = ctx.mark_failure("incident: the primary region is lost; every service is down")
    result.detection = {"by": "none: the drill declares the region lost; recover starts at once"}
    result.recovery_point = {
        "kind": "time",
        "value": dt.datetime.fromtimestamp(failure, dt.UTC).isoformat(timespec="milliseconds"),
        "how": "the DR region's copies as they stood at the failure: the rebuild restores "
        "services over them, so everything they held must still be there",
    }
    if ctx.faults.active("missing-dependency"):
        _drop_bucket(aws.client("s3", region), outputs["buckets"]["user-assets"][region])
    if ctx.faults.active("status-page-down"):
        for copy_region, bucket in outputs["statusPage"]["bucketNames"].items():
            aws.client("s3", copy_region).delete_bucket(Bucket=bucket)
    if ctx.faults.active("receiver-down"):
        receiver.stop()
    for server in services.values():
        server.bring_up()  # the deploy starts every service; each answers once it is warm
    journal = ctx.workdir / "recover.json"
    recovered = run_recover(
        target,
        aws,
        execute=True,
        yes=True,
        outputs=outputs,
        options=RecoverOptions(
            time_scale=ctx.time_scale,
            retry_interval_s=RETRY_INTERVAL_S,
            incident_start=dt.datetime.fromtimestamp(failure, dt.UTC),
        ),
        database_dsn=dsn,
        health_url=lambda s: services[s.name].url,
        templates=templates,
        journal=journal,
    )
    rows = {row["name"]: row for row in recovered.report.steps}
    for name, row in rows.items():
        if row.get("started_at") and row.get("finished_at"):
            ctx.add_step(
                f"recover: {row['title']}",
                _phase(name),
                _epoch(row["started_at"]),
                _epoch(row["finished_at"]),
            )
    by_tier = {t.name: t for t in catalogue.tiers}
    for tier in recovered.tiers:
        validated = (rows.get(f"validate-{tier['tier']}") or {}).get("result") or {}
        result.tiers.append(
            {
                **tier,
                "declared_rto_s": by_tier[tier["tier"]].rto_s,
                "services": {
                    name: {k: v for k, v in state.items() if k in ("healthy", "healthy_after_s")}
                    | {"detail": state.get("detail", "")}
                    for name, state in (validated.get("services") or {}).items()
                },
            }
        )
    critical = result.tiers[0] if result.tiers else {}
    if critical.get("elapsed_s") is not None:
        ctx.service_back(failure + critical["elapsed_s"])

    with ctx.step("verify: data, the status page at each step, every audience told", "verify"):
        recovered_data = _read_back(aws, outputs, region, database)
        result.data = check_data(
            [(w, PROMISED) for w in writes], recovered_data, "the DR region at the failure"
        )
        result.rpo_s = measure_rpo(writes, recovered_data, failure)
        history = page_history(aws, outputs)
        edge = LocalEdge(aws, outputs["statusPage"]).start()
        ctx.cleanups.append(edge.stop)
        viewer = edge.fetch("/")[2].decode("utf-8", "replace")
        result.checks += check_page(history, result.tiers, catalogue, viewer)
        published = json.dumps(history) + viewer + (journal.read_text() if journal.exists() else "")
        published += "".join(d.subject + d.message for d in receiver.deliveries)
        result.checks += check_notifications(receiver, tokens, published)
    result.evidence = {
        "region": region,
        "services": {s.name: s.tier for s in catalogue.services},
        "page_versions": len(history),
        "final_page": history[-1]["overall"] if history else None,
        # per receiver (chat, pager, board, press), never the token in its path
        "deliveries": dict(Counter(d.path.strip("/").split("/")[0] for d in receiver.deliveries)),
        "recover_status": recovered.report.status,
    }
