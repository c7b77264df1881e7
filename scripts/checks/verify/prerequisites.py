"""Live prerequisites: what the stack relies on but cannot (or must not) create itself.

Each is one line of ``drctl verify`` (the ``PREREQUISITES`` group in verify's ``CHECKS``), PASS
or FAIL, and each names what to do when it fails (docs/aws-prerequisites.md has the list and the
commands):

- ``aws-config-recording``: AWS Config records the AWS Backup resource types in the region of the
  audit frameworks, and the recorder is on. Whether this stack declares the recorder
  (``awsConfigRecording: stack``) or the organisation runs it (``organization``), AWS Backup Audit
  Manager evaluates nothing without it (AWS Backup Developer Guide, "Choosing your controls").
- ``backup-reports-role``: the AWSServiceRoleForBackupReports service-linked role exists. The
  reports bucket and key policies name it, and a policy naming a role that does not exist is
  refused ("Invalid principal"); one role per account, so no stack owns it.
- ``backup-opt-in``: AWS Backup is opted in to protect S3 and RDS in each vault region
  (``DescribeRegionSettings``); a resource type that is not opted in is silently skipped by every
  plan (AWS Backup Developer Guide, "Service opt-in").
- ``primary-probe``: the in-VPC probe runs and publishes ``PrimaryDatabaseUp`` to the DR region.
  The stack declares the alarm and health check it feeds, but the probe runs on a host in the
  primary's network that this project does not manage; a probe that never ran leaves the health
  check on its default status and then, once data is missing, fails the record over.

AWS access is the same injected client factory as the rest of verify; tests use moto where it
implements the API (AWS Config, IAM, CloudWatch) and botocore's Stubber for AWS Backup's
``DescribeRegionSettings``, which moto lacks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.backup_plan import CONFIG_RECORDING
from components.health_probe import PROBE_DIMENSION, PROBE_METRIC, PROBE_NAMESPACE
from components.objectives import Objectives
from policy.aws_semantics.services import BACKUP_AUDIT_CONFIG_TYPES
from scripts.checks.verify.model import (
    Check,
    CheckGroup,
    ClientFactory,
    Context,
    MissingOutput,
    error_detail,
    need,
    passed,
)

REPORTS_ROLE_PATH = "/aws-service-role/reports.backup.amazonaws.com/"
PROTECTED_TYPES = ("S3", "RDS")
PROBE_WINDOW_S = 15 * 60  # a probe publishes every minute: none in 15 min means it is not running


def _check(name: str, target: str, measured: Any, objective: Any, ok: bool, detail: str) -> Check:
    return Check(name, "all", target, measured, objective, passed(ok), detail)


def config_recording_check(objectives: Objectives, recording: str, clients: ClientFactory) -> Any:
    region = objectives.regions.primary
    config = clients("config", region)
    recorders = config.describe_configuration_recorders().get("ConfigurationRecorders", [])
    statuses = {
        s["name"]: s
        for s in config.describe_configuration_recorder_status().get(
            "ConfigurationRecordersStatus", []
        )
    }
    channels = config.describe_delivery_channels().get("DeliveryChannels", [])
    owner = "this stack" if recording == "stack" else "the organisation"
    fix = (
        "`pulumi up` declares it (awsConfigRecording: stack)"
        if recording == "stack"
        else "ask whoever runs AWS Config centrally to record them, or set "
        "awsConfigRecording: stack"
    )
    for recorder in recorders:
        group = recorder.get("recordingGroup") or {}
        types = set(group.get("resourceTypes") or [])
        missing = (
            [] if group.get("allSupported") else sorted(set(BACKUP_AUDIT_CONFIG_TYPES) - types)
        )
        on = bool(statuses.get(recorder["name"], {}).get("recording"))
        target = f"{region}/{recorder['name']}"
        if missing:
            return _check(
                "aws-config-recording",
                target,
                "missing types",
                "recording",
                False,
                f"recorder of {owner} does not record {', '.join(missing)}; {fix}",
            )
        if not on:
            return _check(
                "aws-config-recording",
                target,
                "stopped",
                "recording",
                False,
                f"recorder of {owner} is not recording; start it "
                f"(aws configservice start-configuration-recorder --configuration-"
                f"recorder-name {recorder['name']} --region {region})",
            )
        if not channels:
            return _check(
                "aws-config-recording",
                target,
                "no delivery channel",
                "recording",
                False,
                "a recorder without a delivery channel records nothing",
            )
        return _check(
            "aws-config-recording",
            target,
            "recording",
            "recording",
            True,
            f"AWS Config ({owner}) records the AWS Backup types in {region}",
        )
    return _check(
        "aws-config-recording",
        region,
        "no recorder",
        "recording",
        False,
        f"no AWS Config recorder in {region}: the audit frameworks never evaluate; {fix}",
    )


def reports_role_check(clients: ClientFactory, region: str) -> Any:
    iam = clients("iam", region)
    roles = [
        r
        for page in iam.get_paginator("list_roles").paginate(PathPrefix=REPORTS_ROLE_PATH)
        for r in page["Roles"]
    ]
    if roles:
        return _check(
            "backup-reports-role",
            roles[0]["Arn"],
            "exists",
            "exists",
            True,
            "the AWS Backup reports service-linked role exists",
        )
    return _check(
        "backup-reports-role",
        REPORTS_ROLE_PATH,
        "missing",
        "exists",
        False,
        "create it once per account before `pulumi up` (the reports bucket and key "
        "policies name it): aws iam create-service-linked-role --aws-service-name "
        "reports.backup.amazonaws.com",
    )


def opt_in_checks(objectives: Objectives, clients: ClientFactory) -> list:
    found = []
    for region in (objectives.regions.primary, objectives.regions.dr):
        settings = clients("backup", region).describe_region_settings()
        opted = settings.get("ResourceTypeOptInPreference") or {}
        off = [t for t in PROTECTED_TYPES if not opted.get(t)]
        found.append(
            _check(
                "backup-opt-in",
                region,
                ", ".join(t for t in PROTECTED_TYPES if opted.get(t)) or "none",
                ", ".join(PROTECTED_TYPES),
                not off,
                "AWS Backup protects S3 and RDS here"
                if not off
                else f"not opted in to {', '.join(off)}: plans skip them; aws backup "
                f"update-region-settings --region {region} --resource-type-opt-in-preference "
                + ",".join(f"{t}=true" for t in PROTECTED_TYPES),
            )
        )
    return found


def probe_check(outputs: Mapping[str, Any], clients: ClientFactory, now: dt.datetime) -> Any:
    record = need(outputs, "drStandby", "recordName")
    region = need(outputs, "drStandby", "drRegion")
    points = clients("cloudwatch", region).get_metric_statistics(
        Namespace=PROBE_NAMESPACE,
        MetricName=PROBE_METRIC,
        Dimensions=[{"Name": PROBE_DIMENSION, "Value": record}],
        StartTime=now - dt.timedelta(seconds=PROBE_WINDOW_S),
        EndTime=now + dt.timedelta(minutes=1),  # the minute in progress counts too
        Period=60,
        Statistics=["Minimum", "SampleCount"],
    )["Datapoints"]
    target = f"{region}/{PROBE_NAMESPACE}/{PROBE_METRIC}/{record}"
    if not points:
        return _check(
            "primary-probe",
            target,
            0,
            "every minute",
            False,
            f"no probe data in {PROBE_WINDOW_S // 60} min: install the rendered "
            "platform-dr-primary-probe units (drctl render) on a host in the primary's "
            "network, with the probePolicyArn policy on its role",
        )
    latest = max(points, key=lambda p: p["Timestamp"])
    up = latest.get("Minimum", 0) >= 1
    return _check(
        "primary-probe",
        target,
        len(points),
        "every minute",
        True,
        f"{len(points)} probe minutes in the last {PROBE_WINDOW_S // 60} min; the "
        f"primary was {'up' if up else 'DOWN'} at the last one",
    )


def config_recording_of(stack: str, root) -> str:
    """The stack's awsConfigRecording choice, from its stack file."""
    from components.backup_plan import parse_config_recording
    from components.objectives import PROJECT
    from scripts.local.evaluate import read_stack_config

    raw = read_stack_config(stack, root)
    return parse_config_recording({k.removeprefix(f"{PROJECT}:"): v for k, v in raw.items()})


def prerequisite_checks(
    objectives: Objectives,
    outputs: Mapping[str, Any],
    clients: ClientFactory,
    *,
    config_recording: str = "stack",
    now: dt.datetime | None = None,
) -> list[Check]:
    """Every prerequisite as its own line; an AWS error or a missing output fails only its own."""
    if config_recording not in CONFIG_RECORDING:
        raise ValueError(f"config_recording {config_recording!r}")
    now = now or dt.datetime.now(dt.UTC)
    runs: list[tuple[str, Callable[[], Any]]] = [
        (
            "aws-config-recording",
            lambda: config_recording_check(objectives, config_recording, clients),
        ),
        ("backup-reports-role", lambda: reports_role_check(clients, objectives.regions.primary)),
        ("backup-opt-in", lambda: opt_in_checks(objectives, clients)),
        ("primary-probe", lambda: probe_check(outputs, clients, now)),
    ]
    found: list[Check] = []
    for name, run in runs:
        try:
            result = run()
        except (ClientError, BotoCoreError, MissingOutput) as err:
            result = _check(name, "-", None, None, False, error_detail(err))
        found += result if isinstance(result, list) else [result]
    return found


def _run(ctx: Context) -> list[Check]:
    return prerequisite_checks(
        ctx.objectives,
        ctx.outputs,
        ctx.clients,
        config_recording=config_recording_of(ctx.stack, ctx.root),
        now=ctx.now,
    )


# One line in verify's CHECKS (scripts/checks/verify/__init__.py).
PREREQUISITES = CheckGroup("prerequisites", _run)
