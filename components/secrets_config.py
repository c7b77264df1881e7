"""The app-config keys of stack config (featureFlags, envConfig, apiKeys...), parsed and validated.

The keys are declared in objectives.CONFIG_KEYS (and Pulumi.yaml); their parsing lives here because
only SecretsBackup uses them. No secret value is read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.objectives import CONFIG_KEYS, PROJECT, ConfigError

ROLE_API_KEY = "api-keys"
ROLE_INTEGRATION = "integrations"
ROLE_ENV = "env"
ROLE_FLAG = "flags"
FLAG_VALUES = ("true", "false")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:.+)?$")
ROTATION_DAYS_MIN, ROTATION_DAYS_MAX = 1, 365


# ---------------------------------------------------------------------------------------------
# Stack config -> SecretsBackupArgs. The config keys are declared in objectives.CONFIG_KEYS (and
# Pulumi.yaml); their parsing lives here because only this component uses them.

SETTINGS_KEYS = (
    "featureFlags",
    "envConfig",
    "secureEnv",
    "apiKeys",
    "integrations",
    "secretRotationLambdaArn",
    "secretRotationDays",
)


@dataclass(frozen=True)
class ConfigSettings:
    """The declared shape of the app config (no secret values): parsed and validated."""

    feature_flags: Mapping[str, str]
    env: Mapping[str, str]
    secure_env: tuple[str, ...]
    api_keys: tuple[str, ...]
    integrations: tuple[str, ...]
    rotation_lambda_arn: str
    rotation_days: int

    def parameter_keys(self) -> dict[str, bool]:
        """Relative key -> secure, for every parameter the stack declares."""
        keys = {f"{ROLE_ENV}/{k}": False for k in self.env}
        keys.update({f"{ROLE_ENV}/{k}": True for k in self.secure_env})
        keys.update({f"{ROLE_FLAG}/{k}": False for k in self.feature_flags})
        return keys

    def secret_keys(self) -> list[str]:
        return [f"{ROLE_API_KEY}/{k}" for k in self.api_keys] + [
            f"{ROLE_INTEGRATION}/{k}" for k in self.integrations
        ]


def _defaults() -> dict[str, Any]:
    return {k.name: k.default for k in CONFIG_KEYS if k.name in SETTINGS_KEYS}


def _items(key: str, value: Any) -> list[str]:
    if not isinstance(value, str):
        raise ConfigError(key, value, "a comma-separated list")
    return [item.strip() for item in value.split(",") if item.strip()]


def _names(key: str, value: Any, pattern: re.Pattern, what: str) -> tuple[str, ...]:
    names = _items(key, value)
    for n in names:
        if not pattern.match(n):
            raise ConfigError(key, value, f"a comma-separated list of {what}; {n!r} is not one")
    if len(set(names)) != len(names):
        raise ConfigError(key, value, "a list without duplicates")
    return tuple(names)


def _pairs(key: str, value: Any, pattern: re.Pattern, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in _items(key, value):
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep or not pattern.match(name):
            raise ConfigError(
                key, value, f"comma-separated name=value pairs ({what}); got {item!r}"
            )
        if name in pairs:
            raise ConfigError(key, value, f"each name once; {name!r} appears twice")
        pairs[name] = val.strip()
    return pairs


def parse_settings(raw: Mapping[str, Any]) -> ConfigSettings:
    """Validate the config keys of SETTINGS_KEYS (without prefix) into ConfigSettings.

    Raises ConfigError naming the key, the value and what is allowed.
    """
    raw = {k.split(":", 1)[1] if k.startswith(f"{PROJECT}:") else k: v for k, v in raw.items()}
    values = {
        **_defaults(),
        **{k: v for k, v in raw.items() if k in SETTINGS_KEYS and v is not None},
    }
    flags = _pairs("featureFlags", values["featureFlags"], _NAME, "flag=true|false")
    for flag, val in flags.items():
        if val.lower() not in FLAG_VALUES:
            raise ConfigError(
                "featureFlags", values["featureFlags"], f"true or false for flag {flag!r}"
            )
        flags[flag] = val.lower()
    env = _pairs("envConfig", values["envConfig"], _ENV_NAME, "NAME=value, NAME an env var name")
    secure_env = _names("secureEnv", values["secureEnv"], _ENV_NAME, "env var names")
    both = sorted(set(env) & set(secure_env))
    if both:
        raise ConfigError("secureEnv", values["secureEnv"], f"names not also in envConfig: {both}")
    api_keys = _names("apiKeys", values["apiKeys"], _NAME, "names ([A-Za-z0-9_.-])")
    integrations = _names("integrations", values["integrations"], _NAME, "names ([A-Za-z0-9_.-])")
    # All three read their values from one config namespace, so a name may appear only once.
    clash = sorted(
        (set(secure_env) & set(api_keys))
        | (set(secure_env) & set(integrations))
        | (set(api_keys) & set(integrations))
    )
    if clash:
        raise ConfigError(
            "apiKeys", values["apiKeys"], f"names not also used by secureEnv/integrations: {clash}"
        )
    arn = str(values["secretRotationLambdaArn"] or "").strip()
    if arn and not _LAMBDA_ARN.match(arn):
        raise ConfigError(
            "secretRotationLambdaArn", arn, "empty or a Lambda function ARN (arn:aws:lambda:...)"
        )
    days_raw = values["secretRotationDays"]
    try:
        days = int(str(days_raw).strip())
    except ValueError:
        raise ConfigError("secretRotationDays", days_raw, "an integer number of days") from None
    if not ROTATION_DAYS_MIN <= days <= ROTATION_DAYS_MAX:
        raise ConfigError(
            "secretRotationDays", days_raw, f"between {ROTATION_DAYS_MIN} and {ROTATION_DAYS_MAX}"
        )
    return ConfigSettings(flags, env, secure_env, api_keys, integrations, arn, days)


def load_settings() -> ConfigSettings:
    """ConfigSettings of the running stack (no secret is read here)."""
    from components.objectives import raw_config_from_pulumi

    return parse_settings(raw_config_from_pulumi())
