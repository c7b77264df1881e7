"""SecretsBackup: app secrets and config that survive the loss of a region or a bad change.

What it declares, for the primary region P and the DR region D of the stack:

- a multi-Region customer key (``MultiRegionKey``) in P with a replica in D, for everything below;
- one Secrets Manager secret per API key and per integration setting in P, each with a ``replicas``
  entry in D under the D replica key. Secrets Manager keeps the replica in step by itself;
- one SSM parameter per env-config value and per feature flag, declared once and materialised in
  P *and* D, because SSM has no replication. Sensitive env values are SecureStrings under the
  customer key (the replica key in D);
- a ``ReplicatedBucket`` with object lock for ``drctl config export`` snapshots, so a config
  backup also survives a compromised account user deleting or overwriting it.

Data classes (the ``backup-class`` tag), and why:

- API-key secrets and the key that encrypts them are **critical**. Payments, e-mail sign-in and
  music generation stop without them, and those are the spec's first restoration priority
  (user authentication, core music generation), so they get the critical objectives even though
  the spec files "API keys" under configuration.
- Integration settings, env config, feature flags and the snapshots are **operational**: the
  spec's "System Configuration" with an RPO of 24 h. The snapshots back that up.

Secret values come only from Pulumi secrets (``platform-dr-secrets:<name>`` config, set with
``pulumi config set --secret``). They are wrapped in ``Output.secret`` again where they enter a
resource and the resources also list them in ``additional_secret_outputs``, so nothing in state,
preview or stack outputs carries them in plain. A secret without a configured value is declared
without a version: evaluating the stack never needs a secret value, and the value can be put by
the rotation Lambda or by an operator.

Rebuild stacks (``objectives.is_rebuild``) run in the region where prod kept its DR copies. The
copies there are *read*, not re-created or re-configured (prod's state owns them, and a setting
declared by two stacks is overwritten by each ``pulumi up`` in turn): secrets by the ARN prod
exported, parameters by name. The rebuild stack then re-establishes a copy of each in *its own*
DR region, declared by it alone: a parameter with the adopted parameter's current value, and a
secret under its DR key holding the adopted secret's current value (read with
``GetSecretValue``; a configured ``platform-dr-secrets:`` value wins). These copies are
refreshed on every ``pulumi up`` of the rebuild stack, not continuously: after a rotation in the
new primary region, run ``pulumi up`` (or ``drctl rebuild``) to bring the DR copy up to date.
Native Secrets Manager replication cannot be declared here, because the adopted secret is a
replica owned by prod (a replica cannot have replicas of its own); promoting it is a failover
step (``drctl failover``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws

from components.keys import MultiRegionKey, MultiRegionKeyArgs
from components.objectives import PROJECT, ConfigError, Objectives, class_tags
from components.replicated_bucket import ObjectLock, ReplicatedBucket, ReplicatedBucketArgs
from components.secrets_config import (  # noqa: F401  (re-exported: callers import them here)
    ROLE_API_KEY,
    ROLE_ENV,
    ROLE_FLAG,
    ROLE_INTEGRATION,
    ROTATION_DAYS_MAX,
    ROTATION_DAYS_MIN,
    ConfigSettings,
    load_settings,
    parse_settings,
)

# Config namespace of secret values; kept apart from `platform-dr:` so that the objectives
# model (which rejects unknown keys) never sees them and `pulumi config` always stores them
# encrypted with --secret.
SECRETS_NAMESPACE = f"{PROJECT}-secrets"
APP_DATASET = "app-config"
SNAPSHOT_DATASET = "config-snapshots"


def namespace_of(objectives: Objectives) -> str:
    """Where the app reads its config: ``platform-dr/<stack>``.

    A rebuild stack keeps the source stack's namespace, so the application finds its parameters
    and secrets under the same names after failover.
    """
    stack = objectives.rebuild_from.split("/")[-1] if objectives.is_rebuild else objectives.stack
    return f"{PROJECT}/{stack}"


def parameter_prefix(namespace: str) -> str:
    return f"/{namespace}"


def parameter_name(namespace: str, key: str) -> str:
    return f"{parameter_prefix(namespace)}/{key}"


def secret_name(namespace: str, key: str) -> str:
    return f"{namespace}/{key}"


def config_regions(objectives: Objectives) -> tuple[str, str]:
    """The two regions that hold the app config: primary and DR."""
    return (objectives.regions.primary, objectives.regions.dr)


@dataclass(frozen=True)
class ParameterSpec:
    """One SSM parameter, materialised in the primary and the DR region.

    key: path below the namespace, e.g. ``env/LOG_LEVEL`` or ``flags/social-feed``.
    value: the value; for ``secure`` parameters a Pulumi secret Output, or None when not
        configured (then a placeholder is written once and never overwritten, see below).
    secure: SecureString under the customer key; default False (String).
    description: shown in the console; default "".
    """

    key: str
    value: pulumi.Input[str] | None
    secure: bool = False
    description: str = ""


@dataclass(frozen=True)
class SecretSpec:
    """One Secrets Manager secret with a replica in the DR region.

    key: path below the namespace, e.g. ``api-keys/payments``.
    data_class: tag; default "critical" (see the module docstring for why).
    description: shown in the console; default "".
    value: a Pulumi secret Output, or None to declare the secret without a version (default).
    rotate: rotate with the component's rotation Lambda when one is given; default True.
    """

    key: str
    data_class: str = "critical"
    description: str = ""
    value: pulumi.Input[str] | None = None
    rotate: bool = True


# A SecureString needs some value to exist. When the real one is not in Pulumi config it is set
# out of band (or by `drctl config import`), so the placeholder is written on create only.
SECURE_PLACEHOLDER = "unset: set with pulumi config set --secret or drctl config import"


@dataclass
class SecretsBackupArgs:
    """Arguments of SecretsBackup.

    objectives: the stack's Objectives; regions, classes, object lock mode and protection.
    namespace: prefix of every name, e.g. ``platform-dr/prod``; default
        ``namespace_of(objectives)``.
    parameters: SSM parameters (env config, feature flags); default none.
    secrets: Secrets Manager secrets (API keys, integration settings); default none.
    rotation_lambda_arn: Lambda that rotates secrets with ``rotate=True``; default None (no
        rotation). The Lambda and its invoke permission for secretsmanager.amazonaws.com are the
        caller's: they belong to the integration being rotated.
    rotation_days: days between rotations; default 30.
    recovery_window_days: days a deleted secret can still be restored; default 30 (the max).
    alarm_topic_arns: region -> SNS topic for the snapshot bucket's replication alarms; default
        none.
    adopt_parameters: read, rather than create, the parameters in the primary region (rebuild
        stacks, whose primary region holds the source stack's DR copies); default False.
    adopt_secret_arns: secret key -> ARN of an existing secret in the primary region to read
        instead of creating one (rebuild stacks); default none.
    adopt_snapshot_buckets / legacy_snapshot_key_arns: passed to the snapshot ReplicatedBucket as
        ``adopt_buckets`` / ``legacy_key_arns``; default none.
    """

    objectives: Objectives
    namespace: str | None = None
    parameters: Sequence[ParameterSpec] = field(default_factory=tuple)
    secrets: Sequence[SecretSpec] = field(default_factory=tuple)
    rotation_lambda_arn: pulumi.Input[str] | None = None
    rotation_days: int = 30
    recovery_window_days: int = 30
    alarm_topic_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    adopt_parameters: bool = False
    adopt_secret_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    adopt_snapshot_buckets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    legacy_snapshot_key_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)


def _slug(key: str) -> str:
    return key.replace("/", "-")


class SecretsBackup(pulumi.ComponentResource):
    """Outputs: ``key_arns`` (region -> key ARN), ``parameter_prefix``, ``parameter_names``,
    ``regions``, ``secret_names`` (key -> name), ``secret_arns`` (name -> region -> ARN),
    ``rotation_enabled``, ``snapshot_bucket_names`` / ``snapshot_key_arns`` (region -> value)."""

    TYPE = "platform-dr:secrets_backup:SecretsBackup"

    def __init__(
        self, name: str, args: SecretsBackupArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(self.TYPE, name, None, opts)
        objectives = args.objectives
        _validate(args)
        primary, dr = config_regions(objectives)
        namespace = args.namespace or namespace_of(objectives)
        child = pulumi.ResourceOptions(parent=self)
        data_opts = pulumi.ResourceOptions(parent=self, protect=objectives.protect_data)

        self.key = MultiRegionKey(
            f"{name}-key",
            MultiRegionKeyArgs(
                regions=[primary, dr],
                description=f"{namespace} app secrets and secure parameters",
                data_class="critical",
                dataset=APP_DATASET,
            ),
            opts=child,
        )
        self.key_arns = {r: self.key.arns[r] for r in (primary, dr)}
        self.regions = [primary, dr]
        self.parameter_prefix = parameter_prefix(namespace)

        self.parameter_names: list[str] = []
        for spec in args.parameters:
            full = parameter_name(namespace, spec.key)
            self.parameter_names.append(full)
            adopted = None
            for region in (primary, dr):
                res = f"{name}-param-{_slug(spec.key)}-{region}"
                if region == primary and args.adopt_parameters:
                    adopted = aws.ssm.Parameter.get(res, id=full, region=region, opts=child)
                    continue
                # The DR copy of an adopted parameter carries what the owner holds now.
                copied = replace(spec, value=adopted.value) if adopted is not None else spec
                self._parameter(res, region, full, copied, data_opts)

        self.secret_names: dict[str, str] = {}
        self.secret_arns: dict[str, dict[str, pulumi.Output[str]]] = {}
        rotating = args.rotation_lambda_arn is not None
        for spec in args.secrets:
            full = secret_name(namespace, spec.key)
            self.secret_names[spec.key] = full
            res = f"{name}-secret-{_slug(spec.key)}"
            if spec.key in args.adopt_secret_arns:
                secret = aws.secretsmanager.Secret.get(
                    res, id=args.adopt_secret_arns[spec.key], region=primary, opts=child
                )
                copy = self._dr_copy(res, dr, full, namespace, spec, secret, args, data_opts)
                self.secret_arns[full] = {primary: secret.arn, dr: copy.arn}
                continue
            secret = aws.secretsmanager.Secret(
                res,
                region=primary,
                name=full,
                description=spec.description or f"{spec.key} of {namespace}",
                kms_key_id=self.key_arns[primary],
                replicas=[
                    aws.secretsmanager.SecretReplicaArgs(region=dr, kms_key_id=self.key_arns[dr])
                ],
                recovery_window_in_days=args.recovery_window_days,
                tags=class_tags(
                    spec.data_class, APP_DATASET, {"config-role": spec.key.split("/")[0]}
                ),
                opts=data_opts,
            )
            # A replica keeps the primary's ARN suffix; only the region differs.
            self.secret_arns[full] = {
                primary: secret.arn,
                dr: secret.arn.apply(lambda a: a.replace(f":{primary}:", f":{dr}:", 1)),
            }
            rotates = rotating and spec.rotate
            if spec.value is not None:
                # Under rotation the configured value only seeds the secret: afterwards the
                # Lambda owns AWSCURRENT, and a later `pulumi up` must not move it back.
                seeded = ["secretString", "versionStages"] if rotates else None
                aws.secretsmanager.SecretVersion(
                    f"{res}-value",
                    region=primary,
                    secret_id=secret.id,
                    secret_string=pulumi.Output.secret(spec.value),
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        additional_secret_outputs=["secretString"],
                        ignore_changes=seeded,
                    ),
                )
            if rotates:
                aws.secretsmanager.SecretRotation(
                    f"{res}-rotation",
                    region=primary,
                    secret_id=secret.id,
                    rotation_lambda_arn=args.rotation_lambda_arn,
                    rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                        automatically_after_days=args.rotation_days
                    ),
                    opts=child,
                )
        self.rotation_enabled = rotating

        operational = objectives.of("operational")
        self.snapshots = ReplicatedBucket(
            f"{name}-snapshots",
            ReplicatedBucketArgs(
                objectives=objectives,
                data_class="operational",
                dataset=SNAPSHOT_DATASET,
                object_lock=ObjectLock(
                    objectives.backup_object_lock_mode, operational.retention_days
                ),
                alarm_topic_arns=args.alarm_topic_arns,
                adopt_buckets=args.adopt_snapshot_buckets,
                legacy_key_arns=args.legacy_snapshot_key_arns,
            ),
            opts=child,
        )
        self.snapshot_bucket_names = self.snapshots.bucket_names
        self.snapshot_key_arns = self.snapshots.key_arns
        self.register_outputs(
            {
                "key_arns": self.key_arns,
                "parameter_prefix": self.parameter_prefix,
                "parameter_names": self.parameter_names,
                "secret_arns": self.secret_arns,
                "snapshot_bucket_names": self.snapshot_bucket_names,
            }
        )

    def _dr_copy(self, res, dr, full, namespace, spec, adopted, args, data_opts):
        """A rebuild stack's own copy of an adopted secret in its DR region (module docstring)."""
        primary = args.objectives.regions.primary
        copy = aws.secretsmanager.Secret(
            f"{res}-{dr}",
            region=dr,
            name=full,
            description=(spec.description or f"{spec.key} of {namespace}") + f" (copy in {dr})",
            kms_key_id=self.key_arns[dr],
            recovery_window_in_days=args.recovery_window_days,
            tags=class_tags(spec.data_class, APP_DATASET, {"config-role": spec.key.split("/")[0]}),
            opts=data_opts,
        )
        value = spec.value
        if value is None:
            value = aws.secretsmanager.get_secret_version_output(
                secret_id=adopted.arn, region=primary
            ).secret_string
        aws.secretsmanager.SecretVersion(
            f"{res}-{dr}-value",
            region=dr,
            secret_id=copy.id,
            secret_string=pulumi.Output.secret(value),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secretString"]),
        )
        return copy

    def _parameter(
        self, res: str, region: str, full: str, spec: ParameterSpec, data_opts
    ) -> aws.ssm.Parameter:
        role = spec.key.split("/")[0]
        tags = class_tags("operational", APP_DATASET, {"config-role": role})
        if not spec.secure:
            return aws.ssm.Parameter(
                res,
                region=region,
                name=full,
                type="String",
                value=spec.value,
                description=spec.description or None,
                tags=tags,
                opts=data_opts,
            )
        value: Any = spec.value
        opts = pulumi.ResourceOptions.merge(
            data_opts, pulumi.ResourceOptions(additional_secret_outputs=["value", "insecureValue"])
        )
        if value is None:
            value = SECURE_PLACEHOLDER
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(ignore_changes=["value"])
            )
        return aws.ssm.Parameter(
            res,
            region=region,
            name=full,
            type="SecureString",
            value=pulumi.Output.secret(value),
            key_id=self.key_arns[region],
            description=spec.description or None,
            tags=tags,
            opts=opts,
        )


def _validate(args: SecretsBackupArgs) -> None:
    if not ROTATION_DAYS_MIN <= args.rotation_days <= ROTATION_DAYS_MAX:
        raise ConfigError(
            "secretRotationDays",
            args.rotation_days,
            f"between {ROTATION_DAYS_MIN} and {ROTATION_DAYS_MAX} days",
        )
    seen: set[str] = set()
    for key in [p.key for p in args.parameters] + [s.key for s in args.secrets]:
        if key in seen:
            raise ConfigError("secrets/parameters", key, "each name declared once")
        seen.add(key)


def secrets_backup_args(
    objectives: Objectives,
    settings: ConfigSettings,
    alarm_topic_arns: Mapping[str, pulumi.Input[str]] | None = None,
    source: pulumi.StackReference | None = None,
) -> SecretsBackupArgs:
    """SecretsBackupArgs from stack config; secret values from ``platform-dr-secrets:<name>``.

    ``source``: the StackReference of a rebuild stack's source; its ``secretArns`` and
    ``configBucketNames`` outputs say which copies to read instead of creating.
    """
    values = pulumi.Config(SECRETS_NAMESPACE)
    params = [ParameterSpec(f"{ROLE_ENV}/{k}", v) for k, v in settings.env.items()]
    params += [
        ParameterSpec(f"{ROLE_ENV}/{k}", values.get_secret(k), secure=True)
        for k in settings.secure_env
    ]
    params += [ParameterSpec(f"{ROLE_FLAG}/{k}", v) for k, v in settings.feature_flags.items()]
    secrets = [
        SecretSpec(f"{ROLE_API_KEY}/{k}", "critical", f"API key: {k}", values.get_secret(k))
        for k in settings.api_keys
    ]
    secrets += [
        SecretSpec(
            f"{ROLE_INTEGRATION}/{k}",
            "operational",
            f"integration settings: {k}",
            values.get_secret(k),
            rotate=False,
        )
        for k in settings.integrations
    ]
    args = SecretsBackupArgs(
        objectives=objectives,
        parameters=params,
        secrets=secrets,
        rotation_lambda_arn=settings.rotation_lambda_arn or None,
        rotation_days=settings.rotation_days,
        alarm_topic_arns=dict(alarm_topic_arns or {}),
    )
    if source is not None:
        namespace = namespace_of(objectives)
        primary, dr = config_regions(objectives)
        arns = source.require_output("secretArns")
        buckets = source.require_output("configBucketNames")
        keys = source.require_output("configBucketKeyArns")
        args.adopt_parameters = True
        names = {s.key: secret_name(namespace, s.key) for s in secrets}
        args.adopt_secret_arns = {
            key: arns.apply(lambda a, n=full: _copy(a, n, primary)) for key, full in names.items()
        }
        args.adopt_snapshot_buckets = {
            r: buckets.apply(lambda b, r=r: _region_copy(b, r)) for r in (primary, dr)
        }
        args.legacy_snapshot_key_arns = [keys.apply(lambda k: _region_copy(k, primary))]
    return args


def _copy(exported: Mapping[str, Mapping[str, str]], name: str, region: str) -> str:
    try:
        return exported[name][region]
    except KeyError:
        raise ValueError(
            f"the source stack exports no copy of secret {name!r} in {region}; a rebuild stack's "
            "primaryRegion must be the source stack's drRegion"
        ) from None


def _region_copy(exported: Mapping[str, str], region: str) -> str:
    try:
        return exported[region]
    except KeyError:
        raise ValueError(
            f"the source stack exports no config snapshot bucket in {region}; a rebuild stack's "
            "primaryRegion and drRegion must be regions where the source stack kept copies"
        ) from None
