"""AWS Backup semantics (vault lock, lifecycles, AWS Config) and service role trust."""

from __future__ import annotations

from .graph import ROLE_TYPE, Stack, get
from .graph import whole as _whole
from .iam_eval import ALLOW, as_list, decide, policy_doc, statements
from .services import (
    ASSUME_ROLE_CONTEXT,
    BACKUP_AUDIT_CONFIG_TYPES,
    COLD_MIN_DAYS,
    CONTINUOUS_MAX_DAYS,
    LOCK_MIN_CHANGEABLE_DAYS,
)

Finding = tuple[str, str]
BACKUP_PLAN_COMPONENT = "platform-dr:backup_plan:BackupPlan"
PLAN_TYPE = "aws:backup/plan:Plan"
LOCK_TYPE = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
VAULT_TYPE = "aws:backup/vault:Vault"
FRAMEWORK_TYPE = "aws:backup/framework:Framework"


def _vault_names_by_arn(stack: Stack) -> dict[str, str]:
    names: dict[str, str] = {}
    for comp in stack.of(BACKUP_PLAN_COMPONENT):
        arns = get(comp.props, "vault_arns") or {}
        vaults = get(comp.props, "vault_names") or {}
        for region, arn in arns.items():
            if region in vaults:
                names[arn] = vaults[region]
    for vault in stack.of(VAULT_TYPE):
        if get(vault.props, "arn") and get(vault.props, "name"):
            names[vault.props["arn"]] = vault.props["name"]
    return names


def _lifecycles(stack: Stack):
    """(plan, rule name, target vault name, lifecycle, continuous) for every rule and copy."""
    by_arn = _vault_names_by_arn(stack)
    for plan in stack.of(PLAN_TYPE):
        for rule in as_list(get(plan.props, "rules")):
            name, continuous = rule.get("ruleName", "?"), bool(rule.get("enableContinuousBackup"))
            yield plan, name, rule.get("targetVaultName"), rule.get("lifecycle") or {}, continuous
            for copy in as_list(rule.get("copyActions")):
                arn = copy.get("destinationVaultArn")
                yield (
                    plan,
                    f"{name} copy",
                    by_arn.get(arn, arn),
                    copy.get("lifecycle") or {},
                    (continuous),
                )


def vault_lock_bounds(stack: Stack) -> list[Finding]:
    """Every recovery point a plan writes into a locked vault fits the lock's retention bounds.

    Document: AWS Backup Developer Guide, "AWS Backup Vault Lock"
    (https://docs.aws.amazon.com/aws-backup/latest/devguide/vault-lock.html): with a minimum
    and maximum retention set, backup and copy jobs whose lifecycle falls outside them fail;
    in compliance mode the grace period (ChangeableForDays) is at least 3 days.

    Constraint: for every rule (and every copy action) targeting a locked vault,
    min_retention_days <= delete_after <= max_retention_days; a lifecycle without
    delete_after keeps points forever, which a maximum refuses.
    """
    found: list[Finding] = []
    locks = {get(lock.props, "backupVaultName"): lock for lock in stack.of(LOCK_TYPE)}
    for lock in locks.values():
        changeable = _whole(get(lock.props, "changeableForDays"))
        if changeable is not None and changeable < LOCK_MIN_CHANGEABLE_DAYS:
            found.append(
                (
                    lock.name,
                    f"changeableForDays {changeable} is under AWS's minimum of "
                    f"{LOCK_MIN_CHANGEABLE_DAYS}",
                )
            )
    for plan, rule, vault, life, _ in _lifecycles(stack):
        lock = locks.get(vault)
        if lock is None:
            continue
        low = _whole(get(lock.props, "minRetentionDays"))
        high = _whole(get(lock.props, "maxRetentionDays"))
        keep = _whole(life.get("deleteAfter"))
        if keep is None and high is not None:
            found.append(
                (
                    plan.name,
                    f"{rule}: keeps points forever in {vault}, whose lock allows "
                    f"at most {high} d: every job fails",
                )
            )
        elif keep is not None and low is not None and keep < low:
            found.append(
                (
                    plan.name,
                    f"{rule}: keeps points {keep} d in {vault}, whose lock needs "
                    f"at least {low} d: every job fails",
                )
            )
        elif keep is not None and high is not None and keep > high:
            found.append(
                (
                    plan.name,
                    f"{rule}: keeps points {keep} d in {vault}, whose lock allows "
                    f"at most {high} d: every job fails",
                )
            )
    return found


def backup_lifecycles_valid(stack: Stack) -> list[Finding]:
    """Backup lifecycles AWS Backup accepts: continuous backup and cold storage limits.

    Documents: AWS Backup Developer Guide, "Continuous backups and point-in-time recovery (PITR)"
    (https://docs.aws.amazon.com/aws-backup/latest/devguide/point-in-time-recovery.html): a
    continuous backup keeps at most 35 days and cannot move to cold storage; "Lifecycle and
    storage tiers" (https://docs.aws.amazon.com/aws-backup/latest/devguide/plan-options-and-
    configuration.html): a recovery point stays in cold storage at least 90 days.

    Constraint: a continuous rule keeps at most 35 days and never goes cold; a rule (or copy)
    that moves points to cold storage keeps them at least 90 days after the move
    (delete_after >= cold_storage_after + 90). AWS Backup rejects the plan otherwise.
    """
    found: list[Finding] = []
    for plan, rule, _vault, life, continuous in _lifecycles(stack):
        keep = _whole(life.get("deleteAfter"))
        cold = _whole(life.get("coldStorageAfter"))
        if continuous and (keep is None or keep > CONTINUOUS_MAX_DAYS):
            found.append(
                (
                    plan.name,
                    f"{rule}: continuous backup kept {keep} d; at most {CONTINUOUS_MAX_DAYS}",
                )
            )
        if continuous and cold:
            found.append((plan.name, f"{rule}: continuous backups cannot move to cold storage"))
        if cold and keep is not None and keep < cold + COLD_MIN_DAYS:
            found.append(
                (
                    plan.name,
                    f"{rule}: cold after {cold} d but deleted at {keep} d; cold "
                    f"storage keeps points at least {COLD_MIN_DAYS} d",
                )
            )
    return found


def audit_frameworks_have_config(stack: Stack) -> list[Finding]:
    """Backup Audit Manager frameworks have AWS Config recording the AWS Backup resource types.

    Document: AWS Backup Developer Guide, "Choosing your controls" (https://docs.aws.amazon.com/
    aws-backup/latest/devguide/choosing-controls.html) and "Turning on resource tracking":
    "Every control requires the recording resource type AWS Config: resource compliance", and
    the controls evaluate backup plans, selections, vaults and recovery points.

    Constraint: in every region with a framework, either this stack declares an AWS Config
    recorder recording those types (all supported, or at least these), with a delivery channel
    and an enabled recorder status, or the stack declares that the organisation records centrally
    (``awsConfigRecording: organization``), which ``drctl verify`` then checks live. Without it
    the frameworks deploy and never evaluate.
    """
    found: list[Finding] = []
    central = {
        get(c.props, "framework_region")
        for c in stack.of(BACKUP_PLAN_COMPONENT)
        if get(c.props, "config_recording") == "organization"
    }
    recorders = stack.of("aws:cfg/recorder:Recorder")
    channels = {get(c.props, "region") for c in stack.of("aws:cfg/deliveryChannel:DeliveryChannel")}
    started = {
        get(s.props, "region")
        for s in stack.of("aws:cfg/recorderStatus:RecorderStatus")
        if get(s.props, "isEnabled") is True
    }
    for region in sorted({get(f.props, "region") for f in stack.of(FRAMEWORK_TYPE)}):
        if region in central:
            continue
        recording = [r for r in recorders if get(r.props, "region") == region]
        if not recording:
            found.append(
                (
                    "stack",
                    f"frameworks in {region} but no AWS Config recorder there and "
                    "no declared central recorder (awsConfigRecording: organization)",
                )
            )
            continue
        group = get(recording[0].props, "recordingGroup") or {}
        types = set(as_list(group.get("resourceTypes")))
        missing = (
            [] if group.get("allSupported") else sorted(set(BACKUP_AUDIT_CONFIG_TYPES) - types)
        )
        if missing:
            found.append((recording[0].name, f"does not record {', '.join(missing)}"))
        if region not in channels:
            found.append((recording[0].name, f"no delivery channel in {region}: it cannot start"))
        if region not in started:
            found.append(
                (recording[0].name, f"never started (no enabled recorder status in {region})")
            )
    return found


def service_roles_assumable(stack: Stack) -> list[Finding]:
    """Each service role's trust policy admits the service with the condition keys it sends.

    Documents: Amazon S3 User Guide, "Setting up permissions for live replication"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/setting-repl-config-perm-overview.html);
    AWS Backup Developer Guide, "Cross-service confused deputy prevention"
    (https://docs.aws.amazon.com/aws-backup/latest/devguide/cross-service-confused-deputy-
    prevention.html); AWS Config Developer Guide, "Permissions for the IAM role assigned to AWS
    Config" (https://docs.aws.amazon.com/config/latest/developerguide/iamrole-permissions.html);
    IAM User Guide, "Using an IAM role to grant permissions to applications running on Amazon EC2
    instances" (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html:
    EC2 assumes an instance profile's role without aws:SourceAccount or aws:SourceArn).

    Constraint: sts:AssumeRole by the service principal, with only the condition keys that
    service sends, is allowed; a condition on a key it does not send makes the role unusable.
    """
    found: list[Finding] = []
    for role in stack.of(ROLE_TYPE):
        trust = policy_doc(get(role.props, "assumeRolePolicy"))
        services = {
            s
            for st in statements(trust)
            for s in as_list(
                (st.get("Principal") or {}).get("Service")
                if isinstance(st.get("Principal"), dict)
                else None
            )
        }
        for service in sorted(services & set(ASSUME_ROLE_CONTEXT)):
            sent = {k.lower() for k in ASSUME_ROLE_CONTEXT[service]}
            # The service fills the keys it sends with the values of its request; assume the
            # best case for those (the account, the resource) and leave out the ones it does not.
            context = {
                key: stack.account if key.lower() == "aws:sourceaccount" else str(as_list(value)[0])
                for st in statements(trust)
                for tests in (st.get("Condition") or {}).values()
                for key, value in (tests or {}).items()
                if key.lower() in sent and as_list(value)
            }
            verdict = decide(
                trust, "sts:AssumeRole", "*", context, {"Service": service}, stack.account
            )
            if verdict != ALLOW:
                sent = ", ".join(ASSUME_ROLE_CONTEXT[service]) or "no condition keys"
                found.append(
                    (
                        role.name,
                        f"{service} cannot assume it: the trust policy needs a "
                        f"condition the service does not send (it sends {sent})",
                    )
                )
    return found


RULES = [
    ("backup-vault-lock-bounds", "Plan lifecycles fit the vault locks", vault_lock_bounds),
    (
        "backup-lifecycles-valid",
        "Continuous and cold-storage lifecycles are accepted",
        backup_lifecycles_valid,
    ),
    (
        "backup-audit-config",
        "Audit frameworks have AWS Config recording their resource types",
        audit_frameworks_have_config,
    ),
    (
        "service-role-trust",
        "Service roles are assumable with the context each service sends",
        service_roles_assumable,
    ),
]
