"""The service catalogue: what comes back after a disaster, in what order, needing what data,
checked how, and owned by whom.

Like the objectives, this is typed stack config validated before any resource is declared: a bad
value raises ``ConfigError`` naming the key, the value and what is allowed. It sits at the
objectives' level (no Pulumi resources), so components, policy, posture and ``drctl`` import it.

Spec, "Service Restoration Priority": critical (user authentication, core music generation), then
important (social features, creator dashboard), then enhanced (analytics, advanced features),
then optional (non-essential features and integrations). A tier's RTO is not a number of its
own: it is the RTO of the data class the spec gives its systems (critical 1 h, important 4 h,
non-critical 24 h), read from the objectives, so changing ``criticalRto`` moves the tier too.

Config:

- ``platform-dr:services``: the catalogue's services, comma-separated; the order is the order
  within a tier. Default: the spec's six.
- ``platform-dr-services:<name>``: structured config overriding fields of one service (or
  declaring a new one), set with ``pulumi config set --path
  'platform-dr-services:user-auth.owner' identity-team``. Fields: tier, title, dependsOn (list of
  ``database``, ``config``, ``dataset:<name>``, ``secret:<name>``), health (a path such as
  ``/healthz`` on the service's record, or an https URL), owner, record (DNS label).

Contacts and escalation (secret config) live in components/contacts.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.objectives import CONFIG_KEYS, PROJECT, ConfigError, Objectives, _suggest

TIERS: tuple[str, ...] = ("critical", "important", "enhanced", "optional")
# The spec's RTO table has three rows (critical, important, non-critical systems); the two
# non-critical tiers share the operational class's RTO and differ only in order.
TIER_CLASS: dict[str, str] = {
    "critical": "critical",
    "important": "important",
    "enhanced": "operational",
    "optional": "operational",
}
SERVICES_KEY = "services"
SERVICES_NAMESPACE = f"{PROJECT}-services"

# The platform's file datasets (spec: creator content, user assets, the generated-music archive):
# __main__.py declares one ReplicatedBucket per entry, and services depend on them by name.
DATASETS: tuple[tuple[str, str, str], ...] = (
    # (dataset, data class, archive profile)
    ("creator-audio", "critical", "standard"),
    ("user-assets", "important", "standard"),
    ("generated-archive", "important", "archive-heavy"),
)
DATASET_NAMES: tuple[str, ...] = tuple(d for d, _, _ in DATASETS)

DEPENDENCY_KINDS: tuple[str, ...] = ("database", "config", "dataset", "secret")
SERVICE_FIELDS: tuple[str, ...] = ("tier", "title", "dependsOn", "health", "owner", "record")
DEFAULT_HEALTH = "/healthz"

# The spec's services. Secret names are the Pulumi.yaml defaults of apiKeys and integrations.
DEFAULT_SERVICES: dict[str, dict[str, Any]] = {
    "user-auth": {
        "tier": "critical",
        "title": "Sign-in and accounts",
        "dependsOn": ["database", "secret:email", "config"],
        "owner": "identity-team",
    },
    "music-generation": {
        "tier": "critical",
        "title": "Music generation",
        "dependsOn": ["database", "dataset:creator-audio", "secret:ai-model", "config"],
        "owner": "generation-team",
    },
    "social-features": {
        "tier": "important",
        "title": "Social features",
        "dependsOn": ["database", "dataset:user-assets", "config"],
        "owner": "social-team",
    },
    "creator-dashboard": {
        "tier": "important",
        "title": "Creator dashboard",
        "dependsOn": ["database", "dataset:creator-audio", "secret:payments", "config"],
        "owner": "creator-team",
    },
    "analytics": {
        "tier": "enhanced",
        "title": "Analytics and advanced features",
        "dependsOn": ["database", "secret:analytics", "config"],
        "owner": "data-team",
    },
    "integrations": {
        "tier": "optional",
        "title": "Integrations and non-essential features",
        "dependsOn": ["dataset:generated-archive", "secret:cdn", "config"],
        "owner": "platform-team",
    },
}
# The default order is the services key's default (one place: CONFIG_KEYS and Pulumi.yaml).
DEFAULT_SERVICE_ORDER: str = next(k.default for k in CONFIG_KEYS if k.name == SERVICES_KEY)

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/%-]*$")
_HTTPS = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/%{}-]*)?$")


# ---------------------------------------------------------------------------------------------
# The catalogue


@dataclass(frozen=True)
class Dependency:
    """Data a service needs before it can start: the database, config, a dataset or a secret."""

    kind: str
    name: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind

    def describe(self) -> str:
        return f"{self.kind} {self.name}" if self.name else self.kind


@dataclass(frozen=True)
class Service:
    """One service of the catalogue (docs/communication.md and docs/runbooks/recover.md)."""

    name: str
    title: str
    tier: str
    depends_on: tuple[Dependency, ...]
    health: str
    owner: str
    record: str

    def health_url(self, zone: str) -> str:
        """Where recover checks the service: the health path on its record, or a full URL."""
        if self.health.startswith("https://"):
            return self.health
        return f"https://{self.record}.{zone}{self.health}"

    def endpoint(self, region: str, zone: str) -> str:
        """The service's regional endpoint; recover points ``<record>.<zone>`` at it."""
        return f"{self.record}.{region}.{zone}"

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "tier": self.tier,
            "dependsOn": [d.ref for d in self.depends_on],
            "health": self.health,
            "owner": self.owner,
            "record": self.record,
        }


@dataclass(frozen=True)
class Tier:
    """A restoration tier: its services, and the RTO of the data class the spec gives it."""

    name: str
    data_class: str
    rto_s: int
    services: tuple[Service, ...]


@dataclass(frozen=True)
class Catalogue:
    tiers: tuple[Tier, ...]  # in restoration order; tiers without a service are left out

    @property
    def services(self) -> list[Service]:
        return [s for t in self.tiers for s in t.services]

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)

    def to_record(self) -> dict[str, Any]:
        return {
            "tiers": [
                {
                    "name": t.name,
                    "dataClass": t.data_class,
                    "rtoS": t.rto_s,
                    "services": [s.to_record() for s in t.services],
                }
                for t in self.tiers
            ]
        }


def _project_key(key: str) -> str:
    return key.split(":", 1)[1] if key.startswith(f"{PROJECT}:") else key


def _structured(key: str, value: Any, allowed: str) -> Any:
    """Structured config reaches a program as JSON text; a stack file read by drctl as YAML."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(key, value, allowed) from None
    return value


def _string(key: str, value: Any, allowed: str, pattern: re.Pattern | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, allowed)
    value = value.strip()
    if pattern is not None and not pattern.match(value):
        raise ConfigError(key, value, allowed)
    return value


def parse_dependency(
    key: str,
    ref: Any,
    *,
    datasets: Sequence[str] = DATASET_NAMES,
    secret_names: Sequence[str] | None = None,
) -> Dependency:
    allowed = (
        "database, config, dataset:<name> or secret:<name>"
        f" (datasets: {', '.join(datasets)}"
        + (f"; secrets: {', '.join(secret_names)}" if secret_names is not None else "")
        + ")"
    )
    if not isinstance(ref, str):
        raise ConfigError(key, ref, allowed)
    kind, _, name = ref.strip().partition(":")
    if kind not in DEPENDENCY_KINDS:
        raise ConfigError(key, ref, allowed + _suggest(kind, DEPENDENCY_KINDS))
    if kind in ("database", "config"):
        if name:
            raise ConfigError(key, ref, f"{kind} takes no name; {allowed}")
        return Dependency(kind)
    known = datasets if kind == "dataset" else secret_names
    if not name or (known is not None and name not in known):
        raise ConfigError(key, ref, allowed + _suggest(name, known or ()))
    return Dependency(kind, name)


def _default_title(name: str) -> str:
    return name.replace("-", " ").capitalize()


def _service(
    name: str,
    fields: Mapping[str, Any],
    *,
    datasets: Sequence[str],
    secret_names: Sequence[str] | None,
) -> Service:
    base = f"{SERVICES_NAMESPACE}:{name}"
    for field_name in fields:
        if field_name not in SERVICE_FIELDS:
            raise ConfigError(
                f"{base}.{field_name}",
                fields[field_name],
                f"a service field: {', '.join(SERVICE_FIELDS)}"
                + _suggest(field_name, SERVICE_FIELDS),
            )
    for required in ("tier", "dependsOn", "owner"):
        if required not in fields:
            raise ConfigError(
                f"{base}.{required}",
                "(missing)",
                f"required for a service that is not one of the spec's defaults "
                f"({', '.join(DEFAULT_SERVICES)}); set it with pulumi config set --path",
            )
    tier = fields["tier"]
    if tier not in TIERS:
        raise ConfigError(
            f"{base}.tier", tier, f"one of {', '.join(TIERS)}{_suggest(str(tier), TIERS)}"
        )
    deps_raw = fields["dependsOn"]
    if not isinstance(deps_raw, list):
        raise ConfigError(f"{base}.dependsOn", deps_raw, "a list such as ['database', 'config']")
    depends_on = tuple(
        parse_dependency(
            f"{base}.dependsOn[{i}]", ref, datasets=datasets, secret_names=secret_names
        )
        for i, ref in enumerate(deps_raw)
    )
    refs = [d.ref for d in depends_on]
    if len(set(refs)) != len(refs):
        raise ConfigError(f"{base}.dependsOn", deps_raw, "each dependency once")
    health = _string(
        f"{base}.health",
        fields.get("health", DEFAULT_HEALTH),
        "a path on the service's record such as /healthz, or an https:// URL",
    )
    if not (_PATH.match(health) or _HTTPS.match(health)):
        raise ConfigError(
            f"{base}.health", health, "a path such as /healthz, or an https:// URL (TLS only)"
        )
    return Service(
        name=name,
        title=_string(f"{base}.title", fields.get("title", _default_title(name)), "a title"),
        tier=tier,
        depends_on=depends_on,
        health=health,
        owner=_string(f"{base}.owner", fields["owner"], "the owning team's name"),
        record=_string(
            f"{base}.record",
            fields.get("record", name),
            "a DNS label (lowercase letters, digits, hyphens)",
            _LABEL,
        ),
    )


def parse_catalogue(
    raw: Mapping[str, Any],
    objectives: Objectives,
    *,
    datasets: Sequence[str] = DATASET_NAMES,
    secret_names: Sequence[str] | None = None,
) -> Catalogue:
    """The catalogue from stack config (full keys, as in Pulumi.<stack>.yaml).

    ``secret_names``: the secrets the stack declares (apiKeys and integrations); None skips the
    name check of ``secret:<name>`` dependencies.
    """
    order_raw = None
    overrides: dict[str, Any] = {}
    for key, value in raw.items():
        if _project_key(key) == SERVICES_KEY:
            order_raw = value
        elif key.startswith(f"{SERVICES_NAMESPACE}:"):
            overrides[key.split(":", 1)[1]] = value
    order_text = DEFAULT_SERVICE_ORDER if order_raw is None else order_raw
    if not isinstance(order_text, str):
        raise ConfigError(SERVICES_KEY, order_raw, "service names, comma-separated")
    names = [n.strip() for n in order_text.split(",") if n.strip()]
    if not names:
        raise ConfigError(SERVICES_KEY, order_raw, "at least one service name")
    for name in names:
        if not _NAME.match(name):
            raise ConfigError(
                SERVICES_KEY, order_raw, f"names of lowercase letters, digits and hyphens: {name!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(SERVICES_KEY, order_raw, "each service once")
    for name in overrides:
        if name not in names:
            raise ConfigError(
                f"{SERVICES_NAMESPACE}:{name}",
                overrides[name],
                f"a service listed in {PROJECT}:{SERVICES_KEY} ({', '.join(names)})"
                + _suggest(name, names),
            )
    services: list[Service] = []
    for name in names:
        fields = dict(DEFAULT_SERVICES.get(name, {}))
        override = _structured(
            f"{SERVICES_NAMESPACE}:{name}",
            overrides.get(name, {}),
            "a map of service fields (pulumi config set --path)",
        )
        if not isinstance(override, Mapping):
            raise ConfigError(
                f"{SERVICES_NAMESPACE}:{name}",
                override,
                f"a map of service fields: {', '.join(SERVICE_FIELDS)}",
            )
        fields.update(override)
        services.append(_service(name, fields, datasets=datasets, secret_names=secret_names))
    owners: dict[str, str] = {}
    for service in services:
        if service.record in owners:
            key = f"{SERVICES_NAMESPACE}:{service.name}.record"
            raise ConfigError(
                key, service.record, f"a DNS record of its own ({owners[service.record]} has it)"
            )
        owners[service.record] = service.name
    tiers = []
    for tier in TIERS:
        members = tuple(s for s in services if s.tier == tier)
        if members:
            objective = objectives.of(TIER_CLASS[tier])
            tiers.append(Tier(tier, objective.name, objective.rto_s, members))
    return Catalogue(tuple(tiers))


def runtime_config() -> tuple[dict[str, Any], list[str]]:
    """Every config value the engine passed to the program (all namespaces), and the secret keys."""
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = [k for k in merged if runtime_config.is_config_secret(k)]
    return merged, secret


def load_catalogue(objectives: Objectives, secret_names: Sequence[str] | None) -> Catalogue:
    """The running stack's catalogue (what __main__.py calls before declaring anything)."""
    merged, _ = runtime_config()
    raw = {k: v for k, v in merged.items() if k.startswith((f"{PROJECT}:", SERVICES_NAMESPACE))}
    return parse_catalogue(raw, objectives, secret_names=secret_names)


__all__ = [
    "Catalogue",
    "DATASETS",
    "DATASET_NAMES",
    "DEFAULT_SERVICES",
    "Dependency",
    "SERVICES_NAMESPACE",
    "Service",
    "TIERS",
    "TIER_CLASS",
    "Tier",
    "load_catalogue",
    "parse_catalogue",
]
