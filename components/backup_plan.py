"""BackupPlan: AWS Backup for every data class, derived from the objectives.

What it declares:

- a vault in the primary and in the DR region, each under its own customer key, with a vault lock
  in compliance mode and an access policy that denies deleting recovery points;
- one backup plan per data class whose rules follow the spec's schedule (hourly, daily, weekly,
  monthly) and the class objectives, every rule copying to the DR vault;
- a selection per class by the ``backup-class`` tag that ``class_tags()`` puts on every resource;
- a monthly restore-testing plan with RDS and S3 selections per class;
- a Backup Audit Manager framework per class whose controls carry the class RPO and RTO, plus
  report plans, and EventBridge rules that send failed jobs to the alert topics.

Every number comes from a pure function of components/backup_derivation.py (``backup_rules``,
``vault_lock_settings``, ``audit_controls`` ...), re-exported here, so tests, the policy rules and
``drctl verify`` can compute the same values without declaring anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.backup_derivation import (  # noqa: F401  (re-exported: callers import them here)
    AUDIT_MAX_AGE_HOURS,
    AUDIT_MAX_FREQUENCY_HOURS,
    CLASS_TIERS,
    COLD_MIN_DAYS,
    CONTINUOUS_CRON,
    CONTINUOUS_MAX_DAYS,
    DATASET,
    FAILED_JOB_STATES,
    JOB_DETAIL_TYPES,
    LOCK_MIN_CHANGEABLE_DAYS,
    MANAGED_BACKUP_POLICIES,
    MANAGED_RESTORE_POLICIES,
    RESTORE_TEST_RESOURCE_TYPES,
    RESTORE_TEST_START_WINDOW_HOURS,
    START_WINDOW_MIN,
    TIER_CRON,
    VALIDATION_WINDOW_MAX_HOURS,
    VAULT_LOCK_MODES,
    ControlSpec,
    RuleSpec,
    VaultLockSettings,
    _resource_name,
    audit_controls,
    audit_hours,
    backup_rules,
    failed_jobs_pattern,
    framework_name,
    plan_name,
    restore_test_schedule,
    restore_testing_plan_name,
    validation_window_hours,
    vault_access_policy,
    vault_key_policy,
    vault_lock_settings,
    vault_name,
)
from components.config_recorder import CONFIG_PREFIX, ConfigRecorder, ConfigRecorderArgs
from components.iam import service_trust_policy
from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import (
    DATA_CLASSES,
    DAY,
    MINUTE,
    PROJECT,
    TAG_CLASS,
    ConfigError,
    Objectives,
    class_tags,
)
from components.replicated_bucket import DeliveryTarget, ReplicatedBucket, ReplicatedBucketArgs

# Who records AWS Backup resources in AWS Config for the audit frameworks (config key
# awsConfigRecording): this stack (a ConfigRecorder), or the organisation's central recorder.
CONFIG_RECORDING = ("stack", "organization")
REPORTS_PREFIX = "backup-reports"


# ---------------------------------------------------------------------------------------------
# Component


@dataclass
class BackupPlanArgs:
    """Arguments of BackupPlan.

    objectives: the stack's Objectives; regions, class RPO/RTO/retention and schedule come from it.
    alarm_topic_arns: region -> encrypted SNS topic ARN; required for the primary and DR regions
        (failed backup, copy and restore jobs are sent there).
    vault_lock_mode: "COMPLIANCE" (default: nobody can remove the lock after the grace period) or
        "GOVERNANCE" (removable with IAM permission; only for throwaway stacks).
    lock_changeable_for_days: compliance-mode grace period before the lock becomes immutable;
        default 3 (AWS's minimum).
    report_formats: Backup Audit Manager report formats; default ("CSV", "JSON").
    config_recording: "stack" (default: declare an AWS Config recorder of the AWS Backup types
        in the primary region) or "organization" (a central recorder exists; drctl verify checks
        it records those types).
    """

    objectives: Objectives
    alarm_topic_arns: Mapping[str, pulumi.Input[str]]
    vault_lock_mode: str = "COMPLIANCE"
    lock_changeable_for_days: int = LOCK_MIN_CHANGEABLE_DAYS
    report_formats: tuple[str, ...] = ("CSV", "JSON")
    config_recording: str = "stack"


def parse_config_recording(raw) -> str:
    """The awsConfigRecording key of raw stack config, validated."""
    value = str(raw.get("awsConfigRecording") or "stack").strip().lower()
    if value not in CONFIG_RECORDING:
        raise ConfigError("awsConfigRecording", value, " or ".join(CONFIG_RECORDING))
    return value


def load_config_recording() -> str:
    from components.objectives import raw_config_from_pulumi

    return parse_config_recording(raw_config_from_pulumi())


class BackupPlan(pulumi.ComponentResource):
    """Outputs: ``vault_names``/``vault_arns`` (region -> value), ``plan_ids`` and
    ``framework_arns`` (class -> value), ``restore_testing_plan_name``, ``report_bucket_name``."""

    TYPE = f"{PROJECT}:backup_plan:BackupPlan"

    def __init__(self, name: str, args: BackupPlanArgs, opts: pulumi.ResourceOptions | None = None):
        objectives = args.objectives
        primary, dr = objectives.regions.primary, objectives.regions.dr
        # Everything derivable is derived (and validated) before any resource is declared.
        lock = vault_lock_settings(objectives, args.vault_lock_mode, args.lock_changeable_for_days)
        rules = {c: backup_rules(objectives, c) for c in DATA_CLASSES}
        controls = {c: audit_controls(objectives, c, lock) for c in DATA_CLASSES}
        if args.config_recording not in CONFIG_RECORDING:
            raise ConfigError(
                "awsConfigRecording", args.config_recording, " or ".join(CONFIG_RECORDING)
            )
        missing = [r for r in (primary, dr) if r not in args.alarm_topic_arns]
        if missing:
            raise ConfigError(
                "alarm_topic_arns",
                sorted(args.alarm_topic_arns),
                f"a topic for every vault region; missing {', '.join(missing)}",
            )
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        data_opts = pulumi.ResourceOptions(
            parent=self, protect=objectives.protect_data, retain_on_delete=objectives.protect_data
        )
        tags = class_tags("critical", DATASET)
        account = aws.get_caller_identity_output().account_id

        # Vaults. One single-region key per vault, not replicas of one multi-Region key: AWS
        # Backup re-encrypts every cross-region copy under the destination vault's key, so shared
        # key material buys nothing, while a replica key rotates from, and is managed through,
        # its primary region, the region whose loss the DR vault exists for.
        self.vault_names: dict[str, pulumi.Output[str]] = {}
        self.vault_arns: dict[str, pulumi.Output[str]] = {}
        key_arns: list[pulumi.Output[str]] = []
        for role, region in (("primary", primary), ("dr", dr)):
            key = MultiRegionKey(
                f"{name}-{role}-key",
                MultiRegionKeyArgs(
                    regions=[region],
                    description=f"AWS Backup vault ({role}, {region})",
                    data_class="critical",
                    dataset=DATASET,
                ),
                # Losing the key loses every recovery point in the vault: protected like data.
                opts=pulumi.ResourceOptions(parent=self, protect=objectives.protect_data),
            )
            vault = aws.backup.Vault(
                f"{name}-{role}-vault",
                region=region,
                name=vault_name(objectives, region),
                kms_key_arn=key.arns[region],
                force_destroy=False,
                tags=tags,
                opts=data_opts,
            )
            aws.backup.VaultLockConfiguration(
                f"{name}-{role}-lock",
                region=region,
                backup_vault_name=vault.name,
                min_retention_days=lock.min_retention_days,
                max_retention_days=lock.max_retention_days,
                changeable_for_days=lock.changeable_for_days,
                opts=data_opts,
            )
            aws.backup.VaultPolicy(
                f"{name}-{role}-policy",
                region=region,
                backup_vault_name=vault.name,
                policy=vault.arn.apply(vault_access_policy),
                opts=child,
            )
            self.vault_names[region] = vault.name
            self.vault_arns[region] = vault.arn
            key_arns.append(key.arns[region])

        # Separate roles: the one that writes recovery points cannot restore them, and back.
        backup_role = self._role(f"{name}-backup-role", account, key_arns, False, child)
        restore_role = self._role(f"{name}-restore-role", account, key_arns, True, child)

        # Plans and selections, one per class.
        self.plan_ids: dict[str, pulumi.Output[str]] = {}
        for cls in DATA_CLASSES:
            cls_tags = class_tags(cls, DATASET)
            plan = aws.backup.Plan(
                f"{name}-{cls}",
                region=primary,
                name=plan_name(objectives, cls),
                rules=[
                    self._rule(spec, self.vault_names[primary], self.vault_arns[dr], cls_tags)
                    for spec in rules[cls]
                ],
                tags=cls_tags,
                opts=child,
            )
            aws.backup.Selection(
                f"{name}-{cls}-selection",
                region=primary,
                name=plan_name(objectives, cls),
                plan_id=plan.id,
                iam_role_arn=backup_role.arn,
                selection_tags=[
                    aws.backup.SelectionSelectionTagArgs(
                        type="STRINGEQUALS", key=TAG_CLASS, value=cls
                    )
                ],
                opts=child,
            )
            self.plan_ids[cls] = plan.id

        # Restore testing: monthly, from the primary vault, RDS and S3 of every class.
        testing = aws.backup.RestoreTestingPlan(
            f"{name}-restore-testing",
            region=primary,
            name=restore_testing_plan_name(objectives),
            schedule_expression=restore_test_schedule(objectives.schedule.restore_test_s),
            schedule_expression_timezone="Etc/UTC",
            start_window_hours=RESTORE_TEST_START_WINDOW_HOURS,
            recovery_point_selection=aws.backup.RestoreTestingPlanRecoveryPointSelectionArgs(
                algorithm="LATEST_WITHIN_WINDOW",
                include_vaults=[self.vault_arns[primary]],
                recovery_point_types=["SNAPSHOT", "CONTINUOUS"],
                selection_window_days=max(1, objectives.schedule.restore_test_s // DAY),
            ),
            tags=tags,
            opts=child,
        )
        for cls in DATA_CLASSES:
            for resource_type in RESTORE_TEST_RESOURCE_TYPES:
                aws.backup.RestoreTestingSelection(
                    f"{name}-restore-testing-{cls}-{resource_type.lower()}",
                    region=primary,
                    name=f"{cls}_{resource_type.lower()}",
                    restore_testing_plan_name=testing.name,
                    protected_resource_type=resource_type,
                    iam_role_arn=restore_role.arn,
                    protected_resource_arns=["*"],
                    protected_resource_conditions=aws.backup.RestoreTestingSelectionProtectedResourceConditionsArgs(
                        string_equals=[
                            aws.backup.RestoreTestingSelectionProtectedResourceConditionsStringEqualArgs(
                                key=f"aws:ResourceTag/{TAG_CLASS}", value=cls
                            )
                        ]
                    ),
                    validation_window_hours=validation_window_hours(objectives, cls),
                    opts=child,
                )
        self.restore_testing_plan_name = testing.name

        # Audit: one framework per class, because each class's controls carry different values
        # and a control name appears once per framework.
        self.framework_arns: dict[str, pulumi.Output[str]] = {}
        for cls in DATA_CLASSES:
            framework = aws.backup.Framework(
                f"{name}-{cls}-framework",
                region=primary,
                name=framework_name(objectives, cls),
                description=f"{cls} data: RPO, RTO, cross-region copy, lock, encryption, retention",
                controls=[
                    aws.backup.FrameworkControlArgs(
                        name=c.name,
                        input_parameters=[
                            aws.backup.FrameworkControlInputParameterArgs(name=k, value=v)
                            for k, v in c.parameters.items()
                        ]
                        or None,
                        scope=aws.backup.FrameworkControlScopeArgs(tags=c.scope_tags),
                    )
                    for c in controls[cls]
                ],
                tags=class_tags(cls, DATASET),
                opts=child,
            )
            self.framework_arns[cls] = framework.arn

        # Report plans deliver as the AWSServiceRoleForBackupReports role, and AWS Config as its
        # service principal: the bucket and key policies must name them (DeliveryTarget).
        deliveries = [DeliveryTarget("backup-reports", REPORTS_PREFIX)]
        if args.config_recording == "stack":
            deliveries.append(DeliveryTarget("aws-config", CONFIG_PREFIX))
        reports = ReplicatedBucket(
            f"{name}-reports",
            ReplicatedBucketArgs(
                objectives=objectives,
                data_class="operational",
                dataset="backup-reports",
                alarm_topic_arns=args.alarm_topic_arns,
                deliveries=deliveries,
            ),
            opts=child,
        )
        self.report_bucket_name = reports.primary_bucket_name
        if args.config_recording == "stack":
            ConfigRecorder(
                f"{name}-config",
                ConfigRecorderArgs(
                    objectives=objectives,
                    region=primary,
                    bucket_name=reports.bucket_names[primary],
                    bucket_arn=reports.bucket_arns[primary],
                    key_arn=reports.key_arns[primary],
                ),
                opts=child,
            )
        report_settings = {
            "compliance": aws.backup.ReportPlanReportSettingArgs(
                report_template="CONTROL_COMPLIANCE_REPORT",
                framework_arns=list(self.framework_arns.values()),
                number_of_frameworks=len(self.framework_arns),
            ),
            **{
                job: aws.backup.ReportPlanReportSettingArgs(
                    report_template=f"{job.upper()}_JOB_REPORT", regions=[primary, dr]
                )
                for job in ("backup", "copy", "restore")
            },
        }
        for report, setting in report_settings.items():
            aws.backup.ReportPlan(
                f"{name}-{report}-report",
                region=primary,
                name=_resource_name(objectives, report, sep="_"),
                description=f"{report} report of {PROJECT} {objectives.stack}",
                report_delivery_channel=aws.backup.ReportPlanReportDeliveryChannelArgs(
                    s3_bucket_name=reports.primary_bucket_name,
                    s3_key_prefix=f"{REPORTS_PREFIX}/{report}",
                    formats=list(args.report_formats),
                ),
                report_setting=setting,
                tags=class_tags("operational", "backup-reports"),
                opts=child,
            )

        # Failed, aborted, expired or partial jobs in either vault region go to that region's
        # encrypted alert topic (EventBridge can only target a topic in its own region).
        for role, region in (("primary", primary), ("dr", dr)):
            rule = aws.cloudwatch.EventRule(
                f"{name}-{role}-failed-jobs",
                region=region,
                description="AWS Backup backup, copy or restore job failed, aborted or expired",
                event_pattern=failed_jobs_pattern(),
                tags=class_tags("operational", DATASET),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{role}-failed-jobs-topic",
                region=region,
                rule=rule.name,
                arn=args.alarm_topic_arns[region],
                opts=child,
            )

        self.register_outputs(
            {
                "vault_names": self.vault_names,
                "vault_arns": self.vault_arns,
                "plan_ids": self.plan_ids,
                "framework_arns": self.framework_arns,
                "restore_testing_plan_name": self.restore_testing_plan_name,
                "report_bucket_name": self.report_bucket_name,
                # What the AWS Config prerequisite rule and drctl verify read.
                "config_recording": args.config_recording,
                "framework_region": primary,
            }
        )

    @staticmethod
    def _rule(spec: RuleSpec, vault_name, dr_vault_arn, tags) -> aws.backup.PlanRuleArgs:
        lifecycle = dict(
            delete_after=spec.delete_after_days,
            cold_storage_after=spec.cold_storage_after_days,
            opt_in_to_archive_for_supported_resources=(
                True if spec.cold_storage_after_days else None
            ),
        )
        return aws.backup.PlanRuleArgs(
            rule_name=spec.name,
            target_vault_name=vault_name,
            schedule=spec.schedule,
            schedule_expression_timezone="Etc/UTC",
            start_window=spec.start_window_min,
            completion_window=spec.completion_window_min,
            enable_continuous_backup=spec.continuous or None,
            lifecycle=aws.backup.PlanRuleLifecycleArgs(**lifecycle),
            # The DR copy lives exactly as long as the source recovery point.
            copy_actions=[
                aws.backup.PlanRuleCopyActionArgs(
                    destination_vault_arn=dr_vault_arn,
                    lifecycle=aws.backup.PlanRuleCopyActionLifecycleArgs(**lifecycle),
                )
            ],
            # Recovery points carry the class tag so tag-scoped audit controls see them.
            recovery_point_tags=tags,
        )

    @staticmethod
    def _role(name, account, key_arns, restore: bool, child) -> aws.iam.Role:
        role = aws.iam.Role(
            name,
            assume_role_policy=account.apply(
                lambda a: service_trust_policy("backup.amazonaws.com", a)
            ),
            description="AWS Backup " + ("restores and restore tests" if restore else "backups"),
            tags=class_tags("critical", DATASET),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-vault-keys",
            role=role.id,
            policy=pulumi.Output.all(*key_arns).apply(
                lambda arns: vault_key_policy(list(arns), restore)
            ),
            opts=child,
        )
        for arn in MANAGED_RESTORE_POLICIES if restore else MANAGED_BACKUP_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-{arn.rsplit('/', 1)[-1]}", role=role.name, policy_arn=arn, opts=child
            )
        return role


def describe(objectives: Objectives) -> str:
    """The derivation as a plain-text table (`python -m scripts.describe backup-plan prod`)."""
    lock = vault_lock_settings(objectives)
    lines = [
        f"vault lock: {lock.mode}, retention {lock.min_retention_days}-"
        f"{lock.max_retention_days} d, changeable for {lock.changeable_for_days} d",
        "class        rule        schedule                kept  cold  continuous",
    ]
    for cls in DATA_CLASSES:
        for rule in backup_rules(objectives, cls):
            cold = rule.cold_storage_after_days or "-"
            lines.append(
                f"{cls:<12} {rule.name:<11} {rule.schedule:<23} {rule.delete_after_days:>4}"
                f"  {cold!s:>4}  {'yes' if rule.continuous else 'no'}"
            )
    lines.append("class        audited RPO  RTO (min)  restore-test validation (h)")
    for cls in DATA_CLASSES:
        objective = objectives.of(cls)
        rto_min = math.ceil(objective.rto_s / MINUTE)
        lines.append(
            f"{cls:<12} {audit_hours(objective.rpo_s):>9} h  {rto_min:>9}"
            f"  {validation_window_hours(objectives, cls):>27}"
        )
    return "\n".join(lines)
