"""Messages per audience (templates/messages/<audience>.md) and their delivery through the
NotificationTopics component's SNS topics (components/notification_topics.py).

- team: the team topic, attribute ``audience=team``; a page adds ``escalation-level=<n>``, which
  the on-call contacts' filter policies match (contact *i* gets levels >= *i*).
- stakeholders / media: the stakeholder topic, attribute ``audience=stakeholders|media``.
- users: not SNS; their text goes onto the status page (scripts/dataops/status_page.py).

Topics are tried in the order the stack exports them (DR region first): a message goes out once,
through the first topic that accepts it.

No secret travels: templates only have the placeholders listed in templates/README.md, none of
which holds one, and every rendered message is scrubbed of the known secret values (contact
endpoints, DSN passwords) and of anything shaped like a credential before it is published.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.contacts import AUDIENCE_ATTRIBUTE, ESCALATION_ATTRIBUTE
from scripts.dataops.status_page import TEMPLATES

MESSAGES = TEMPLATES / "messages"
AUDIENCES = ("users", "team", "stakeholders", "media")
PLACEHOLDERS = frozenset(
    {
        "stack",
        "region",
        "incident",
        "started_at",
        "now",
        "status_url",
        "tier",
        "tier_rto",
        "deadline",
        "services",
        "service",
        "owner",
        "detail",
        "elapsed",
        "verdict",
        "reason",
        "level",
        "step",
        "budget",
        "summary",
    }
)
SUBJECT_MAX = 100  # SNS: one line, printable ASCII, at most 100 characters
REDACTED = "[redacted]"
_CREDENTIAL_PATTERNS = (
    re.compile(r"(?<=://)[^/\s:@]+:[^@\s/]+(?=@)"),  # user:password@ in a URL or DSN
    re.compile(r"(?i)(?<=password=)\S+"),
    re.compile(r"(?i)(?<=secret=)\S+"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # an AWS access key id
)


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Message:
    audience: str
    event: str
    subject: str
    body: str


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secret values (longest first) and anything shaped like a credential."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _ascii_line(text: str) -> str:
    line = " ".join(text.split()).encode("ascii", "ignore").decode()
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 3] + "..."


class Templates:
    """Every ``## <event>`` section of every audience file, validated when loaded."""

    def __init__(self, directory: Path = MESSAGES):
        self.sections: dict[tuple[str, str], tuple[str, str]] = {}
        for audience in AUDIENCES:
            path = directory / f"{audience}.md"
            if not path.exists():
                raise TemplateError(f"{path}: missing (one file per audience: {AUDIENCES})")
            self._parse(audience, path)

    def _parse(self, audience: str, path: Path) -> None:
        chunks = re.split(r"^## +(\S+) *$", path.read_text(), flags=re.M)
        for event, text in zip(chunks[1::2], chunks[2::2], strict=True):
            lines = text.strip().splitlines()
            if not lines or not lines[0].startswith("Subject: "):
                raise TemplateError(f"{path}: section {event} must start with 'Subject: '")
            subject, body = lines[0][len("Subject: ") :], "\n".join(lines[1:]).strip()
            for found in string.Template(subject + "\n" + body).get_identifiers():
                if found not in PLACEHOLDERS:
                    raise TemplateError(
                        f"{path}: section {event} uses ${found}; placeholders are "
                        f"{', '.join(sorted(PLACEHOLDERS))}"
                    )
            self.sections[(audience, event)] = (subject, body)

    def events(self, audience: str) -> list[str]:
        return [e for a, e in self.sections if a == audience]

    def has(self, audience: str, event: str) -> bool:
        return (audience, event) in self.sections

    def render(
        self, audience: str, event: str, values: Mapping[str, Any], secrets: Iterable[str] = ()
    ) -> Message:
        subject, body = self.sections[(audience, event)]
        known = {k: str(v) for k, v in values.items() if k in PLACEHOLDERS}
        secrets = list(secrets)
        return Message(
            audience,
            event,
            _ascii_line(scrub(string.Template(subject).safe_substitute(known), secrets)),
            scrub(string.Template(body).safe_substitute(known), secrets),
        )


class Notifier:
    """Publishes messages to the team and stakeholder topics (``communication`` stack output)."""

    def __init__(self, aws: Any, outputs: Mapping[str, Any]):
        self._aws = aws
        self.team_topics: dict[str, str] = dict(outputs.get("teamTopicArns") or {})
        self.stakeholder_topics: dict[str, str] = dict(outputs.get("stakeholderTopicArns") or {})
        self.escalation_levels = int(outputs.get("escalationLevels") or 0)

    def send(self, message: Message, level: int | None = None) -> dict[str, Any]:
        if message.audience == "users":
            raise ValueError("user messages go onto the status page, not a topic")
        topics = self.team_topics if message.audience == "team" else self.stakeholder_topics
        attributes = {AUDIENCE_ATTRIBUTE: {"DataType": "String", "StringValue": message.audience}}
        if level is not None:
            attributes[ESCALATION_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(level)}
        errors: dict[str, str] = {}
        for region, arn in topics.items():
            try:
                sent = self._aws.client("sns", region).publish(
                    TopicArn=arn,
                    Subject=message.subject,
                    Message=message.body,
                    MessageAttributes=attributes,
                )
            except Exception as exc:  # noqa: BLE001 - the next region's topic may answer
                errors[region] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                continue
            return {
                "audience": message.audience,
                "event": message.event,
                "level": level,
                "region": region,
                "message_id": sent.get("MessageId"),
                "errors": errors,
            }
        return {
            "audience": message.audience,
            "event": message.event,
            "level": level,
            "region": None,
            "errors": errors or {"-": "no topic configured"},
        }
