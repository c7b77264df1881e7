"""The database's stack config: endpoints, credentials' names, sizes and RDS windows, parsed and
validated before anything is declared (keys in objectives.CONFIG_KEYS and Pulumi.yaml; secrets in
their own namespace). components/postgres_backup.py declares the resources from these settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components import pgbackrest_config as pgbr
from components.objectives import AWS_REGIONS, ConfigError, Objectives

GIB = 1024**3


_HHMM = r"([01]\d|2[0-3]):([0-5]\d)"


_BACKUP_WINDOW = re.compile(rf"^{_HHMM}-{_HHMM}$")


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


_MAINTENANCE_WINDOW = re.compile(rf"^({'|'.join(_DAYS)}):{_HHMM}-({'|'.join(_DAYS)}):{_HHMM}$")


WEEK_MIN = 7 * 24 * 60


def _week_minutes(day: str, hh: str, mm: str) -> int:
    return _DAYS.index(day) * 1440 + int(hh) * 60 + int(mm)


def check_rds_windows(backup_window: str, maintenance_window: str) -> None:
    """RDS rejects a malformed window, a backup window under 30 minutes and overlapping windows;
    say so before anything is declared instead of failing mid-deploy."""
    backup = _BACKUP_WINDOW.match(backup_window)
    if not backup:
        raise ConfigError("backupWindow", backup_window, "hh:mm-hh:mm in UTC, e.g. 03:00-03:30")
    start = int(backup[1]) * 60 + int(backup[2])
    end = int(backup[3]) * 60 + int(backup[4])
    length = (end - start) % 1440
    if length < 30:
        raise ConfigError("backupWindow", backup_window, "at least 30 minutes long")
    maint = _MAINTENANCE_WINDOW.match(maintenance_window.lower())
    if not maint:
        raise ConfigError(
            "maintenanceWindow",
            maintenance_window,
            "ddd:hh:mm-ddd:hh:mm in UTC, e.g. sun:04:00-sun:04:30",
        )
    m_start = _week_minutes(*maint.groups()[0:3])
    m_end = _week_minutes(*maint.groups()[3:6])
    m_length = (m_end - m_start) % WEEK_MIN
    # The backup window recurs daily; the two overlap if any daily occurrence meets it.
    for day in range(7):
        b_start = day * 1440 + start
        for offset in (-WEEK_MIN, 0, WEEK_MIN):
            a0, a1 = b_start + offset, b_start + offset + length
            if a0 < m_start + m_length and m_start < a1:
                raise ConfigError(
                    "maintenanceWindow",
                    maintenance_window,
                    f"a window that does not overlap the daily backup window {backup_window}",
                )


SECRETS_NAMESPACE = "platform-dr-db"


SECRET_KEYS = ("password", "drPassword", "replicationPassword")


_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


_PROJECT_REF = re.compile(r"^[a-z]{20}$")


_RDS_ID = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")


_INSTANCE_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class DatabaseSettings:
    """Non-secret database config. Defaults let a stack evaluate without any real database.

    host / port / username: the primary Postgres pulumi-postgresql connects to (the self-managed
        primary, or db.<ref>.supabase.co); default localhost / 5432 / postgres.
    dr_host: the DR-region Postgres that subscribes (supabase backend); default localhost.
    supabase_project_ref: the hosted project, for ``drctl supabase check``; default "".
    rds_instance_class / rds_adopt_instance_id / rearm_region: see PostgresBackupArgs.
    size_bytes / wal_bytes_per_hour: ``dbSize`` / ``dbWalRate``; default 100GB / 2GB/h.
    Passwords are secret config in the ``platform-dr-db`` namespace (``pulumi config set
    --secret platform-dr-db:password ...``): password, drPassword, replicationPassword.
    """

    host: str = "localhost"
    port: int = 5432
    username: str = "postgres"
    dr_host: str = "localhost"
    supabase_project_ref: str = ""
    rds_instance_class: str = "db.r6g.large"
    rds_adopt_instance_id: str = ""
    rearm_region: str = ""
    size_bytes: int = 100 * GIB
    wal_bytes_per_hour: int = 2 * GIB

    def provider_args(
        self, password: pulumi.Input[str] | None, *, dr: bool = False, superuser: bool = True
    ) -> dict[str, Any]:
        """Keyword arguments for ``pulumi_postgresql.Provider`` (the caller builds it)."""
        return {
            "host": self.dr_host if dr else self.host,
            "port": self.port,
            "username": self.username,
            "password": pulumi.Output.secret(password) if password is not None else None,
            "sslmode": "require",
            "superuser": superuser,
            "connect_timeout": 15,
        }

    def publisher_conninfo(
        self, password: pulumi.Input[str] | None, database: str = "postgres"
    ) -> pulumi.Output[str]:
        """libpq connection string of the primary, always a secret Output."""

        def build(secret: str | None) -> str:
            parts = {
                "host": self.host,
                "port": str(self.port),
                "user": self.username,
                "dbname": database,
                "sslmode": "require",
            }
            if secret:
                parts["password"] = secret
            return " ".join(f"{k}={_libpq_quote(v)}" for k, v in parts.items())

        return pulumi.Output.secret(pulumi.Output.from_input(password).apply(build))


def _libpq_quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_database_settings(raw: Mapping[str, Any]) -> DatabaseSettings:
    """Validate the database keys of raw stack config; ConfigError naming the key if bad."""
    d = DatabaseSettings()
    values = {
        "dbHost": str(raw.get("dbHost") or d.host),
        "drDbHost": str(raw.get("drDbHost") or d.dr_host),
        "dbUsername": str(raw.get("dbUsername") or d.username),
        "supabaseProjectRef": str(raw.get("supabaseProjectRef") or ""),
        "rdsInstanceClass": str(raw.get("rdsInstanceClass") or d.rds_instance_class),
        "rdsAdoptInstanceId": str(raw.get("rdsAdoptInstanceId") or ""),
        "rearmRegion": str(raw.get("rearmRegion") or ""),
    }
    for key in ("dbHost", "drDbHost"):
        if not _HOST.match(values[key]):
            raise ConfigError(key, values[key], "a host name or IP address, without a port")
    port_raw = raw.get("dbPort", d.port)
    try:
        port = int(port_raw)
    except (TypeError, ValueError):
        port = -1
    if isinstance(port_raw, bool) or not 1 <= port <= 65535:
        raise ConfigError("dbPort", port_raw, "a TCP port from 1 to 65535")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", values["dbUsername"]):
        raise ConfigError("dbUsername", values["dbUsername"], "a Postgres role name")
    ref = values["supabaseProjectRef"]
    if ref and not _PROJECT_REF.match(ref):
        raise ConfigError("supabaseProjectRef", ref, "a Supabase project ref: 20 lowercase letters")
    if not _INSTANCE_CLASS.match(values["rdsInstanceClass"]):
        raise ConfigError(
            "rdsInstanceClass", values["rdsInstanceClass"], "an RDS class such as db.r6g.large"
        )
    adopt = values["rdsAdoptInstanceId"]
    if adopt and not _RDS_ID.match(adopt):
        raise ConfigError(
            "rdsAdoptInstanceId", adopt, "an RDS instance identifier (letters, digits, hyphens)"
        )
    rearm = values["rearmRegion"]
    if rearm and rearm not in AWS_REGIONS:
        raise ConfigError("rearmRegion", rearm, "an AWS region name such as eu-central-1, or empty")
    return DatabaseSettings(
        host=values["dbHost"],
        port=port,
        username=values["dbUsername"],
        dr_host=values["drDbHost"],
        supabase_project_ref=ref,
        rds_instance_class=values["rdsInstanceClass"],
        rds_adopt_instance_id=adopt,
        rearm_region=rearm,
        size_bytes=parse_size("dbSize", raw.get("dbSize") or "100GB"),
        wal_bytes_per_hour=parse_rate_per_hour("dbWalRate", raw.get("dbWalRate") or "2GB/h"),
    )


_SIZE_UNITS = {"mb": 1024**2, "gb": GIB, "tb": 1024**4, "mib": 1024**2, "gib": GIB, "tib": 1024**4}


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.I)


_PER = {"s": 3600, "min": 60, "h": 1, "d": 1 / 24}


def parse_size(key: str, value: Any) -> int:
    """'250GB' -> bytes (1024-based). Rejects zero, bare numbers and unknown units."""
    allowed = "a positive size with a unit MB, GB or TB (1024-based), e.g. '250GB'"
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not match or match[2].lower() not in _SIZE_UNITS or float(match[1]) <= 0:
        raise ConfigError(key, value, allowed)
    return int(float(match[1]) * _SIZE_UNITS[match[2].lower()])


def parse_rate_per_hour(key: str, value: Any) -> int:
    """'2GB/h' -> bytes per hour. The unit of time is s, min, h or d."""
    allowed = "a size per unit of time, e.g. '2GB/h' or '30MB/min' (s, min, h or d)"
    size, _, per = str(value).partition("/") if isinstance(value, str) else ("", "", "")
    if per.strip().lower() not in _PER:
        raise ConfigError(key, value, allowed)
    try:
        return int(parse_size(key, size) * _PER[per.strip().lower()])
    except ConfigError:
        raise ConfigError(key, value, allowed) from None


def load_database_settings(objectives: Objectives) -> DatabaseSettings:
    """Database config of the running stack, checked with the objectives before any resource
    is declared (e.g. an RPO too tight for WAL archiving is a ConfigError naming criticalRpo)."""
    from components.objectives import raw_config_from_pulumi

    settings = parse_database_settings(raw_config_from_pulumi())
    if objectives.db_backend == "self-managed":
        pgbr.archive_timing(objectives)
        check_rearm_region(settings.rearm_region, objectives)
    return settings


def check_rearm_region(rearm: str, objectives: Objectives) -> None:
    regions = objectives.regions
    if rearm and rearm in (regions.primary, regions.dr):
        raise ConfigError(
            "rearmRegion", rearm, f"a region other than {regions.primary} and {regions.dr}"
        )


def database_secret(key: str) -> pulumi.Output[str] | None:
    """A password from ``platform-dr-db:<key>`` secret config, or None when unset."""
    if key not in SECRET_KEYS:
        raise ConfigError(f"{SECRETS_NAMESPACE}:{key}", key, f"one of {', '.join(SECRET_KEYS)}")
    return pulumi.Config(SECRETS_NAMESPACE).get_secret(key)
