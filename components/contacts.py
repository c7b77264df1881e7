"""On-call contacts, the escalation policy, and who hears what: secret stack config.

- ``platform-dr-contacts:oncall``: the escalation policy, a list of contacts in order (level 0
  is paged first; a step that overruns its share of the tier RTO pages the next level). Each
  entry has ``email`` and/or ``https`` (a paging or chat webhook) and an optional ``name``.
- ``platform-dr-contacts:team``: endpoints of the team topic (chat webhooks, the team's list).
- ``platform-dr-contacts:stakeholders``: endpoints of the stakeholder topic; each may narrow
  ``audiences`` to ``stakeholders`` (investor and partner updates) and/or ``media`` (the
  holding statement, for the communications lead).

Every key must be secret config (``pulumi config set --secret --path
'platform-dr-contacts:oncall[0].email' ...``): the values become SNS subscription endpoints and
nothing else. Errors name the key and never show the value; ``repr`` of every type here hides
it; ``Contacts.secret_values()`` is what notifications are scrubbed against.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.objectives import PROJECT, ConfigError, _suggest

CONTACTS_NAMESPACE = f"{PROJECT}-contacts"
# SNS message attributes the subscriptions filter on (components/notification_topics.py) and the
# publishers set (scripts/dataops/notify.py).
ESCALATION_ATTRIBUTE = "escalation-level"
AUDIENCE_ATTRIBUTE = "audience"


def _structured(key: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(key, HIDDEN, "a list (pulumi config set --secret --path)") from None
    return value


class _Hidden:
    """What a ConfigError shows instead of a secret value."""

    def __repr__(self) -> str:
        return "[secret]"


HIDDEN: Any = _Hidden()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_WEBHOOK = re.compile(r"^https://[^\s/]+(/\S*)?$")
_LOOPBACK_WEBHOOK = re.compile(r"^http://(127\.0\.0\.1|localhost)(:\d+)?(/\S*)?$")
AUDIENCES: tuple[str, ...] = ("users", "team", "stakeholders", "media")
STAKEHOLDER_AUDIENCES: tuple[str, ...] = ("stakeholders", "media")


@dataclass(frozen=True, repr=False)
class Endpoint:
    """One SNS subscription endpoint: an email address or an HTTPS webhook (secret)."""

    protocol: str  # email | https | http (loopback only: drills and tests)
    address: str
    audiences: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Endpoint({self.protocol}, [secret])"


@dataclass(frozen=True, repr=False)
class Contact:
    """One on-call contact; its position in the list is its escalation level."""

    level: int
    endpoints: tuple[Endpoint, ...]

    def __repr__(self) -> str:
        return f"Contact(level={self.level}, {len(self.endpoints)} endpoint(s), [secret])"


@dataclass(frozen=True, repr=False)
class Contacts:
    oncall: tuple[Contact, ...] = ()
    team: tuple[Endpoint, ...] = ()
    stakeholders: tuple[Endpoint, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Contacts({len(self.oncall)} on-call, {len(self.team)} team, "
            f"{len(self.stakeholders)} stakeholder endpoint(s), [secret])"
        )

    @property
    def escalation_levels(self) -> int:
        return len(self.oncall)

    def secret_values(self) -> set[str]:
        """Every value a message must never carry (recover scrubs them from notifications)."""
        endpoints = [e for c in self.oncall for e in c.endpoints] + [*self.team, *self.stakeholders]
        return {e.address for e in endpoints}


def _endpoint(key: str, protocol: str, value: Any, audiences: tuple[str, ...] = ()) -> Endpoint:
    if protocol == "email":
        if not isinstance(value, str) or not _EMAIL.match(value.strip()):
            raise ConfigError(key, HIDDEN, "an email address")
        return Endpoint("email", value.strip(), audiences)
    if not isinstance(value, str):
        raise ConfigError(key, HIDDEN, "an https:// webhook URL")
    value = value.strip()
    if _WEBHOOK.match(value):
        return Endpoint("https", value, audiences)
    if _LOOPBACK_WEBHOOK.match(value):
        return Endpoint("http", value, audiences)
    raise ConfigError(key, HIDDEN, "an https:// webhook URL (plain http only on 127.0.0.1)")


def _endpoints(
    key: str, entry: Any, *, named: bool = False, audiences_allowed: bool = False
) -> tuple[Endpoint, ...]:
    allowed_fields = ("email", "https") + (("name",) if named else ())
    allowed_fields += ("audiences",) if audiences_allowed else ()
    if not isinstance(entry, Mapping):
        raise ConfigError(key, HIDDEN, f"a map with {' and/or '.join(allowed_fields)}")
    for name in entry:
        if name not in allowed_fields:
            raise ConfigError(
                f"{key}.{name}",
                HIDDEN,
                f"one of {', '.join(allowed_fields)}{_suggest(str(name), allowed_fields)}",
            )
    audiences: tuple[str, ...] = ()
    if "audiences" in entry:
        raw = entry["audiences"]
        if not isinstance(raw, list) or not raw or any(a not in STAKEHOLDER_AUDIENCES for a in raw):
            raise ConfigError(
                f"{key}.audiences", raw, f"a list of {', '.join(STAKEHOLDER_AUDIENCES)}"
            )
        audiences = tuple(raw)
    found = [
        _endpoint(f"{key}.{protocol}", protocol, entry[protocol], audiences)
        for protocol in ("email", "https")
        if protocol in entry
    ]
    if not found:
        raise ConfigError(key, HIDDEN, "an email and/or an https webhook")
    return tuple(found)


def _list(key: str, value: Any) -> list:
    value = _structured(key, value)
    if not isinstance(value, list):
        raise ConfigError(key, HIDDEN, "a list (pulumi config set --secret --path 'key[0].email')")
    return value


def parse_contacts(raw: Mapping[str, Any], secret_keys: Sequence[str] | None = None) -> Contacts:
    """On-call contacts (escalation order), team and stakeholder endpoints from secret config.

    ``secret_keys``: the config keys the engine reports as secret; each contacts key that is set
    must be one of them (None skips that check, for files drctl reads). Errors never show a value.
    """
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(f"{CONTACTS_NAMESPACE}:"):
            name = key.split(":", 1)[1]
            if name not in ("oncall", "team", "stakeholders"):
                raise ConfigError(
                    key,
                    HIDDEN,
                    "one of oncall, team, stakeholders"
                    + _suggest(name, ("oncall", "team", "stakeholders")),
                )
            if secret_keys is not None and key not in secret_keys:
                raise ConfigError(
                    key,
                    HIDDEN,
                    "secret config: contacts are set with pulumi config set --secret --path "
                    f"'{key}[0].email' ...; remove the plaintext value from the stack file",
                )
            values[name] = value
    oncall = tuple(
        Contact(i, _endpoints(f"{CONTACTS_NAMESPACE}:oncall[{i}]", entry, named=True))
        for i, entry in enumerate(_list(f"{CONTACTS_NAMESPACE}:oncall", values.get("oncall", [])))
    )
    team = tuple(
        e
        for i, entry in enumerate(_list(f"{CONTACTS_NAMESPACE}:team", values.get("team", [])))
        for e in _endpoints(f"{CONTACTS_NAMESPACE}:team[{i}]", entry)
    )
    stakeholder_key = f"{CONTACTS_NAMESPACE}:stakeholders"
    stakeholders = tuple(
        e
        for i, entry in enumerate(_list(stakeholder_key, values.get("stakeholders", [])))
        for e in _endpoints(f"{stakeholder_key}[{i}]", entry, audiences_allowed=True)
    )
    return Contacts(oncall, team, stakeholders)


def load_contacts() -> Contacts:
    """The running stack's contacts; every contacts key must be secret config."""
    from components.services import runtime_config

    merged, secret = runtime_config()
    raw = {k: v for k, v in merged.items() if k.startswith(f"{CONTACTS_NAMESPACE}:")}
    return parse_contacts(raw, secret_keys=secret)
