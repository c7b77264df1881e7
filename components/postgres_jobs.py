"""Host jobs PostgresBackup renders for the supabase backend: the scheduled ``pg_dump`` uploads
and the subscription-lag monitor, as systemd units (pure functions, tested directly)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components.systemd_units import oneshot_service as _oneshot_service
from components.systemd_units import timer as _timer

DUMP_PREFIX = "dumps"
DUMP_ENV_FILE = "/etc/platform-dr/supabase-dump.env"
# The dump role's password: a root-only pgpass file, handed to the unit as a systemd credential
# (LoadCredential) and to libpq as PGPASSFILE, so it is never on pg_dump's command line.
DUMP_PGPASS_FILE = "/etc/platform-dr/supabase-dump.pgpass"
DUMP_PGPASS_CREDENTIAL = (
    f"LoadCredential=pgpass:{DUMP_PGPASS_FILE}",
    "Environment=PGPASSFILE=%d/pgpass",
)


@dataclass(frozen=True)
class DumpJob:
    kind: str  # daily | monthly
    on_calendar: str
    cron: str


DUMP_JOBS = (
    DumpJob("daily", "*-*-* 02:15:00 UTC", "15 2 * * *"),
    DumpJob("monthly", "*-*-01 02:45:00 UTC", "45 2 1 * *"),
)


def _dump_script(bucket: str, key_arn: str, region: str, kind: str, pct: str) -> str:
    """pg_dump -Fc streamed straight to S3 under the dump bucket's key; nothing on local disk.

    The DSN comes from the environment (PUBLISHER_DSN, in a 0600 EnvironmentFile), never from
    this text, and holds no password: pg_dump's arguments are world-readable (ps,
    /proc/PID/cmdline), so the password comes from the pgpass file (PGPASSFILE) and a DSN with a
    password is refused before pg_dump starts. ``pct`` is how a literal % is written: "%" for
    systemd (systemd_exec_arg escapes it), "\\%" for cron.
    """
    stamp = f"$(date -u +{pct}Y-{pct}m-{pct}dT{pct}H{pct}MZ)"
    target = f"s3://{bucket}/{DUMP_PREFIX}/{kind}/{stamp}.dump"
    return (
        'case "$PUBLISHER_DSN" in *password=*|*://*:*@*) echo "PUBLISHER_DSN must not hold '
        f'the password (it would show in ps): put it in {DUMP_PGPASS_FILE}" >&2; exit 2;; esac; '
        'pg_dump --format=custom --no-owner --dbname="$PUBLISHER_DSN" | '
        f"aws s3 cp - {target} --region {region} --sse aws:kms --sse-kms-key-id {key_arn}"
    )


def render_dump_schedule(bucket: str, key_arn: str, region: str) -> dict[str, str]:
    """{relative path: text}: systemd service+timer per dump kind, and the equivalent cron.d."""
    files: dict[str, str] = {}
    cron = [
        "# Rendered by components/postgres_backup.py: logical dumps of the Supabase database.",
        "SHELL=/bin/bash",
    ]
    for job in DUMP_JOBS:
        unit = f"supabase-dump-{job.kind}"
        script = _dump_script(bucket, key_arn, region, job.kind, "%")
        files[f"systemd/{unit}.service"] = _oneshot_service(
            f"pg_dump -Fc of the Supabase database to S3 ({job.kind})",
            script,
            DUMP_ENV_FILE,
            service_extra=DUMP_PGPASS_CREDENTIAL,
        )
        files[f"systemd/{unit}.timer"] = _timer(
            f"Supabase logical dump ({job.kind})", job.on_calendar, "Persistent=true"
        )
        cron_script = _dump_script(bucket, key_arn, region, job.kind, "\\%")
        cron.append(
            f"{job.cron} postgres set -o pipefail; . {DUMP_ENV_FILE}; export PUBLISHER_DSN; "
            f"export PGPASSFILE={DUMP_PGPASS_FILE}; "
            f"{cron_script}"
        )
    files["cron.d/supabase-dump"] = "\n".join(cron) + "\n"
    return files


# The subscriber's lag as a CloudWatch metric: the alarm on it is what bounds a region loss.
LAG_NAMESPACE = "platform-dr"


LAG_METRIC = "SubscriptionLagSeconds"


LAG_UNIT = "subscription-lag-monitor"


def subscription_lag_sql(subscription: str) -> str:
    """Seconds since the publisher's last position the subscriber has caught up to.

    latest_end_time is the send time of the last keepalive the apply worker processed: messages
    are applied in order, so while the worker is behind (or stopped) this age grows; idle, the
    worker pings the publisher every wal_receiver_timeout/2, so it stays under about 30 s (plus
    any clock skew between the two hosts: the time is the publisher's). Only
    the main apply worker's row (relid null) with a running worker counts: no row, no number.
    """
    name = subscription.replace("'", "''")
    return (
        "select round(extract(epoch from now() - latest_end_time)::numeric, 1) "
        f"from pg_stat_subscription where subname = '{name}' and relid is null "
        "and pid is not null and latest_end_time is not null"
    )


def _lag_script(subscription: str, dbname: str, region: str) -> str:
    # Nothing is published when the query gives no number: missing data is what the alarm
    # treats as breaching, so a stopped worker or a dead monitor pages like a lag would.
    sql = subscription_lag_sql(subscription)
    return (
        f"lag=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -d {shlex.quote(dbname)} "
        f'-c "{sql}") && [ -n "$lag" ] && '
        f"aws cloudwatch put-metric-data --region {region} --namespace {LAG_NAMESPACE} "
        f"--metric-name {LAG_METRIC} --dimensions Subscription={subscription} "
        '--unit Seconds --value "$lag"'
    )


def render_subscription_monitor(subscription: str, dbname: str, region: str) -> dict[str, str]:
    """{relative path: text}: a service+timer that publishes the subscription's lag every minute.

    Runs on the DR subscriber host as postgres (local socket; PGHOST/PGPORT if set), with the
    host's instance profile, into ``region`` (the DR region, where the alarm is).
    """
    script = _lag_script(subscription, dbname, region)
    return {
        f"systemd/{LAG_UNIT}.service": _oneshot_service(
            f"publish the lag of subscription {subscription} to CloudWatch", script
        ),
        f"systemd/{LAG_UNIT}.timer": _timer(
            f"subscription {subscription} lag, every minute", "minutely", "AccuracySec=5s"
        ),
    }
