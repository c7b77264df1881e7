"""The primary database's health as Route 53 can see it: an in-VPC probe feeding a CloudWatch alarm.

Route 53 health checkers run on the internet. They cannot reach a private endpoint (an RDS
instance that is not publicly accessible, a host in a private subnet, ``localhost``), and a
health check on an IP address in a private range cannot even be created (Amazon Route 53
Developer Guide, "Values that you specify when you create or update health checks"). So the
PRIMARY failover record's health check monitors a CloudWatch alarm instead, and the alarm watches
a metric that a probe *inside the primary's network* publishes every minute:

    probe host (primary VPC) --pg_isready--> primary database
        --PutMetricData (DR region)--> platform-dr/PrimaryDatabaseUp --> alarm --> health check

The alarm lives in the DR region: losing the primary region must not take the alarm with it. A
probe that stops publishing (its host or region is gone) is missing data, which the alarm treats
as breaching, so the record fails over; if CloudWatch itself has no data the health check keeps
its last status rather than flipping DNS on an outage of the DR region's monitoring.

The probe is rendered here as a systemd service and timer (``drctl render`` writes them); the host
needs ``pg_isready``, the AWS CLI, egress to CloudWatch in the DR region, and the managed policy
this component declares (``probe_publish_policy``) attached to its instance role.
"""

from __future__ import annotations

import json
import shlex

PROBE_NAMESPACE = "platform-dr"
PROBE_METRIC = "PrimaryDatabaseUp"
PROBE_DIMENSION = "Database"
PROBE_UNIT = "platform-dr-primary-probe"
PROBE_TIMEOUT_S = 5


def probe_script(host: str, port: int, region: str, record: str) -> str:
    """One probe: 1 when the primary accepts connections within the timeout, else 0."""
    publish = (
        f"aws cloudwatch put-metric-data --region {shlex.quote(region)} "
        f"--namespace {PROBE_NAMESPACE} --metric-name {PROBE_METRIC} "
        f"--dimensions {PROBE_DIMENSION}={shlex.quote(record)} --unit Count --value"
    )
    return (
        f"if pg_isready -q -h {shlex.quote(host)} -p {int(port)} -t {PROBE_TIMEOUT_S}; "
        f"then {publish} 1; else {publish} 0; fi"
    )


def render_probe_units(host: str, port: int, region: str, record: str) -> dict[str, str]:
    """{relative path: text}: the probe's systemd service and its every-minute timer."""
    script = probe_script(host, port, region, record)
    escaped = script.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    escaped = escaped.replace("$", "$$")
    service = "\n".join(
        [
            "[Unit]",
            f"Description=platform-dr: is the primary database {host}:{port} up? (to {region})",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            "DynamicUser=yes",
            f'ExecStart=/bin/sh -c "{escaped}"',
            "",
        ]
    )
    timer = "\n".join(
        [
            "[Unit]",
            "Description=platform-dr primary database probe, every minute",
            "",
            "[Timer]",
            "OnCalendar=minutely",
            "AccuracySec=5s",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return {f"systemd/{PROBE_UNIT}.service": service, f"systemd/{PROBE_UNIT}.timer": timer}


def probe_publish_policy() -> str:
    """What the probe host's role needs: PutMetricData into the probe namespace only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublishPrimaryHealth",
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    # PutMetricData has no resource ARN; the namespace condition is its scope.
                    "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": PROBE_NAMESPACE}},
                }
            ],
        }
    )
