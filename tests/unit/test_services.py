"""The service catalogue and the contacts: typed config, validated before any resource, errors
that name the key (and never show a secret), tiers whose RTO comes from the objectives."""

from __future__ import annotations

import json

import pytest

from components.contacts import CONTACTS_NAMESPACE, parse_contacts
from components.objectives import CONFIG_KEYS, ConfigError, parse_objectives
from components.services import (
    DEFAULT_SERVICE_ORDER,
    DEFAULT_SERVICES,
    SERVICES_NAMESPACE,
    TIERS,
    parse_catalogue,
)
from scripts.local.evaluate import evaluate_stack, read_stack_config

SECRETS = ["payments", "email", "ai-model", "cdn", "analytics"]


def pulumi_secret(value) -> bool:
    """How the mocks record a secret input: Pulumi's secret signature beside the value."""
    from pulumi.runtime import rpc

    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def _objectives(**overrides):
    raw = {**read_stack_config("prod"), **{f"platform-dr:{k}": v for k, v in overrides.items()}}
    return parse_objectives(raw, "prod")


def _catalogue(raw=None, **objective_overrides):
    return parse_catalogue(raw or {}, _objectives(**objective_overrides), secret_names=SECRETS)


def test_the_spec_order_by_default():
    catalogue = _catalogue()
    assert [t.name for t in catalogue.tiers] == list(TIERS)
    assert {t.name: [s.name for s in t.services] for t in catalogue.tiers} == {
        "critical": ["user-auth", "music-generation"],
        "important": ["social-features", "creator-dashboard"],
        "enhanced": ["analytics"],
        "optional": ["integrations"],
    }
    assert DEFAULT_SERVICE_ORDER.split(",") == list(DEFAULT_SERVICES)
    assert {k.name: k.default for k in CONFIG_KEYS}["services"] == DEFAULT_SERVICE_ORDER


def test_tier_rtos_come_from_the_objectives_not_a_second_table():
    catalogue = _catalogue()
    assert {t.name: t.rto_s for t in catalogue.tiers} == {
        "critical": 3600,
        "important": 4 * 3600,
        "enhanced": 24 * 3600,
        "optional": 24 * 3600,
    }
    tighter = _catalogue(criticalRto="30m", operationalRto="12h")
    assert tighter.tier("critical").rto_s == 1800
    assert tighter.tier("enhanced").rto_s == tighter.tier("optional").rto_s == 12 * 3600


def test_a_field_overrides_one_default_the_rest_stays():
    catalogue = _catalogue({f"{SERVICES_NAMESPACE}:user-auth": {"owner": "iam-squad"}})
    auth = catalogue.service("user-auth")
    assert auth.owner == "iam-squad"
    assert auth.tier == "critical" and [d.ref for d in auth.depends_on][0] == "database"


def test_structured_config_reaches_a_program_as_json_text():
    text = json.dumps({"tier": "important", "dependsOn": ["config"], "owner": "x"})
    catalogue = _catalogue(
        {"platform-dr:services": "user-auth,podcasts", f"{SERVICES_NAMESPACE}:podcasts": text}
    )
    assert catalogue.service("podcasts").tier == "important"
    assert catalogue.service("podcasts").health_url("music.example") == (
        "https://podcasts.music.example/healthz"
    )


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        (
            {f"{SERVICES_NAMESPACE}:user-auth": {"tier": "urgent"}},
            f"{SERVICES_NAMESPACE}:user-auth.tier",
            "one of critical, important, enhanced, optional",
        ),
        (
            {f"{SERVICES_NAMESPACE}:user-auth": {"dependsOn": ["dataset:audio"]}},
            f"{SERVICES_NAMESPACE}:user-auth.dependsOn[0]",
            "datasets: creator-audio",
        ),
        (
            {f"{SERVICES_NAMESPACE}:user-auth": {"dependsOn": ["secret:stripe"]}},
            f"{SERVICES_NAMESPACE}:user-auth.dependsOn[0]",
            "secrets: payments",
        ),
        (
            {f"{SERVICES_NAMESPACE}:user-auth": {"dependsOn": ["databse"]}},
            f"{SERVICES_NAMESPACE}:user-auth.dependsOn[0]",
            "did you mean 'database'",
        ),
        (
            {f"{SERVICES_NAMESPACE}:user-auth": {"healthz": "/ping"}},
            f"{SERVICES_NAMESPACE}:user-auth.healthz",
            "did you mean 'health'",
        ),
        (
            {f"{SERVICES_NAMESPACE}:user-auth": {"health": "http://auth.example/healthz"}},
            f"{SERVICES_NAMESPACE}:user-auth.health",
            "TLS only",
        ),
        (
            {"platform-dr:services": "user-auth,podcasts"},
            f"{SERVICES_NAMESPACE}:podcasts.tier",
            "required for a service that is not one of the spec's defaults",
        ),
        (
            {f"{SERVICES_NAMESPACE}:user-auht": {"owner": "x"}},
            f"{SERVICES_NAMESPACE}:user-auht",
            "did you mean 'user-auth'",
        ),
        (
            {"platform-dr:services": "user-auth,user-auth"},
            "services",
            "each service once",
        ),
        (
            {f"{SERVICES_NAMESPACE}:analytics": {"record": "user-auth"}},
            f"{SERVICES_NAMESPACE}:analytics.record",
            "record of its own",
        ),
    ],
)
def test_bad_catalogue_config_names_the_key(raw, key, words):
    with pytest.raises(ConfigError) as raised:
        _catalogue(raw)
    assert raised.value.key == key
    assert words in str(raised.value)


def test_bad_catalogue_config_fails_before_any_resource(declared_names, capsys):
    config = {**read_stack_config("prod"), f"{SERVICES_NAMESPACE}:user-auth": {"tier": "urgent"}}
    with pytest.raises(SystemExit) as raised:
        evaluate_stack("prod", config=config)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {SERVICES_NAMESPACE}:user-auth.tier = 'urgent' is not valid" in err
    assert declared_names == []


# -- contacts -------------------------------------------------------------------------------------

ONCALL = f"{CONTACTS_NAMESPACE}:oncall"
TEAM = f"{CONTACTS_NAMESPACE}:team"
STAKEHOLDERS = f"{CONTACTS_NAMESPACE}:stakeholders"
GOOD = {
    ONCALL: [
        {"name": "Ana", "email": "ana@example.com", "https": "https://pager.example/i/tok-1"},
        {"name": "Bo", "email": "bo@example.com"},
    ],
    TEAM: [{"https": "https://chat-relay.example/hook/tok-2"}],
    STAKEHOLDERS: [{"email": "board@example.com", "audiences": ["stakeholders"]}],
}


def test_contacts_in_escalation_order_and_never_in_repr():
    contacts = parse_contacts(GOOD, secret_keys=list(GOOD))
    assert contacts.escalation_levels == 2
    assert [c.level for c in contacts.oncall] == [0, 1]
    assert [e.protocol for e in contacts.oncall[0].endpoints] == ["email", "https"]
    assert contacts.stakeholders[0].audiences == ("stakeholders",)
    shown = repr(contacts) + repr(contacts.oncall) + repr(contacts.team)
    for secret in contacts.secret_values():
        assert secret not in shown
    assert "https://pager.example/i/tok-1" in contacts.secret_values()


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({ONCALL: [{"email": "not-an-address"}]}, f"{ONCALL}[0].email", "an email address"),
        (
            {TEAM: [{"https": "http://chat.example/hook/tok-9"}]},
            f"{TEAM}[0].https",
            "plain http only on 127.0.0.1",
        ),
        ({ONCALL: [{"name": "x", "phone": "+1555"}]}, f"{ONCALL}[0].phone", "one of email"),
        (
            {STAKEHOLDERS: [{"email": "a@b.example", "audiences": ["press"]}]},
            f"{STAKEHOLDERS}[0].audiences",
            "stakeholders, media",
        ),
        ({f"{CONTACTS_NAMESPACE}:oncal": []}, f"{CONTACTS_NAMESPACE}:oncal", "did you mean"),
    ],
)
def test_bad_contacts_name_the_key_and_never_show_the_value(raw, key, words):
    with pytest.raises(ConfigError) as raised:
        parse_contacts(raw, secret_keys=list(raw))
    assert raised.value.key == key
    assert words in str(raised.value)
    assert "[secret]" in str(raised.value) or "audiences" in key
    for entry in next(iter(raw.values())):
        for value in entry.values():
            if isinstance(value, str) and value not in ("x",):
                assert value not in str(raised.value)


def test_plaintext_contacts_are_refused():
    with pytest.raises(ConfigError) as raised:
        parse_contacts(GOOD, secret_keys=[TEAM, STAKEHOLDERS])
    assert raised.value.key == ONCALL
    assert "pulumi config set --secret --path" in str(raised.value)
    assert "ana@example.com" not in str(raised.value)


def test_contacts_become_secret_subscriptions_with_escalation_filters():
    config = {**read_stack_config("prod"), **GOOD}
    evaluation = evaluate_stack("prod", config=config, secret_keys=tuple(GOOD))
    subs = evaluation.of_type("aws:sns/topicSubscription:TopicSubscription")
    oncall = sorted(
        (s for s in subs if s.name.startswith("communication-oncall-us-west-2")),
        key=lambda s: s.name,
    )
    # Ana: email + https at level 0; Bo: email at level 1; in each surviving region
    assert [json.loads(s.inputs["filterPolicy"]) for s in oncall] == [
        {"escalation-level": [{"numeric": [">=", 0]}]},
        {"escalation-level": [{"numeric": [">=", 0]}]},
        {"escalation-level": [{"numeric": [">=", 1]}]},
    ]
    regions = {s.inputs["region"] for s in subs}
    assert regions == {"us-west-2", "eu-west-1"}  # never the primary region
    # every endpoint stays a Pulumi secret in the state
    assert all(pulumi_secret(s.inputs["endpoint"]) for s in subs)
    team = [s for s in subs if s.name.startswith("communication-team-")]
    assert all("filterPolicy" not in s.inputs for s in team)  # the team hears everything
    board = [s for s in subs if s.name.startswith("communication-stakeholders-")]
    assert json.loads(board[0].inputs["filterPolicy"]) == {"audience": ["stakeholders"]}
    assert evaluation.outputs["communication"]["escalationLevels"] == 2
    # no contact detail in any output
    text = json.dumps(evaluation.outputs, default=str)
    for secret in parse_contacts(GOOD).secret_values():
        assert secret not in text
