"""Message templates per audience and their delivery: every section of every file renders with
only the documented placeholders; a template asking for anything else is refused; secrets are
scrubbed; a message goes out once, through the first topic that answers."""

from __future__ import annotations

import string

import pytest

from scripts.dataops.notify import (
    AUDIENCES,
    MESSAGES,
    PLACEHOLDERS,
    SUBJECT_MAX,
    Message,
    Notifier,
    TemplateError,
    Templates,
    scrub,
)

VALUES = {name: f"<{name}>" for name in PLACEHOLDERS}


def test_every_audience_has_templates_and_each_renders_completely():
    templates = Templates()
    for audience in AUDIENCES:
        assert templates.events(audience), audience
        for event in templates.events(audience):
            message = templates.render(audience, event, VALUES)
            assert message.subject and message.body, (audience, event)
            assert "$" not in message.subject + message.body, (audience, event)
            assert len(message.subject) <= SUBJECT_MAX and "\n" not in message.subject
    # what recover sends (scripts/dataops/incident.py) exists for its audience
    for audience, event in [
        ("users", "incident-opened"),
        ("team", "page"),
        ("team", "escalation"),
        ("stakeholders", "tier-result"),
        ("media", "holding-statement"),
    ]:
        assert templates.has(audience, event)


def test_the_documented_placeholders_are_the_allowed_ones():
    readme = (MESSAGES.parent / "README.md").read_text()
    documented = set(string.Template(readme).get_identifiers())
    assert documented == PLACEHOLDERS


def test_a_template_asking_for_a_secret_is_refused(tmp_path):
    for audience in AUDIENCES:
        (tmp_path / f"{audience}.md").write_text((MESSAGES / f"{audience}.md").read_text())
    with (tmp_path / "team.md").open("a") as fh:
        fh.write("\n## leak\nSubject: x\nThe database password is $db_password\n")
    with pytest.raises(TemplateError, match=r"team.md: section leak uses \$db_password"):
        Templates(tmp_path)


def test_a_template_without_a_subject_is_refused(tmp_path):
    for audience in AUDIENCES:
        (tmp_path / f"{audience}.md").write_text("## incident-opened\nno subject line\n")
    with pytest.raises(TemplateError, match="must start with 'Subject: '"):
        Templates(tmp_path)


@pytest.mark.parametrize(
    ("text", "secrets", "leaked"),
    [
        ("via postgresql://app:Hunter2!@db:5432/app", (), "Hunter2!"),
        ("password=Hunter2 sslmode=require", (), "Hunter2"),
        ("key AKIAIOSFODNN7EXAMPLE used", (), "AKIAIOSFODNN7EXAMPLE"),
        (
            "posted to https://hooks.example/T0/B0/abcdefTOKEN",
            ("https://hooks.example/T0/B0/abcdefTOKEN",),
            "abcdefTOKEN",
        ),
    ],
)
def test_scrub_removes_secrets(text, secrets, leaked):
    cleaned = scrub(text, secrets)
    assert leaked not in cleaned and "[redacted]" in cleaned


def test_rendered_values_are_scrubbed():
    templates = Templates()
    message = templates.render(
        "team",
        "service-unhealthy",
        {**VALUES, "detail": "token tok-XYZW12 refused"},
        ["tok-XYZW12"],
    )
    assert "tok-XYZW12" not in message.body and "[redacted]" in message.body


def test_the_first_topic_that_answers_carries_the_message_once(moto):
    moto.reset()
    first = moto.client("sns", "us-west-2").create_topic(Name="team-dr")["TopicArn"]
    second = moto.client("sns", "eu-west-1").create_topic(Name="team-third")["TopicArn"]
    notifier = Notifier(moto, {"teamTopicArns": {"us-west-2": first, "eu-west-1": second}})
    message = Message("team", "incident-opened", "subject", "body")
    sent = notifier.send(message, level=1)
    assert sent["region"] == "us-west-2" and sent["errors"] == {} and sent["level"] == 1
    moto.client("sns", "us-west-2").delete_topic(TopicArn=first)  # the DR region's topic is gone
    sent = notifier.send(message)
    assert sent["region"] == "eu-west-1" and "us-west-2" in sent["errors"]
    moto.client("sns", "eu-west-1").delete_topic(TopicArn=second)
    sent = notifier.send(message)
    assert sent["region"] is None and set(sent["errors"]) == {"us-west-2", "eu-west-1"}


def test_user_messages_never_go_to_a_topic(moto):
    with pytest.raises(ValueError, match="status page"):
        Notifier(moto, {}).send(Message("users", "incident-opened", "s", "b"))
