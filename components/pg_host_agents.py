"""What runs beside PostgreSQL on each self-managed database host. Pure: no I/O, no Pulumi.

``PostgresBackup`` (self-managed) exports these files as ``artefacts``; the same text is what the
integration tests run. Every host (primary region and DR region) installs all of them, so after
a failover the promoted host already runs what a primary needs:

- **heartbeat writer** (``platform-dr-heartbeat.timer``): on the primary, commits
  ``now()`` into ``platform_dr.heartbeat`` every ``HEARTBEAT_INTERVAL_S``. Replication lag is then
  measured as the newest heartbeat on the primary against the newest one replayed on the standby
  (or, with the primary gone, the newest commit in the DR repository's archive), so a quiet
  primary is never mistaken for a lagging standby.
- **fence guard** (``platform-dr-fence-guard.timer`` plus an ``ExecStartPre`` drop-in for the
  PostgreSQL unit): holds the host to the lease in the DR-region control bucket
  (components/failover_control.py, components/agents/fence_guard.py).
- **RPO governor** (``platform-dr-rpo-governor.service``): switches the primary to synchronous
  commit to the DR standby while its replay is more than half the critical RPO behind
  (components/agents/rpo_governor.py). It turns the RPO from a detected bound into an enforced one.
- **slot monitor** (``platform-dr-slot-monitor.timer``): publishes the DR slot's ``wal_status``
  (reserved 0, extended 1, unreserved 2, lost 3) to CloudWatch; the alarm PostgresBackup declares
  fires at 2 and on missing data. ``max_slot_wal_keep_size`` keeps a dead standby from filling
  the primary's disk; this alarm says when the slot is about to give up, and the standby's
  ``restore_command`` (repo2) is what lets it catch up after it did.
- **pgBackRest secrets** (``platform-dr-pgbackrest-secrets.service``, before PostgreSQL): reads the
  repository cipher passphrase from Secrets Manager *in the host's own region* (the DR host reads
  the DR replica) and writes pgBackRest's secret fragment, mode 0600. So repo2 stays decryptable
  after the primary region, and its host, are gone.

Install map: ``platform-dr/*.py`` -> ``/usr/local/lib/platform-dr/``;
``platform-dr/<role>/*`` -> ``/etc/platform-dr/`` (role: ``primary`` on the primary-region host,
``dr`` on the DR host); ``systemd/*`` -> ``/etc/systemd/system/``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from components.failover_control import ack_prefix, lease_key
from components.objectives import Objectives, format_duration
from components.systemd_units import interval_timer, oneshot_service, service_unit

SCHEMA = "platform_dr"
HEARTBEAT_TABLE = f"{SCHEMA}.heartbeat"
EPOCH_TABLE = f"{SCHEMA}.failover_epoch"
HEARTBEAT_INTERVAL_S = 5
STANDBY_APPLICATION_NAME = "dr_standby"
AGENT_DIR = "/usr/local/lib/platform-dr"
CONF_DIR = "/etc/platform-dr"
STATE_DIR = "/var/lib/platform-dr"
PG_BIN = "/usr/lib/postgresql/15/bin"
PYTHON = "/usr/bin/python3"
ROLES = ("primary", "dr")
SLOT_METRIC_NAMESPACE = "platform-dr"
SLOT_METRIC = "ReplicationSlotWalStatus"
WAL_STATUS_CODES = {"reserved": 0, "extended": 1, "unreserved": 2, "lost": 3}
SLOT_ALARM_AT = WAL_STATUS_CODES["unreserved"]
GUARD_UNIT = "platform-dr-fence-guard"
GOVERNOR_UNIT = "platform-dr-rpo-governor"
HEARTBEAT_UNIT = "platform-dr-heartbeat"
SLOT_UNIT = "platform-dr-slot-monitor"
SECRETS_UNIT = "platform-dr-pgbackrest-secrets"
_AGENTS = Path(__file__).parent / "agents"


@dataclass(frozen=True)
class HostPg:
    """How agents reach the local server: through its unix socket, as postgres."""

    data_dir: str = "/var/lib/postgresql/15/main"
    port: int = 5432
    socket_dir: str = "/var/run/postgresql"
    bin: str = PG_BIN
    dbname: str = "postgres"

    def to_json(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "port": self.port,
            "socket_dir": self.socket_dir,
            "bin": self.bin,
            "dbname": self.dbname,
        }

    def psql(self) -> list[str]:
        return [
            f"{self.bin}/psql",
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.socket_dir,
            "-p",
            str(self.port),
            "-d",
            self.dbname,
        ]


# -- derivations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseTiming:
    """How long a primary may go without renewing its lease, and how often the guard looks.

    ttl_s = clamp(critical RTO / 20, 30 s, 300 s); interval_s = clamp(ttl / 6, 5 s, 30 s);
    call_timeout_s bounds one S3 call of the guard; stop_grace_s one shutdown mode (the guard
    escalates fast -> immediate -> SIGKILL, at most about twice that in all).

    A failover that gets no acknowledgement waits ``fence_wait_s`` before promoting: the old
    primary's last renewal was before the takeover, so by then its guard has seen the TTL run out
    (one tick later at most: the interval, its two S3 calls and its local psql check) and stopped
    the server. That wait is part of the RTO budget (docs/runbooks/failover.md):
    180 + 30 + 2 x 20 + 5 + 2 x 30 = 315 s for a 1 h RTO.
    """

    ttl_s: float
    interval_s: float
    stop_grace_s: float = 30.0
    call_timeout_s: float = 20.0

    @property
    def fence_wait_s(self) -> float:
        return fence_wait_s(self.ttl_s, self.interval_s, self.call_timeout_s, self.stop_grace_s)


LOCAL_CHECK_S = 5.0  # the guard's psql look at the local server (connect timeout 3 s)


def fence_wait_s(ttl_s: float, interval_s: float, call_timeout_s: float, stop_grace_s: float):
    """The one formula for how long an unacknowledged takeover waits (see LeaseTiming)."""
    return ttl_s + interval_s + 2 * call_timeout_s + LOCAL_CHECK_S + 2 * stop_grace_s


def lease_timing(objectives: Objectives) -> LeaseTiming:
    rto = objectives.of("critical").rto_s
    ttl = max(30, min(300, rto // 20))
    return LeaseTiming(ttl_s=float(ttl), interval_s=float(max(5, min(30, ttl // 6))))


@dataclass(frozen=True)
class GovernorThresholds:
    """Synchronous commit on above ``engage_lag_s`` (RPO/2), off after ``release_ticks`` ticks
    under ``release_lag_s`` (RPO/4): hysteresis, so it does not flap at the threshold."""

    rpo_s: float
    engage_lag_s: float
    release_lag_s: float
    interval_s: float = 1.0
    release_ticks: int = 5


def governor_thresholds(objectives: Objectives) -> GovernorThresholds:
    rpo = float(objectives.of("critical").rpo_s)
    return GovernorThresholds(rpo, rpo / 2, rpo / 4)


# -- SQL the agents and the runbooks share -------------------------------------------------------


def heartbeat_sql() -> str:
    """Create the heartbeat table if needed and commit now() into its single row."""
    return (
        "set client_min_messages = warning; "
        f"create schema if not exists {SCHEMA}; "
        f"create table if not exists {HEARTBEAT_TABLE} "
        "(id int primary key check (id = 1), at timestamptz not null); "
        f"insert into {HEARTBEAT_TABLE} (id, at) values (1, now()) "
        "on conflict (id) do update set at = excluded.at"
    )


def slot_status_sql(slot: str) -> str:
    name = slot.replace("'", "''")
    cases = " ".join(f"when '{k}' then {v}" for k, v in WAL_STATUS_CODES.items())
    return (
        f"select case wal_status {cases} end from pg_replication_slots "
        f"where slot_name = '{name}' and wal_status is not null"
    )


# -- rendering -------------------------------------------------------------------------------------


def agent_source(name: str) -> str:
    """The shipped text of an agent script (components/agents/<name>.py)."""
    return (_AGENTS / f"{name}.py").read_text()


def guard_config(
    objectives: Objectives,
    role: str,
    *,
    lease_bucket: str,
    pg: HostPg,
    pgbackrest_argv: list[str],
    timing: LeaseTiming | None = None,
    aws: str = "aws",
) -> dict:
    """The fence guard's JSON config for the host of ``role`` (primary or dr)."""
    regions = objectives.regions
    timing = timing or lease_timing(objectives)
    return {
        "stack": objectives.stack,
        "region": regions.primary if role == "primary" else regions.dr,
        "lease": {
            "bucket": lease_bucket,
            "region": regions.dr,
            "key": lease_key(objectives.stack),
            "ack_prefix": ack_prefix(objectives.stack),
        },
        "ttl_s": timing.ttl_s,
        "interval_s": timing.interval_s,
        "stop_timeout_s": timing.stop_grace_s,
        "aws_timeout_s": timing.call_timeout_s,
        "pg": pg.to_json(),
        "pgbackrest": pgbackrest_argv,
        "state_file": f"{STATE_DIR}/fence-guard.json",
        "override_file": f"{CONF_DIR}/fence-override",
        "aws": aws,
    }


def governor_config(
    objectives: Objectives,
    *,
    slot: str,
    pg: HostPg,
    thresholds: GovernorThresholds | None = None,
) -> dict:
    t = thresholds or governor_thresholds(objectives)
    return {
        "rpo_s": t.rpo_s,
        "engage_lag_s": t.engage_lag_s,
        "release_lag_s": t.release_lag_s,
        "release_ticks": t.release_ticks,
        "interval_s": t.interval_s,
        "slot": slot,
        "application_name": STANDBY_APPLICATION_NAME,
        # remote_apply: a commit returns once the standby has replayed it, the same position the
        # failover's lag measures (what a promotion now would contain).
        "sync_commit": "remote_apply",
        "pg": pg.to_json(),
        "state_file": f"{STATE_DIR}/rpo-governor.json",
        "disable_file": f"{CONF_DIR}/rpo-governor.disabled",
    }


def _agent_service(description: str, agent: str, command: str, *, oneshot: bool) -> str:
    argv = [PYTHON, f"{AGENT_DIR}/{agent}.py", "--config", f"{CONF_DIR}/{agent}.json", command]
    if oneshot:
        return service_unit(description, shlex.join(argv), env_file=f"{CONF_DIR}/environment")
    return service_unit(
        description,
        shlex.join(argv),
        kind="simple",
        env_file=f"{CONF_DIR}/environment",
        service_extra=("Restart=always", "RestartSec=2s"),
        wanted_by="multi-user.target",
    )


def render_heartbeat(pg: HostPg, interval_s: float = HEARTBEAT_INTERVAL_S) -> dict[str, str]:
    """A heartbeat every ``interval_s`` on whichever host is primary (a standby skips it)."""
    psql = shlex.join(pg.psql())
    script = (
        f'[ "$({psql} -c "select pg_is_in_recovery()")" = f ] || exit 0; '
        f"{psql} -c {shlex.quote(heartbeat_sql())}"
    )
    return {
        f"systemd/{HEARTBEAT_UNIT}.service": oneshot_service(
            "platform-dr heartbeat: a commit on the primary every few seconds", script
        ),
        f"systemd/{HEARTBEAT_UNIT}.timer": interval_timer(
            f"platform-dr heartbeat, every {interval_s:g}s", interval_s
        ),
    }


def render_slot_monitor(slot: str, pg: HostPg) -> dict[str, str]:
    """Publish the DR slot's wal_status every minute, into the host's region (AWS_REGION)."""
    psql = shlex.join(pg.psql())
    script = (
        f'[ "$({psql} -c "select pg_is_in_recovery()")" = f ] || exit 0; '
        f'status=$({psql} -c "{slot_status_sql(slot)}") && [ -n "$status" ] && '
        f'aws cloudwatch put-metric-data --region "$AWS_REGION" '
        f"--namespace {SLOT_METRIC_NAMESPACE} --metric-name {SLOT_METRIC} "
        f'--dimensions Slot={slot} --value "$status"'
    )
    return {
        f"systemd/{SLOT_UNIT}.service": oneshot_service(
            f"publish the wal_status of replication slot {slot}",
            script,
            f"{CONF_DIR}/environment",
        ),
        f"systemd/{SLOT_UNIT}.timer": interval_timer(f"slot {slot} wal_status, every minute", 60),
    }


def render_secrets_fetch(secret_name: str, secret_conf_text: str, include_path: str) -> str:
    """A oneshot unit that writes pgBackRest's secret fragment from Secrets Manager.

    ``secret_conf_text`` is ``render_secret_conf`` output with ``\\0`` where the passphrase goes:
    one renderer knows the fragment's format.
    """
    template = secret_conf_text.replace("%", "%%").replace("\n", "\\n").replace("\0", "%s")
    count = secret_conf_text.count("\0")
    target = f"{include_path}/secrets.conf"
    args = " ".join(['"$pass"'] * count)
    script = (
        f'pass=$(aws secretsmanager get-secret-value --region "$AWS_REGION" '
        f"--secret-id {shlex.quote(secret_name)} --query SecretString --output text) && "
        '[ -n "$pass" ] && umask 077 && '
        f"printf {shlex.quote(template)} {args} > {target}.tmp && "
        f"mv -f {target}.tmp {target}"
    )
    return oneshot_service(
        "pgBackRest cipher passphrase from Secrets Manager (this region's copy)",
        script,
        f"{CONF_DIR}/environment",
        unit_extra=("Before=postgresql.service",),
        service_extra=("RemainAfterExit=yes",),
        wanted_by="multi-user.target",
    )


def render_host_agents(
    objectives: Objectives,
    *,
    lease_bucket: str,
    slot: str,
    pgbackrest_argv: list[str],
    pg: HostPg | None = None,
    cipher_secret_name: str = "",
    secret_conf_template: str = "",
    include_path: str = "/etc/pgbackrest/conf.d",
) -> dict[str, str]:
    """Every host-agent file, keyed by artefact path (module docstring: install map)."""
    pg = pg or HostPg()
    timing = lease_timing(objectives)
    regions = objectives.regions
    files: dict[str, str] = {
        "platform-dr/fence_guard.py": agent_source("fence_guard"),
        "platform-dr/rpo_governor.py": agent_source("rpo_governor"),
    }
    governor = governor_config(objectives, slot=slot, pg=pg)
    for role in ROLES:
        region = regions.primary if role == "primary" else regions.dr
        files[f"platform-dr/{role}/environment"] = f"AWS_REGION={region}\nPLATFORM_DR_ROLE={role}\n"
        guard = guard_config(
            objectives, role, lease_bucket=lease_bucket, pg=pg, pgbackrest_argv=pgbackrest_argv
        )
        files[f"platform-dr/{role}/fence_guard.json"] = json.dumps(guard, indent=2) + "\n"
        files[f"platform-dr/{role}/rpo_governor.json"] = json.dumps(governor, indent=2) + "\n"
    files[f"systemd/{GUARD_UNIT}.service"] = _agent_service(
        "platform-dr fence guard: serve as primary only under the lease",
        "fence_guard",
        "check",
        oneshot=True,
    )
    files[f"systemd/{GUARD_UNIT}.timer"] = interval_timer(
        f"platform-dr fence guard, every {format_duration(timing.interval_s)} "
        f"(lease TTL {format_duration(timing.ttl_s)})",
        timing.interval_s,
    )
    preflight = [PYTHON, f"{AGENT_DIR}/fence_guard.py", "--config", f"{CONF_DIR}/fence_guard.json"]
    files[f"systemd/postgresql@.service.d/{GUARD_UNIT}.conf"] = (
        "# Rendered by components/pg_host_agents.py: no primary starts without the lease.\n"
        "[Service]\n"
        f"EnvironmentFile={CONF_DIR}/environment\n"
        f"ExecStartPre={shlex.join([*preflight, 'preflight'])}\n"
    )
    files[f"systemd/{GOVERNOR_UNIT}.service"] = _agent_service(
        f"platform-dr RPO governor: synchronous commit while the DR standby is more than "
        f"{format_duration(governor['engage_lag_s'])} behind",
        "rpo_governor",
        "run",
        oneshot=False,
    )
    files.update(render_heartbeat(pg))
    files.update(render_slot_monitor(slot, pg))
    if cipher_secret_name:
        files[f"systemd/{SECRETS_UNIT}.service"] = render_secrets_fetch(
            cipher_secret_name, secret_conf_template, include_path
        )
    return files
