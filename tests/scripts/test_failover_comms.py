"""`drctl failover` tells every audience at each step (scripts/runbooks/failover_comms.py), on
moto's server.

The failover cloud is tests/scripts/dr_cloud.py's (rds backend: RDS, Route 53, SSM and S3 on
moto; StopReplicationToReplica from botocore's Stubber). The status page's copies, the team and
stakeholder topics and their subscriptions are the ones the program declares for prod
(evaluated under Pulumi's mocks with contacts pointing at a local webhook receiver), created in
moto by scripts/local/recovery_platform.py; the failover reads them from the stack outputs like
any other name. The page's home bucket is versioned, so every version of status.json is the page
as it was published after a step.
"""

from __future__ import annotations

import json

import pytest

from scripts.common import DrctlError, ExitCode
from scripts.local.recovery_platform import declared, drill_contacts, seed_communication
from scripts.runbooks import failover as fo
from scripts.runbooks.failover_comms import OPEN_STEP, affected_services
from scripts.runbooks.recover.plan import load_target
from tests.scripts.dr_cloud import SECRETS, CloudAws, outputs_for, replica_lag, seed

PRIMARY_HOST = "platform-dr-prod.c0ffee.us-east-1.rds.amazonaws.com"
REPLICA_HOST = "dr-standby-replica.c0ffee.us-west-2.rds.amazonaws.com"
TOKENS = {"level0": "tok-level0-AAAA", "chat": "tok-chat-CCCC", "board": "tok-board-DDDD"}
TOKENS["press"] = "tok-press-EEEE"
APP_PASSWORD = "pw-Hunter2-XYZ"
FAILOVER_STEPS = ["assess", "isolate", "promote", "switch-config", "switch-dns", "validate"]


@pytest.fixture(scope="module")
def evaluation(receiver):
    return declared("prod", drill_contacts(receiver, TOKENS))


@pytest.fixture
def world(moto, receiver, evaluation, tmp_path):
    cloud = moto
    cloud.reset()
    receiver.deliveries.clear()
    seeded = seed(cloud, primary_endpoint=PRIMARY_HOST, standby_endpoint=REPLICA_HOST, rds=True)
    outputs = outputs_for(seeded, backend="rds", primary=PRIMARY_HOST, standby=REPLICA_HOST)
    declared_outputs = json.loads(json.dumps(evaluation.outputs, default=str))
    communication = seed_communication(cloud, evaluation, declared_outputs)
    outputs |= {k: communication[k] for k in ("statusPage", "communication")}
    plan = fo.load_plan("prod", outputs)
    aws = CloudAws(cloud=cloud)
    return seeded, plan, aws, tmp_path / "journal.json"


def _run(plan, aws, journal, dsns=None, **kw):
    return fo.run_failover(
        plan,
        aws,
        dsns or fo.Connections(),
        execute=True,
        yes=True,
        journal=journal,
        waiter_delay=1,
        **kw,
    )


def _page_history(cloud, plan) -> list[dict]:
    page = plan.status_page
    home = page["homeRegion"]
    s3, bucket = cloud.client("s3", home), page["bucketNames"][home]
    versions = s3.list_object_versions(Bucket=bucket, Prefix="status.json").get("Versions", [])
    docs = [
        json.loads(
            s3.get_object(Bucket=bucket, Key="status.json", VersionId=v["VersionId"])["Body"].read()
        )
        for v in versions
    ]
    return sorted(docs, key=lambda d: d["sequence"])


def _subjects(receiver, who: str) -> list[str]:
    path = f"{who}/{TOKENS[{'pager': 'level0'}.get(who, who)]}"
    return [d.subject for d in receiver.at(path) if d.envelope.get("Type") == "Notification"]


def _everything(cloud, plan, receiver, journal) -> str:
    text = json.dumps(_page_history(cloud, plan)) + journal.read_text()
    return text + "".join(d.raw for d in receiver.deliveries)


def test_each_step_updates_the_page_and_every_audience_is_told(moto, receiver, world):
    seeded, plan, aws, journal = world
    replica_lag(moto, 2.0)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = _run(plan, aws, journal)
    assert report.status == "completed"
    assert [s["name"] for s in report.steps] == [OPEN_STEP, *FAILOVER_STEPS, "rearm"]

    catalogue = load_target("prod").catalogue
    affected = {s.name for s in affected_services(catalogue.services)}
    assert affected and affected != {s.name for s in catalogue.services}
    history = _page_history(moto, plan)
    # One version when the incident opens and one after each of the seven steps.
    assert [d["sequence"] for d in history] == list(range(1, 9))
    first = history[0]
    assert first["incident"]["status"] == "investigating"
    for service in first["services"]:
        expected = "recovering" if service["name"] in affected else "operational"
        assert service["status"] == expected, service
        assert (service["expected_by"] is not None) == (service["name"] in affected)
    assert len({d["incident"]["id"] for d in history}) == 1
    validate = history[1 + FAILOVER_STEPS.index("validate")]
    assert {s["status"] for s in validate["services"]} == {"operational"}
    assert validate["incident"]["status"] == "monitoring"
    for before in history[: 1 + FAILOVER_STEPS.index("validate")]:
        assert {s["status"] for s in before["services"] if s["name"] in affected} == {"recovering"}
    last = history[-1]
    assert last["incident"]["status"] == "resolved"
    assert last["overall"]["label"] == "All systems operational"
    updates = [u["text"] for u in last["incident"]["updates"]]
    assert len(updates) == 8 and "Backups of the new database are running." in updates[0]
    assert "unavailable while we move our database" in updates[-1]

    chat = _subjects(receiver, "chat")
    assert chat[0] == "[DR prod] database failover to us-west-2 started"
    assert sum("failover:" in s and s.endswith(" done") for s in chat) == 6
    assert chat[-1] == "[DR prod] failover finished"
    assert _subjects(receiver, "pager") == ["[PAGE prod] DR recovery needs you (level 0)"]
    assert _subjects(receiver, "board") == [
        "Service disruption: recovery under way",
        "Recovery complete",
    ]
    assert _subjects(receiver, "press") == ["Holding statement: service disruption"]
    published = _everything(moto, plan, receiver, journal)
    for key in SECRETS:
        assert f"value-of-{key}" not in published  # the secrets' values never travel
    assert "tok-" not in "".join(d.subject + d.message for d in receiver.deliveries)


def test_a_refusal_is_published_and_the_resumed_run_keeps_the_same_incident(moto, receiver, world):
    seeded, plan, aws, journal = world
    replica_lag(moto, 1200.0)  # 20 min of lag > the 15 min RPO: refused
    with pytest.raises(DrctlError) as raised:
        _run(plan, aws, journal)
    assert raised.value.code == ExitCode.REFUSED
    history = _page_history(moto, plan)
    assert len(history) == 2 and history[-1]["incident"]["status"] == "investigating"
    assert history[-1]["incident"]["updates"][0]["text"].startswith("We hit a problem")
    chat = _subjects(receiver, "chat")
    assert chat[-1].startswith("[DR prod] failover STOPPED at Assess: data at risk")
    stopped = next(
        d.message for d in receiver.at(f"chat/{TOKENS['chat']}") if "STOPPED" in d.subject
    )
    assert "--accept-data-loss" in stopped

    # The operator accepts the loss; the same journal resumes in the same incident.
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    report = _run(plan, aws, journal, accept_data_loss=True)
    assert report.status == "completed" and report.steps[0]["status"] == "done-earlier"
    history = _page_history(moto, plan)
    assert len({d["incident"]["id"] for d in history}) == 1
    assert history[-1]["incident"]["status"] == "resolved"
    chat = _subjects(receiver, "chat")
    assert sum(s.endswith("started") for s in chat) == 1  # opened once
    assert len(_subjects(receiver, "pager")) == 1 and len(_subjects(receiver, "press")) == 1


def test_a_failure_carrying_a_dsn_publishes_no_secret(moto, receiver, world):
    seeded, plan, aws, journal = world
    replica_lag(moto, 1.0)
    aws.expect_secret_promotions(seeded.secret_arns_dr)
    app = f"postgresql://app:{APP_PASSWORD}@127.0.0.1:1/app"  # nothing listens on port 1
    with pytest.raises(DrctlError):
        _run(plan, aws, journal, dsns=fo.Connections(app=app))
    assert _subjects(receiver, "chat")[-1].startswith("[DR prod] failover STOPPED at Validate")
    published = _everything(moto, plan, receiver, journal)
    assert APP_PASSWORD not in published and app not in published


def test_dry_run_prints_what_it_would_publish_and_publishes_nothing(moto, receiver, world):
    _, plan, aws, journal = world
    replica_lag(moto, 2.0)
    report = fo.run_failover(plan, aws, fo.Connections(), execute=False, yes=False, journal=journal)
    assert [s["status"] for s in report.steps] == ["checked", "checked"] + ["planned"] * 6
    lines = report.steps[0]["result"]["would_publish"]
    home = plan.status_page["homeRegion"]
    assert any(plan.status_page["bucketNames"][home] in line for line in lines)
    assert any("page on-call level 0" in line for line in lines)
    assert _page_history(moto, plan) == []
    assert not [d for d in receiver.deliveries if d.envelope.get("Type") == "Notification"]


def test_outputs_without_page_or_topics_publish_nothing_and_add_no_step(moto, world):
    seeded, plan, aws, journal = world
    bare = fo.load_plan(
        "prod", outputs_for(seeded, backend="rds", primary=PRIMARY_HOST, standby=REPLICA_HOST)
    )
    replica_lag(moto, 2.0)
    report = fo.run_failover(bare, aws, fo.Connections(), execute=False, yes=False, journal=journal)
    assert report.steps[0]["name"] == "assess"
