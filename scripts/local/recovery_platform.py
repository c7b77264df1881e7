"""The local platform ``drctl recover`` runs against in tests and in the priority-rebuild drill:

- stand-in services: real HTTP servers on 127.0.0.1 whose ``/healthz`` answers 200 once they are
  "up", and 503 (or 500, or nothing) before, on the schedule a test or a fault sets;
- a webhook receiver on 127.0.0.1 standing in for the chat relay and the paging service: it
  records every POST (SNS's JSON envelope) by path;
- moto seeded with exactly what the program declares: the names come from evaluating the real
  ``__main__.py`` (bucket, secret and parameter names, the status page's copies, the topics) and
  the subscriptions are the TopicSubscription resources the NotificationTopics component declares
  for the given contacts, replayed into moto with their filter policies.

Every server here binds 127.0.0.1 only; ``stop()`` ends it (tests and the drill always call it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from components.contacts import CONTACTS_NAMESPACE
from scripts.local.evaluate import Evaluation, evaluate_stack, read_stack_config


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent: a fault may stop a server before its owner does."""
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _HealthHandler(_Quiet):
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        service: StandInService = self.server.owner  # type: ignore[attr-defined]
        status = service.status_now()
        service.requests += 1
        body = json.dumps({"service": service.name, "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class StandInService(_Server):
    """One service's health endpoint. ``up_after_s``: seconds after ``bring_up()`` before it
    answers 200 (503 until then); ``failing``: answer ``failing`` (e.g. 500) whatever the time."""

    def __init__(self, name: str, *, up_after_s: float = 0.0, failing: int | None = None):
        super().__init__(_HealthHandler)
        self.name, self.up_after_s, self.failing = name, up_after_s, failing
        self.up_at: float | None = None  # None: not brought up yet (503)
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def bring_up(self) -> None:
        self.up_at = time.monotonic() + self.up_after_s

    def status_now(self) -> int:
        if self.failing is not None:
            return self.failing
        return 200 if self.up_at is not None and time.monotonic() >= self.up_at else 503


class _ReceiverHandler(_Quiet):
    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        receiver: WebhookReceiver = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        receiver.record(self.path, raw)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@dataclass
class Delivery:
    path: str
    raw: str
    at: float
    envelope: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return str(self.envelope.get("Subject") or "")

    @property
    def message(self) -> str:
        return str(self.envelope.get("Message") or "")


class WebhookReceiver(_Server):
    """Records every POST: the chat relay and the pager of a drill or a test."""

    def __init__(self) -> None:
        super().__init__(_ReceiverHandler)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def record(self, path: str, raw: str) -> None:
        try:
            envelope = json.loads(raw)
        except json.JSONDecodeError:
            envelope = {}
        with self._lock:
            self.deliveries.append(Delivery(path, raw, time.time(), envelope))

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == "/" + path.lstrip("/")]


class _EdgeHandler(_Quiet):
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        edge: LocalEdge = self.server.owner  # type: ignore[attr-defined]
        status, headers, body = edge.fetch(self.path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LocalEdge(_Server):
    """What the StatusPage distribution does for a viewer, on 127.0.0.1: a signed GetObject from
    the first origin of the group, the second one when the first fails with a failover status
    code or does not answer (components/status_page.py), and the default root object for ``/``.
    Caching is left out: every request reads the copies."""

    def __init__(self, aws: Any, outputs: Mapping[str, Any]):
        from components.status_page import FAILOVER_STATUS_CODES

        super().__init__(_EdgeHandler)
        self.aws = aws
        buckets = outputs["bucketNames"]
        self.origins = [(r, buckets[r]) for r in (outputs["homeRegion"], outputs["failoverRegion"])]
        self.failover_codes = set(FAILOVER_STATUS_CODES)
        self.served_from: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def fetch(self, path: str) -> tuple[int, dict[str, str], bytes]:
        key = path.split("?", 1)[0].lstrip("/") or "index.html"
        status = 502
        for region, bucket in self.origins:
            try:
                obj = self.aws.client("s3", region).get_object(Bucket=bucket, Key=key)
            except Exception as exc:  # noqa: BLE001 - an error status or no answer at all
                response = getattr(exc, "response", {}) or {}
                status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 504)
                if status in self.failover_codes or not response:
                    continue
                return status, {}, b""
            self.served_from.append(region)
            headers = {"Content-Type": obj.get("ContentType") or "application/octet-stream"}
            if obj.get("CacheControl"):
                headers["Cache-Control"] = obj["CacheControl"]
            return 200, headers, obj["Body"].read()
        return status, {}, b""


# ---------------------------------------------------------------------------------------------
# The cloud: moto seeded from the declared program


def declared(
    stack: str,
    contacts: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate the real program for ``stack`` with ``contacts`` (secret config, keys without
    the namespace: oncall, team, stakeholders) and config ``overrides``."""
    config = dict(read_stack_config(stack))
    for key, value in (overrides or {}).items():
        config[key if ":" in key else f"platform-dr:{key}"] = value
    secret_keys = []
    for name, value in (contacts or {}).items():
        config[f"{CONTACTS_NAMESPACE}:{name}"] = value
        secret_keys.append(f"{CONTACTS_NAMESPACE}:{name}")
    return evaluate_stack(stack, config=config, secret_keys=tuple(secret_keys))


def drill_contacts(receiver: WebhookReceiver, tokens: Mapping[str, str]) -> dict[str, Any]:
    """Contacts config whose every endpoint is ``receiver``, one path per audience with its
    token in it (as a paging service's or chat relay's URL carries one): on-call level 0
    (``pager/``), the team chat (``chat/``), stakeholders (``board/``) and media (``press/``).
    ``tokens``: level0, chat, board, press."""
    return {
        "oncall": [{"https": receiver.url(f"pager/{tokens['level0']}")}],
        "team": [{"https": receiver.url(f"chat/{tokens['chat']}")}],
        "stakeholders": [
            {"https": receiver.url(f"board/{tokens['board']}"), "audiences": ["stakeholders"]},
            {"https": receiver.url(f"press/{tokens['press']}"), "audiences": ["media"]},
        ],
    }


def _versioned_bucket(s3: Any, name: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _secret_value(value: Any) -> Any:
    """A secret Output recorded by the mocks: {<sig>: <secret sig>, "value": ...}."""
    if isinstance(value, Mapping) and "value" in value:
        return value["value"]
    return value


def seed(
    aws: Any,
    evaluation: Evaluation,
    region: str,
    *,
    zone: str,
    secret_regions: Sequence[str] = (),
) -> dict[str, Any]:
    """Create in moto what ``evaluation`` declares for recovering into ``region``, and return
    its outputs with moto's own ids (zone id, topic ARNs) in place of the mocks'."""
    outputs = json.loads(json.dumps(evaluation.outputs, default=str))
    for copies in outputs["buckets"].values():
        _versioned_bucket(aws.client("s3", region), copies[region], region)
    for name, arns in outputs["secretArns"].items():
        for secret_region in secret_regions or list(arns):
            aws.client("secretsmanager", secret_region).create_secret(
                Name=name, SecretString=json.dumps({"placeholder": name})
            )
    ssm = aws.client("ssm", region)
    for parameter in outputs["configParameterNames"]:
        ssm.put_parameter(Name=parameter, Value="drill", Type="String", Overwrite=True)
    r53 = aws.client("route53", "us-east-1")
    zone_id = r53.create_hosted_zone(Name=zone, CallerReference=f"drill-{time.time_ns()}")[
        "HostedZone"
    ]["Id"].split("/")[-1]
    outputs["drStandby"]["zoneId"] = zone_id
    return seed_communication(aws, evaluation, outputs)


def seed_communication(aws: Any, evaluation: Evaluation, outputs: dict[str, Any]) -> dict[str, Any]:
    """Create the status page's copies and the team and stakeholder topics with their declared
    subscriptions; ``outputs`` gets moto's topic ARNs in place of the mocks'."""
    for copy_region, bucket in outputs["statusPage"]["bucketNames"].items():
        _versioned_bucket(aws.client("s3", copy_region), bucket, copy_region)
    topic_arns: dict[str, str] = {}
    for kind in ("teamTopicArns", "stakeholderTopicArns"):
        for topic_region, arn in outputs["communication"][kind].items():
            created = aws.client("sns", topic_region).create_topic(Name=arn.rsplit(":", 1)[-1])
            topic_arns[arn] = created["TopicArn"]
            outputs["communication"][kind][topic_region] = created["TopicArn"]
    for sub in evaluation.of_type("aws:sns/topicSubscription:TopicSubscription"):
        inputs = sub.inputs
        attributes = {"FilterPolicy": inputs["filterPolicy"]} if inputs.get("filterPolicy") else {}
        aws.client("sns", inputs["region"]).subscribe(
            TopicArn=topic_arns[inputs["topic"]],
            Protocol=inputs["protocol"],
            Endpoint=_secret_value(inputs["endpoint"]),
            Attributes=attributes,
        )
    return outputs
