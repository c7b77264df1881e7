"""The self-managed database hosts' files and what they need from AWS beyond pgBackRest.

``render_self_managed`` is every file a database host gets (pgBackRest, archiving, backup timers,
the re-arm variant, and the host agents of components/pg_host_agents.py); PostgresBackup exports
it as ``artefacts``. ``declare_host_protection`` declares, under PostgresBackup, the pgBackRest
cipher passphrase in Secrets Manager with its DR-region replica, the host role's access to it and
to the fence lease, and the alarm on the DR slot's wal_status.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pulumi
import pulumi_aws as aws

from components import pg_host_agents as agents
from components import pgbackrest_config as pgbr
from components import pgbackrest_schedule
from components.failover_control import lease_access_policy
from components.objectives import Objectives, class_tags

DATASET = "database"


_SLOT = re.compile(r"[^a-z0-9_]")


def slot_name(objectives: Objectives) -> str:
    """Physical slot of the DR standby: lowercase letters, digits and '_' only (Postgres rule)."""
    return _SLOT.sub("_", f"dr_standby_{objectives.regions.dr}".lower())


def declare_host_protection(component, name: str, objectives: Objectives, args, repo1, repo2):
    """What the hosts need beyond pgBackRest: the cipher passphrase in Secrets Manager with a
    DR-region replica, read access to it and to the lease, and the slot's wal_status alarm.

    Declared as children of ``component`` (PostgresBackup, self-managed); returns the secret's
    ARN per region."""
    regions = objectives.regions
    tags = class_tags("critical", DATASET)
    child = pulumi.ResourceOptions(parent=component)
    data_opts = pulumi.ResourceOptions(
        parent=component, protect=objectives.protect_data, retain_on_delete=True
    )
    secret = aws.secretsmanager.Secret(
        f"{name}-cipher-pass",
        region=regions.primary,
        name=cipher_secret_name(objectives),
        description="pgBackRest repository cipher passphrase (repo1 and repo2)",
        kms_key_id=repo1.key_arns[regions.primary],
        # The DR host decrypts repo2 with this copy after the primary region is gone.
        replicas=[{"region": regions.dr, "kms_key_id": repo2.key_arns[regions.dr]}],
        recovery_window_in_days=30,
        tags=tags,
        opts=data_opts,
    )
    random = aws.secretsmanager.get_random_password_output(
        password_length=48, exclude_punctuation=True, region=regions.primary
    )
    aws.secretsmanager.SecretVersion(
        f"{name}-cipher-pass-value",
        region=regions.primary,
        secret_id=secret.id,
        secret_string=pulumi.Output.secret(random.random_password),
        # Drawn once: a new passphrase would make every existing backup unreadable.
        opts=pulumi.ResourceOptions(
            parent=component, ignore_changes=["secret_string"], retain_on_delete=True
        ),
    )
    cipher_secret_arns = {
        regions.primary: secret.arn,
        regions.dr: secret.arn.apply(
            lambda a: a.replace(f":{regions.primary}:", f":{regions.dr}:")
        ),
    }
    aws.iam.RolePolicy(
        f"{name}-host-cipher-pass",
        role=component.host_role.id,
        policy=pulumi.Output.all(*cipher_secret_arns.values()).apply(
            lambda arns: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ReadCipherPassphrase",
                            "Effect": "Allow",
                            "Action": ["secretsmanager:GetSecretValue"],
                            "Resource": sorted(arns),
                        }
                    ],
                }
            )
        ),
        opts=child,
    )
    aws.iam.RolePolicy(
        f"{name}-host-lease",
        role=component.host_role.id,
        policy=pulumi.Output.all(args.lease_bucket_arn, args.lease_key_arn).apply(
            lambda v: lease_access_policy(v[0], v[1], [objectives.stack])
        ),
        opts=child,
    )
    topic = args.alarm_topic_arns.get(regions.primary)
    aws.cloudwatch.MetricAlarm(
        f"{name}-slot-wal-status",
        region=regions.primary,
        namespace=agents.SLOT_METRIC_NAMESPACE,
        metric_name=agents.SLOT_METRIC,
        dimensions={"Slot": slot_name(objectives)},
        statistic="Maximum",
        period=60,
        evaluation_periods=1,
        threshold=agents.SLOT_ALARM_AT,
        comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="breaching",
        alarm_description=(
            f"replication slot {slot_name(objectives)} of the DR standby is unreserved or lost "
            "(max_slot_wal_keep_size reached: the standby must catch up from repo2), or is "
            "missing, or its monitor stopped reporting"
        ),
        alarm_actions=[topic] if topic else [],
        ok_actions=[topic] if topic else [],
        tags=tags,
        opts=child,
    )
    return cipher_secret_arns


def cipher_secret_name(objectives: Objectives) -> str:
    """The passphrase's secret name, the same in both regions (a replica keeps its name)."""
    return f"platform-dr/{objectives.stack}/database/pgbackrest-cipher-pass"


def render_self_managed(
    objectives: Objectives,
    repo1_bucket: str,
    repo2_bucket: str,
    repo1_key: str,
    repo2_key: str,
    lease_bucket: str,
    *,
    pg_path: str = "/var/lib/postgresql/15/main",
    rearm_repo: tuple[str, str, str] | None = None,
) -> dict[str, str]:
    """Every file a self-managed database host gets: pgBackRest, archiving, backup timers,
    the re-arm variant, and the host agents (components/pg_host_agents.py).

    ``rearm_repo``: (region, bucket, key ARN) of the promoted primary's second repository."""
    regions = objectives.regions
    settings = pgbr.s3_settings(
        objectives,
        bucket_names={regions.primary: repo1_bucket, regions.dr: repo2_bucket},
        kms_key_ids={regions.primary: repo1_key, regions.dr: repo2_key},
        pg_path=pg_path,
    )
    files = pgbackrest_schedule.render_all(objectives, settings)
    if rearm_repo:
        region, bucket, key = rearm_repo
        dr = settings.repo(2)
        new = replace(dr, region=region, bucket=bucket, kms_key_id=key, endpoint="")
        files |= pgbackrest_schedule.render_rearm(objectives, pgbr.rearm_settings(settings, new))
    template = pgbr.render_secret_conf(settings, {r.index: "\0" for r in settings.repos})
    files |= agents.render_host_agents(
        objectives,
        lease_bucket=lease_bucket,
        slot=slot_name(objectives),
        pgbackrest_argv=settings.base_command,
        pg=agents.HostPg(data_dir=pg_path),
        cipher_secret_name=cipher_secret_name(objectives),
        secret_conf_template=template,
        include_path=settings.config_include_path,
    )
    return files


def self_managed_paths(objectives: Objectives) -> list[str]:
    """The artefact file names the host gets (known before the bucket names are)."""
    return sorted(render_self_managed(objectives, "b", "b", "k", "k", "lease"))
