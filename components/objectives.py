"""The recovery-objectives model: the one place that knows the spec's numbers.

Every other part imports this module (the typed model itself is in objectives_model.py and
re-exported here; this module holds the config keys, their parsing, tags and the record).
Components derive their settings from an ``Objectives``
value, and the policy rules and ``drctl posture`` check declared settings against it. Stack config
is parsed and validated here *before* any resource is declared, so a bad value never leaves a
half-declared stack behind.

Config keys (namespace ``platform-dr``) are flat scalars so that ``pulumi config set`` works on each
one. Durations are strings with a unit: ``90s``, ``15m``, ``1h``, ``7d``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

# The typed model and its units live in objectives_model.py; this module re-exports them, so
# ``components.objectives`` stays the one import for the model.
from components.objectives_model import (  # noqa: F401
    _MISSING,
    AWS_REGIONS,
    DATA_CLASSES,
    DAY,
    DB_BACKENDS,
    DEFAULT_CLASS_OBJECTIVES,
    HOUR,
    MAX_CRITICAL_RPO_S,
    MINUTE,
    OBJECT_LOCK_MODES,
    PROJECT,
    ClassObjective,
    ConfigError,
    DatabaseSchedule,
    Objectives,
    Regions,
    format_duration,
    parse_duration,
)

PITR_MIN_DAYS, PITR_MAX_DAYS = 1, 35  # RDS' own bounds for backup_retention_period


@dataclass(frozen=True)
class ConfigKey:
    """One declared config key. Pulumi.yaml mirrors these (a test keeps the two in step)."""

    name: str
    type: str  # "string" | "integer" | "boolean"
    default: Any
    description: str
    required: bool = False
    # Keys that name real infrastructure: required (no placeholder default) when dbBackend is one
    # of these, unless the stack is a rebuild that reads the value from its source stack.
    needed_by: tuple[str, ...] = ()
    from_source_on_rebuild: bool = False


def _class_keys() -> list[ConfigKey]:
    keys = []
    for cls, values in DEFAULT_CLASS_OBJECTIVES.items():
        keys += [
            ConfigKey(
                f"{cls}Rpo", "string", values["rpo"], f"Recovery point objective of {cls} data."
            ),
            ConfigKey(
                f"{cls}Rto", "string", values["rto"], f"Recovery time objective of {cls} data."
            ),
            ConfigKey(
                f"{cls}Retention",
                "string",
                values["retention"],
                f"How long recovery points of {cls} data are kept; at least the PITR window.",
            ),
        ]
    return keys


CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("primaryRegion", "string", None, "Region that serves production.", required=True),
    ConfigKey("drRegion", "string", None, "Region that takes over on failover.", required=True),
    ConfigKey("thirdRegion", "string", None, "Third region for triple redundancy.", required=True),
    ConfigKey("dbBackend", "string", "self-managed", "Database: rds, self-managed or supabase."),
    # Database connection and RDS choices (components/postgres_backup.py parses these). Passwords
    # are never here: they are `platform-dr-db:<name>` secret config.
    ConfigKey(
        "dbHost",
        "string",
        "",
        "Host of the primary Postgres (self-managed or Supabase).",
        needed_by=("self-managed", "supabase"),
    ),
    ConfigKey("dbPort", "integer", 5432, "Port of the primary and DR Postgres."),
    ConfigKey("dbUsername", "string", "postgres", "Role pulumi-postgresql connects as."),
    ConfigKey(
        "drDbHost",
        "string",
        "",
        "Host of the DR-region Postgres that subscribes.",
        needed_by=("supabase",),
    ),
    ConfigKey(
        "supabaseProjectRef",
        "string",
        "",
        "Supabase project ref (hosted backend).",
        needed_by=("supabase",),
    ),
    ConfigKey("rdsInstanceClass", "string", "db.r6g.large", "Instance class of the RDS backend."),
    ConfigKey("rdsAdoptInstanceId", "string", "", "Existing RDS instance to adopt; empty: create."),
    ConfigKey(
        "rearmRegion",
        "string",
        "",
        "Self-managed: region of a second pgBackRest repository for the promoted DR primary "
        "after a failover; empty: the DR repository alone.",
    ),
    # What `drctl posture` needs to estimate each recovery path's time against the RTO.
    ConfigKey(
        "dbSize",
        "string",
        "100GB",
        "Size of the database to restore, with a unit: MB, GB or TB (1024-based), e.g. 250GB.",
    ),
    ConfigKey(
        "dbWalRate",
        "string",
        "2GB/h",
        "WAL the primary writes at peak, per s, min, h or d, e.g. 2GB/h; sizes a PITR's replay.",
    ),
    ConfigKey("pitrWindowDays", "integer", 7, "Point-in-time recovery window in days (1-35)."),
    *_class_keys(),
    ConfigKey(
        "backupObjectLockMode",
        "string",
        "GOVERNANCE",
        "Object lock mode of backup buckets: GOVERNANCE or COMPLIANCE.",
    ),
    ConfigKey(
        "rebuildFrom",
        "string",
        "",
        "Fully qualified prod stack (org/platform-dr/prod) whose replicas this stack adopts.",
    ),
    ConfigKey(
        "protectData",
        "boolean",
        True,
        "Protect data-holding resources from `pulumi destroy`; false only for throwaway stacks.",
    ),
    # DR standby (components/dr_standby.py parses these).
    ConfigKey(
        "pilotLightRecovery",
        "string",
        "1h",
        "Time a pilot-light DR region needs to scale up; a class RTO at or under it gets a "
        "warm standby.",
    ),
    ConfigKey("drVpcCidr", "string", "10.42.0.0/16", "Private CIDR of the DR-region VPC."),
    ConfigKey(
        "dnsZoneId",
        "string",
        "",
        "Route 53 zone id of the failover records; empty: the stack creates dnsZoneName.",
    ),
    ConfigKey(
        "dnsZoneName",
        "string",
        "",
        "Domain of the hosted zone that holds the database failover records.",
        needed_by=DB_BACKENDS,
    ),
    ConfigKey("dbRecordName", "string", "db", "Label of the database failover record."),
    # The primary region's network, which a self-managed DR standby streams from over VPC peering
    # (components/dr_network.py parses these). A rebuild stack peers with its source stack's DR
    # VPC, which that stack exports, so it needs none of them.
    ConfigKey(
        "primaryVpcId",
        "string",
        "",
        "VPC of the primary database (self-managed): the DR VPC peers with it.",
        needed_by=("self-managed",),
        from_source_on_rebuild=True,
    ),
    ConfigKey(
        "primaryVpcCidr",
        "string",
        "",
        "IPv4 CIDR of primaryVpcId; must not overlap drVpcCidr.",
        needed_by=("self-managed",),
        from_source_on_rebuild=True,
    ),
    ConfigKey(
        "primaryRouteTableIds",
        "string",
        "",
        "Comma-separated route tables of the primary database's subnets; each gets a route back.",
        needed_by=("self-managed",),
        from_source_on_rebuild=True,
    ),
    ConfigKey(
        "primaryDbSecurityGroupId",
        "string",
        "",
        "Security group of the primary database; it admits the DR standby's replication traffic.",
        needed_by=("self-managed",),
        from_source_on_rebuild=True,
    ),
    # AWS Config must record the AWS Backup resource types, or Backup Audit Manager frameworks
    # never evaluate (components/backup_plan.py parses this).
    ConfigKey(
        "awsConfigRecording",
        "string",
        "stack",
        "Who records AWS Backup resources for the audit frameworks: stack (this stack declares a "
        "recorder) or organization (a central recorder; drctl verify checks it).",
    ),
    ConfigKey(
        "example",
        "boolean",
        False,
        "Marks an example stack: reserved example names (.example) are accepted and drctl "
        "render marks its files as examples. A real engine previews it with a warning and refuses "
        "to update it.",
    ),
    # App secrets and config (components/secrets_backup.py parses these). Secret values are
    # never here: they are `platform-dr-secrets:<name>` secret config.
    ConfigKey(
        "featureFlags",
        "string",
        "music-generation=true,social-feed=true,creator-payouts=true,maintenance-mode=false",
        "Feature flags as name=true|false pairs; SSM parameters in the primary and DR region.",
    ),
    ConfigKey(
        "envConfig",
        "string",
        "LOG_LEVEL=info,MAX_UPLOAD_MB=200",
        "Non-secret env config as NAME=value pairs; SSM String parameters in both regions.",
    ),
    ConfigKey(
        "secureEnv",
        "string",
        "DATABASE_URL",
        "Sensitive env var names; SecureString parameters, values from platform-dr-secrets:NAME.",
    ),
    ConfigKey(
        "apiKeys",
        "string",
        "payments,email,ai-model",
        "API key secret names; replicated secrets, values from platform-dr-secrets:NAME.",
    ),
    ConfigKey(
        "integrations",
        "string",
        "cdn,analytics",
        "Integration-settings secret names; replicated secrets, values from platform-dr-secrets.",
    ),
    ConfigKey(
        "secretRotationLambdaArn",
        "string",
        "",
        "Lambda that rotates the API key secrets; empty turns rotation off.",
    ),
    ConfigKey("secretRotationDays", "integer", 30, "Days between API key rotations (1-365)."),
    # The service catalogue (components/services.py parses it with platform-dr-services:<name>).
    ConfigKey(
        "services",
        "string",
        "user-auth,music-generation,social-features,creator-dashboard,analytics,integrations",
        "Services recover brings back, tier by tier, in this order within a tier; fields per "
        "service from the spec's defaults or platform-dr-services:<name> (structured, --path).",
    ),
)
_KEYS_BY_NAME = {k.name: k for k in CONFIG_KEYS}


def _suggest(name: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _typed(key: ConfigKey, value: Any) -> Any:
    """Coerce a raw config value to the key's declared type. Pulumi hands scalars over as text."""
    if key.type == "integer":
        if isinstance(value, bool):
            raise ConfigError(key.name, value, "an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ConfigError(key.name, value, "an integer")
    if key.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ConfigError(key.name, value, "true or false")
    if not isinstance(value, str):
        raise ConfigError(key.name, value, "a string")
    return value.strip()


def _check_unknown_keys(raw: Mapping[str, Any]) -> None:
    class_key = re.compile(r"^(?P<cls>[A-Za-z]+?)(Rpo|Rto|Retention)$")
    for name in raw:
        if name in _KEYS_BY_NAME:
            continue
        match = class_key.match(name)
        if match and match.group("cls") not in DATA_CLASSES:
            cls = match.group("cls")
            raise ConfigError(
                name,
                raw[name],
                f"unknown data class {cls!r}{_suggest(cls, DATA_CLASSES)}; "
                f"data classes are {', '.join(DATA_CLASSES)}",
            )
        raise ConfigError(
            name,
            raw[name],
            f"unknown key{_suggest(name, list(_KEYS_BY_NAME))}; "
            "see the config section of Pulumi.yaml for the keys",
        )


def _region(values: Mapping[str, Any], key: str) -> str:
    region = values[key]
    if region not in AWS_REGIONS:
        raise ConfigError(key, region, f"an AWS region name{_suggest(region, AWS_REGIONS)}")
    return region


def _values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared key, typed, with its default; unknown and missing required keys refused."""
    # Keys of other namespaces (secret values live under platform-dr-secrets:) are not ours.
    raw = {
        k.split(":", 1)[1] if ":" in k else k: v
        for k, v in raw.items()
        if ":" not in k or k.startswith(f"{PROJECT}:")
    }
    _check_unknown_keys(raw)
    values: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        if key.name in raw and raw[key.name] is not None:
            values[key.name] = _typed(key, raw[key.name])
        elif key.required:
            raise ConfigError(key.name, _MISSING, f"required; {key.description.lower()}")
        else:
            values[key.name] = key.default
    return values


def parse_objectives(raw: Mapping[str, Any], stack: str) -> Objectives:
    """Validate raw stack config (keys without the ``platform-dr:`` prefix) into Objectives.

    Raises ConfigError on the first problem found; nothing is declared before this returns.
    """
    values = _values(raw)
    regions = Regions(*(_region(values, k) for k in ("primaryRegion", "drRegion", "thirdRegion")))
    if regions.dr == regions.primary:
        raise ConfigError(
            "drRegion", regions.dr, f"a region other than primaryRegion ({regions.primary})"
        )
    seen: dict[str, str] = {}
    for key, region in zip(("primaryRegion", "drRegion", "thirdRegion"), regions.all, strict=True):
        if region in seen:
            raise ConfigError(key, region, f"a region not already used by {seen[region]}")
        seen[region] = key

    backend = values["dbBackend"]
    if backend not in DB_BACKENDS:
        raise ConfigError(
            "dbBackend", backend, f"one of {', '.join(DB_BACKENDS)}{_suggest(backend, DB_BACKENDS)}"
        )

    pitr = values["pitrWindowDays"]
    if not PITR_MIN_DAYS <= pitr <= PITR_MAX_DAYS:
        raise ConfigError(
            "pitrWindowDays", pitr, f"between {PITR_MIN_DAYS} and {PITR_MAX_DAYS} days"
        )

    classes: dict[str, ClassObjective] = {}
    for cls in DATA_CLASSES:
        rpo = parse_duration(f"{cls}Rpo", values[f"{cls}Rpo"])
        rto = parse_duration(f"{cls}Rto", values[f"{cls}Rto"])
        retention_s = parse_duration(f"{cls}Retention", values[f"{cls}Retention"])
        if cls == "critical" and rpo > MAX_CRITICAL_RPO_S:
            raise ConfigError(
                "criticalRpo", values["criticalRpo"], "at most 24h: critical data cannot lose a day"
            )
        if retention_s < pitr * DAY:
            raise ConfigError(
                f"{cls}Retention",
                values[f"{cls}Retention"],
                f"at least the PITR window of {pitr}d (pitrWindowDays)",
            )
        classes[cls] = ClassObjective(cls, rpo, rto, -(-retention_s // DAY))

    lock_mode = values["backupObjectLockMode"].upper()
    if lock_mode not in OBJECT_LOCK_MODES:
        raise ConfigError(
            "backupObjectLockMode", values["backupObjectLockMode"], "GOVERNANCE or COMPLIANCE"
        )

    rebuild_from = values["rebuildFrom"]
    if rebuild_from and len(rebuild_from.split("/")) != 3:
        raise ConfigError(
            "rebuildFrom", rebuild_from, "a fully qualified stack name: <org>/<project>/<stack>"
        )

    return Objectives(
        stack=stack,
        regions=regions,
        classes=classes,
        pitr_window_days=pitr,
        db_backend=backend,
        backup_object_lock_mode=lock_mode,
        rebuild_from=rebuild_from,
        protect_data=values["protectData"],
        example=values["example"],
    )


# Names that can never be real infrastructure: RFC 2606/6761 reserved names and loopback. An
# example stack may use them (and should: nobody mistakes them for real hosts); a stack that is not
# marked ``platform-dr:example`` may not.
RESERVED_SUFFIXES = (".example", ".invalid", ".test", ".localhost")
RESERVED_DOMAINS = ("example.com", "example.net", "example.org", "localhost")
_LOOPBACK = re.compile(r"^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|0\.0\.0\.0)$")


def is_placeholder_name(value: str) -> bool:
    """True for a host or domain that cannot name real infrastructure (example.com, x.test...)."""
    name = value.strip().lower().rstrip(".")
    if _LOOPBACK.match(name):
        return True
    return any(name == d or name.endswith(f".{d}") for d in RESERVED_DOMAINS) or any(
        name.endswith(s) for s in RESERVED_SUFFIXES
    )


def parse_stack_config(raw: Mapping[str, Any], stack: str) -> Objectives:
    """What a stack that declares resources needs: its objectives, and every key that names real
    infrastructure for its backend (``check_infrastructure_keys``). The program (``__main__.py``
    through ``load_objectives``) and ``drctl posture`` both call this, so they refuse alike."""
    objectives = parse_objectives(raw, stack)
    check_infrastructure_keys(_values(raw), objectives.db_backend, objectives.is_rebuild)
    return objectives


def check_infrastructure_keys(values: Mapping[str, Any], backend: str, rebuild: bool) -> None:
    """Required means required: every key that must name real infrastructure for this backend
    is set, and on a stack not marked ``example`` none of them names a reserved example host.

    Raises ConfigError naming the key before any resource is declared.
    """
    example = bool(values.get("example"))
    for key in CONFIG_KEYS:
        if backend not in key.needed_by or (rebuild and key.from_source_on_rebuild):
            continue
        value = str(values.get(key.name) or "").strip()
        if not value:
            raise ConfigError(
                key.name,
                _MISSING,
                f"required for dbBackend={backend}: {key.description[0].lower()}"
                f"{key.description[1:]} Set it with `pulumi config set {PROJECT}:{key.name} ...`; "
                "it has no default because a placeholder would reach production",
            )
        if not example and key.type == "string" and is_placeholder_name(value):
            raise ConfigError(
                key.name,
                value,
                "a real name: reserved example and loopback names are accepted only on a stack "
                f"marked {PROJECT}:example (this one is not)",
            )


def raw_config_from_pulumi() -> dict[str, Any]:
    """Read every ``platform-dr:`` key the engine passes to the program, as raw values."""
    from pulumi.runtime import config as runtime_config

    # The language host passes config either in the process-wide PULUMI_CONFIG bag or by
    # set_all_config (newer engines, and Pulumi's mocks); the explicit map wins.
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{PROJECT}:"
    return {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}


def load_objectives() -> Objectives:
    """Objectives of the running stack, from its config (infrastructure keys checked too)."""
    return parse_stack_config(raw_config_from_pulumi(), pulumi.get_stack())


TAG_CLASS = "backup-class"
TAG_DATASET = "dr-dataset"


def class_tags(data_class: str, dataset: str, extra: Mapping[str, str] | None = None) -> dict:
    """Tags on every resource: AWS Backup selects on backup-class; posture groups by dataset."""
    if data_class not in DATA_CLASSES:
        raise ConfigError("dataClass", data_class, f"one of {', '.join(DATA_CLASSES)}")
    return {TAG_CLASS: data_class, TAG_DATASET: dataset, "managed-by": PROJECT, **(extra or {})}


class ObjectivesRecord(pulumi.ComponentResource):
    """Carries the objectives on the stack so the policy pack checks against the same model."""

    TYPE = f"{PROJECT}:objectives:ObjectivesRecord"

    def __init__(self, name: str, args: Objectives, opts: pulumi.ResourceOptions | None = None):
        record = {"objectives": args.to_record()}
        super().__init__(self.TYPE, name, record, opts)
        # CrossGuard's stack policies see a component's outputs, not its inputs.
        self.register_outputs(record)
