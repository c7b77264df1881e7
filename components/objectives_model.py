"""The typed recovery objectives and their units: data classes with RPO/RTO, regions, the backup
schedule, and the errors and durations every part of the project shares. No Pulumi, no config
parsing: components/objectives.py reads stack config into these types (and re-exports them, so
``components.objectives`` stays the one import for the model).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

PROJECT = "platform-dr"


DATA_CLASSES: tuple[str, ...] = ("critical", "important", "operational")


DB_BACKENDS: tuple[str, ...] = ("rds", "self-managed", "supabase")


OBJECT_LOCK_MODES: tuple[str, ...] = ("GOVERNANCE", "COMPLIANCE")


# Commercial AWS regions that have S3 Replication Time Control, KMS multi-Region keys and AWS
# Backup cross-region copy. A name outside this list is almost always a typo.
AWS_REGIONS: tuple[str, ...] = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-east-1",
    "me-central-1",
    "me-south-1",
    "af-south-1",
    "il-central-1",
)


MINUTE = 60


HOUR = 3600


DAY = 86400


# Spec, "Recovery Point/Time Objectives" and "Data Classification". Retention is how long recovery
# points of the class are kept; critical keeps a year because the monthly archive lives in it.
DEFAULT_CLASS_OBJECTIVES: dict[str, dict[str, str]] = {
    "critical": {"rpo": "15m", "rto": "1h", "retention": "365d"},
    "important": {"rpo": "1h", "rto": "4h", "retention": "90d"},
    "operational": {"rpo": "24h", "rto": "24h", "retention": "30d"},
}


MAX_CRITICAL_RPO_S = 24 * HOUR


class ConfigError(ValueError):
    """A stack config value that cannot be used; names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        shown = "(missing)" if value is _MISSING else repr(value)
        # Keys of the project's other namespaces (platform-dr-services:x) come fully qualified.
        qualified = key if ":" in key.split(".", 1)[0] else f"{PROJECT}:{key}"
        super().__init__(f"{qualified} = {shown} is not valid: {allowed}")


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: Any = _Missing()


_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([smhd])\s*$")


_UNIT_S = {"s": 1, "m": MINUTE, "h": HOUR, "d": DAY}


def parse_duration(key: str, value: Any) -> int:
    """'15m' -> 900. Rejects zero, negatives, bare numbers and anything that is not a duration."""
    allowed = "a positive duration with a unit s, m, h or d, e.g. '15m' or '4h'"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(key, value, allowed)
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(key, value, allowed)
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ConfigError(key, value, allowed)
    return int(seconds)


def format_duration(seconds: float | None) -> str:
    """900 -> '15m'; the inverse of parse_duration for whole units."""
    if seconds is None:
        return "unbounded"
    seconds = int(seconds)
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class ClassObjective:
    """What the business accepts for one data class."""

    name: str
    rpo_s: int
    rto_s: int
    retention_days: int


@dataclass(frozen=True)
class Regions:
    primary: str
    dr: str
    third: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.primary, self.dr, self.third)

    @property
    def replicas(self) -> tuple[str, str]:
        return (self.dr, self.third)


@dataclass(frozen=True)
class DatabaseSchedule:
    """Spec, "Backup Schedule". Fixed by the spec; seconds between runs of each backup type."""

    log_backup_s: int = HOUR  # transaction-log backups for critical data
    differential_s: int = DAY
    full_s: int = 7 * DAY
    archive_s: int = 30 * DAY  # long-term archival copy
    restore_test_s: int = 30 * DAY  # "Monthly: backup restoration testing"
    dr_simulation_s: int = 91 * DAY  # "Quarterly: full disaster recovery simulation"


@dataclass(frozen=True)
class Objectives:
    """The validated, typed objectives of one stack."""

    stack: str
    regions: Regions
    classes: Mapping[str, ClassObjective]
    pitr_window_days: int
    db_backend: str
    schedule: DatabaseSchedule = field(default_factory=DatabaseSchedule)
    backup_object_lock_mode: str = "GOVERNANCE"
    rebuild_from: str = ""
    protect_data: bool = True
    example: bool = False

    def of(self, data_class: str) -> ClassObjective:
        if data_class not in self.classes:
            raise ConfigError("dataClass", data_class, f"one of {', '.join(DATA_CLASSES)}")
        return self.classes[data_class]

    @property
    def is_rebuild(self) -> bool:
        return bool(self.rebuild_from)

    def to_record(self) -> dict[str, Any]:
        """A plain dict of the objectives, carried on the stack so policy rules can read them."""
        record = asdict(self)
        record["classes"] = {name: asdict(c) for name, c in self.classes.items()}
        return record

    @staticmethod
    def from_record(record: Mapping[str, Any]) -> Objectives:
        return Objectives(
            stack=record["stack"],
            regions=Regions(**record["regions"]),
            classes={n: ClassObjective(**c) for n, c in record["classes"].items()},
            pitr_window_days=int(record["pitr_window_days"]),
            db_backend=record["db_backend"],
            schedule=DatabaseSchedule(**record.get("schedule", {})),
            backup_object_lock_mode=record.get("backup_object_lock_mode", "GOVERNANCE"),
            rebuild_from=record.get("rebuild_from", ""),
            protect_data=bool(record.get("protect_data", True)),
            example=bool(record.get("example", False)),
        )
