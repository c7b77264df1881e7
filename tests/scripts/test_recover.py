"""`drctl recover` against moto's server and real local HTTP servers.

The cloud is seeded from the evaluated program (scripts/local/recovery_platform.py): the bucket,
secret, parameter, status-page and topic names are the ones __main__.py declares, and the SNS
subscriptions are the ones NotificationTopics declares for the contacts below, each pointing at
a local webhook receiver. moto's server delivers every published message to it over HTTP, through
the declared filter policies. Services are stand-ins with real /healthz endpoints.

The catalogue here leaves out the database dependency (no PostgreSQL in these tests; the
database check runs against a real PostgreSQL 15 in tests/integration/test_recover_pg.py).
Objectives are prod's, run at time scale 1/600: the critical tier's 1 h is 6 s.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from components.services import SERVICES_NAMESPACE
from scripts.cli import app
from scripts.common import DrctlError, ExitCode
from scripts.local.evaluate import ROOT, read_stack_config
from scripts.local.recovery_platform import StandInService, declared, seed
from scripts.runbooks.recover import RecoverOptions, load_target, run_recover

REGION, PRIMARY = "us-west-2", "us-east-1"
ZONE = "music-platform.example"
SCALE = 600
OVERRIDES = {
    "services": "user-auth,social-features,analytics,integrations",
    f"{SERVICES_NAMESPACE}:user-auth": {"dependsOn": ["secret:email", "config"]},
    f"{SERVICES_NAMESPACE}:social-features": {"dependsOn": ["dataset:user-assets", "config"]},
    f"{SERVICES_NAMESPACE}:analytics": {"dependsOn": ["secret:analytics", "config"]},
}
TOKENS = ("tok-level0-AAAA", "tok-level1-BBBB", "tok-chat-CCCC", "tok-board-DDDD", "tok-press-EEEE")
DSN = "postgresql://app:pw-Hunter2-XYZ@127.0.0.1:1/app"


@pytest.fixture(scope="module")
def contacts(receiver):
    return {
        "oncall": [
            {"https": receiver.url(f"page/{TOKENS[0]}")},
            {"https": receiver.url(f"page/{TOKENS[1]}")},
        ],
        "team": [{"https": receiver.url(f"chat/{TOKENS[2]}")}],
        "stakeholders": [
            {"https": receiver.url(f"board/{TOKENS[3]}"), "audiences": ["stakeholders"]},
            {"https": receiver.url(f"press/{TOKENS[4]}"), "audiences": ["media"]},
        ],
    }


@pytest.fixture(scope="module")
def evaluation(contacts):
    return declared("prod", contacts, OVERRIDES)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, root / name)
    config = dict(read_stack_config("prod"))
    config.update({k if ":" in k else f"platform-dr:{k}": v for k, v in OVERRIDES.items()})
    (root / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}))
    return root


@pytest.fixture
def platform(moto, receiver, evaluation, project):
    moto.reset()
    receiver.deliveries.clear()
    outputs = seed(moto, evaluation, REGION, zone=ZONE)
    return {"target": load_target("prod", project), "outputs": outputs}


@pytest.fixture
def stand_ins(platform):
    servers = {
        s.name: StandInService(s.name).start() for s in platform["target"].catalogue.services
    }
    for server in servers.values():
        server.bring_up()
    yield servers
    for server in servers.values():
        server.stop()


def _run(platform, moto, stand_ins, tmp_path, **kwargs):
    options = kwargs.pop("options", None) or RecoverOptions(time_scale=SCALE, retry_interval_s=60)
    return run_recover(
        platform["target"],
        moto,
        execute=True,
        yes=True,
        outputs=platform["outputs"],
        options=options,
        health_url=lambda s: stand_ins[s.name].url,
        database_dsn=kwargs.pop("database_dsn", None),
        journal=tmp_path / "recover.json",
        **kwargs,
    )


def _page_history(moto, outputs) -> list[dict]:
    """Every published status.json, oldest first, from the versioned home copy."""
    home = outputs["statusPage"]["homeRegion"]
    bucket = outputs["statusPage"]["bucketNames"][home]
    s3 = moto.client("s3", home)
    versions = s3.list_object_versions(Bucket=bucket, Prefix="status.json")["Versions"]
    docs = [
        json.loads(
            s3.get_object(Bucket=bucket, Key="status.json", VersionId=v["VersionId"])["Body"].read()
        )
        for v in versions
    ]
    return sorted(docs, key=lambda d: d["sequence"])


def _everything_published(moto, outputs, receiver) -> str:
    pages = json.dumps(_page_history(moto, outputs))
    home = outputs["statusPage"]["homeRegion"]
    html = (
        moto.client("s3", home)
        .get_object(Bucket=outputs["statusPage"]["bucketNames"][home], Key="index.html")["Body"]
        .read()
        .decode()
    )
    return pages + html + "".join(d.subject + d.message for d in receiver.deliveries)


def test_dry_run_prints_the_ordered_plan_offline(monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    result = CliRunner().invoke(app, ["recover", "--stack", "dr", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "dry-run" and doc["executed"] is False
    plan = doc["plan"]
    assert plan["region"] == "us-west-2" and plan["rebuild"] is True
    assert [t["tier"] for t in plan["tiers"]] == ["critical", "important", "enhanced", "optional"]
    assert [t["deadline_after_s"] for t in plan["tiers"]] == [3600, 14400, 86400, 86400]
    critical = plan["tiers"][0]["services"]
    assert [s["name"] for s in critical] == ["user-auth", "music-generation"]
    assert critical[1]["depends_on"] == [
        "database",
        "dataset:creator-audio",
        "secret:ai-model",
        "config",
    ]
    assert critical[0]["switch"]["to"] == "user-auth.us-west-2.music-platform.example"
    assert all(s["status"] == "planned" for s in doc["steps"])
    text = CliRunner().invoke(app, ["recover", "--stack", "dr"])
    assert "tier critical  RTO   1h" in text.stdout and "deadline T0+1h00m" in text.stdout


def test_services_come_back_in_tier_order_with_the_page_and_every_audience_told(
    platform, moto, stand_ins, receiver, tmp_path
):
    # 1/150: each critical step's share is 4 s, so a busy machine pages nobody by accident
    relaxed = RecoverOptions(time_scale=150, retry_interval_s=60)
    result = _run(platform, moto, stand_ins, tmp_path, secrets=(DSN,), options=relaxed)
    assert result.all_met is True
    assert [t["tier"] for t in result.tiers] == ["critical", "important", "enhanced", "optional"]
    for tier in result.tiers:
        assert tier["met"] and tier["elapsed_s"] <= tier["rto_s"]
    # DNS: every record now answers with the service's endpoint in the DR region
    zone_id = platform["outputs"]["drStandby"]["zoneId"]
    records = moto.client("route53", "us-east-1").list_resource_record_sets(HostedZoneId=zone_id)
    cnames = {
        r["Name"].rstrip("."): r["ResourceRecords"][0]["Value"]
        for r in records["ResourceRecordSets"]
        if r["Type"] == "CNAME"
    }
    assert cnames[f"user-auth.{ZONE}"] == f"user-auth.{REGION}.{ZONE}"
    assert cnames[f"integrations.{ZONE}"] == f"integrations.{REGION}.{ZONE}"
    # the page: opened with everything down, each tier recovering then operational, resolved
    history = _page_history(moto, platform["outputs"])
    assert history[0]["incident"]["status"] == "investigating"
    assert {s["status"] for s in history[0]["services"]} == {"outage"}
    final = history[-1]
    assert final["overall"]["status"] == "operational" and final["incident"]["status"] == "resolved"
    became_operational = {}
    for doc in history:
        for s in doc["services"]:
            if s["status"] == "operational":
                became_operational.setdefault(s["name"], doc["sequence"])
    order = [
        became_operational[n] for n in ("user-auth", "social-features", "analytics", "integrations")
    ]
    assert order == sorted(order)
    # every audience: team chat, pager level 0, stakeholders, media; users on the page
    chat = [d.subject for d in receiver.at(f"chat/{TOKENS[2]}")]
    assert chat[0].startswith("[DR prod] recovery started in us-west-2")
    assert any("[PAGE prod]" in s and "level 0" in s for s in chat), (
        chat,
        [(d.path, d.subject) for d in receiver.deliveries],
    )
    assert sum("tier-" in s or " tier " in s for s in chat) >= 8  # started + result per tier
    assert any("recovery finished: all tiers met" in s for s in chat)
    assert [d.subject for d in receiver.at(f"page/{TOKENS[0]}")] == [
        "[PAGE prod] DR recovery needs you (level 0)"
    ]
    assert receiver.at(f"page/{TOKENS[1]}") == []  # nobody overran: level 1 is never paged
    board = [d.subject for d in receiver.at(f"board/{TOKENS[3]}")]
    assert board[0] == "Service disruption: recovery under way" and board[-1] == "Recovery complete"
    assert [d.subject for d in receiver.at(f"press/{TOKENS[4]}")] == [
        "Holding statement: service disruption"
    ]
    updates = [u["text"] for u in final["incident"]["updates"]]
    assert any("Some of our services are unavailable" in u for u in updates)
    # never a secret: no webhook token, no DSN password anywhere the audiences can read
    published = _everything_published(moto, platform["outputs"], receiver)
    for secret in (*TOKENS, "pw-Hunter2-XYZ"):
        assert secret not in published


def test_a_finished_run_is_a_no_op_and_a_resume_keeps_the_incident(
    platform, moto, stand_ins, receiver, tmp_path
):
    zone_id = platform["outputs"]["drStandby"]["zoneId"]
    platform["outputs"]["drStandby"]["zoneId"] = "ZMISSING"
    with pytest.raises(DrctlError) as raised:
        _run(platform, moto, stand_ins, tmp_path)
    assert raised.value.code == ExitCode.PRECONDITION_FAILED
    opened = len(receiver.at(f"chat/{TOKENS[2]}"))
    platform["outputs"]["drStandby"]["zoneId"] = zone_id
    resumed = _run(platform, moto, stand_ins, tmp_path)
    assert resumed.all_met is True
    statuses = {r["name"]: r["status"] for r in resumed.report.steps}
    assert statuses["page"] == "done-earlier" and statuses["preflight"] == "completed"
    subjects = [d.subject for d in receiver.at(f"chat/{TOKENS[2]}")]
    assert sum(s.startswith("[DR prod] recovery started") for s in subjects) == 1 and opened >= 1
    incident = {d["incident"]["id"] for d in _page_history(moto, platform["outputs"])}
    assert len(incident) == 1
    again = _run(platform, moto, stand_ins, tmp_path)
    assert again.report.status == "already-completed"


def test_not_met_when_a_health_endpoint_answers_500(
    platform, moto, stand_ins, receiver, tmp_path, capsys
):
    stand_ins["user-auth"].failing = 500
    result = _run(platform, moto, stand_ins, tmp_path)
    tiers = {t["tier"]: t for t in result.tiers}
    assert tiers["critical"]["healthy"] is False and tiers["critical"]["met"] is False
    assert tiers["critical"]["elapsed_s"] is None
    assert tiers["important"]["met"] is True  # the next tier still starts, once the deadline passed
    assert result.all_met is False
    validate = next(r for r in result.report.steps if r["name"] == "validate-critical")
    assert validate["result"]["services"]["user-auth"]["detail"] == "HTTP 500"
    start = next(r for r in result.report.steps if r["name"] == "start-important")
    assert "tier critical is NOT healthy; its deadline" in start["result"]["reason"]
    assert "has passed" in capsys.readouterr().err
    final = _page_history(moto, platform["outputs"])[-1]
    assert next(s for s in final["services"] if s["name"] == "user-auth")["status"] == "outage"
    assert final["incident"]["status"] == "monitoring"
    chat = [d.subject for d in receiver.at(f"chat/{TOKENS[2]}")]
    assert "[DR prod] user-auth NOT healthy" in chat and "[DR prod] tier critical NOT met" in chat


def test_not_met_when_a_dependency_is_missing(platform, moto, stand_ins, tmp_path):
    bucket = platform["outputs"]["buckets"]["user-assets"][REGION]
    s3 = moto.client("s3", REGION)
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    s3.delete_bucket(Bucket=bucket)
    # 1/2400: the important tier's 4 h (the one that waits for the copy) is 6 s
    result = _run(
        platform,
        moto,
        stand_ins,
        tmp_path,
        options=RecoverOptions(time_scale=2400, retry_interval_s=60),
    )
    steps = {r["name"]: r["result"] for r in result.report.steps}
    deps = steps["deps-social-features"]
    assert deps["verified"] is False
    assert [d["ref"] for d in deps["dependencies"] if not d["ok"]] == ["dataset:user-assets"]
    assert steps["switch-social-features"] == {**steps["switch-social-features"], "switched": False}
    assert stand_ins["social-features"].requests == 0  # never started, never checked
    tiers = {t["tier"]: t for t in result.tiers}
    assert tiers["important"]["met"] is False and tiers["critical"]["met"] is True
    zone_id = platform["outputs"]["drStandby"]["zoneId"]
    names = [
        r["Name"]
        for r in moto.client("route53", "us-east-1").list_resource_record_sets(
            HostedZoneId=zone_id
        )["ResourceRecordSets"]
    ]
    assert f"social-features.{ZONE}." not in names


def test_not_met_when_a_tier_overruns_its_scaled_rto(platform, moto, stand_ins, tmp_path):
    """At 1/2400 the critical tier's 1 h is 1.5 s; user-auth is healthy only after 2.5 s."""
    stand_ins["user-auth"].up_after_s = 2.5
    stand_ins["user-auth"].bring_up()
    fast = RecoverOptions(time_scale=2400, retry_interval_s=60)
    result = _run(platform, moto, stand_ins, tmp_path, options=fast)
    critical = result.tiers[0]
    assert critical["met"] is False and critical["rto_s"] == 1.5
    # the same service against an objective it can meet (1/600: 6 s): met, and measured. The
    # incident clock starts before the service is brought up, so it cannot answer before 2.5 s.
    start = dt.datetime.now(dt.UTC)
    stand_ins["user-auth"].bring_up()
    options = RecoverOptions(time_scale=SCALE, retry_interval_s=60, incident_start=start)
    again = _run(platform, moto, stand_ins, tmp_path, fresh=True, options=options)
    assert again.tiers[0]["met"] is True and 2.5 <= again.tiers[0]["elapsed_s"] <= 6.0


def test_a_step_over_its_share_pages_the_next_contact(
    platform, moto, stand_ins, receiver, tmp_path
):
    """user-auth answers only after 4 s; its tier's validate step has 1 s of the 6 s RTO."""
    stand_ins["user-auth"].up_after_s = 4.0
    stand_ins["user-auth"].bring_up()
    result = _run(platform, moto, stand_ins, tmp_path)
    validate = next(r for r in result.report.steps if r["name"] == "validate-critical")
    assert validate["result"]["budget_s"] == 1.0
    assert [e["level"] for e in validate["result"]["escalations"]][:1] == [1]
    level1 = [d.subject for d in receiver.at(f"page/{TOKENS[1]}")]
    assert level1 and all("level 1" in s for s in level1)
    assert "[PAGE prod] escalated to level 1" in level1
    # level 0 keeps getting the pages (its filter is >= 0)
    assert "[PAGE prod] escalated to level 1" in [
        d.subject for d in receiver.at(f"page/{TOKENS[0]}")
    ]


def test_a_secret_missing_in_the_region_is_restored_by_replication(
    platform, moto, stand_ins, tmp_path
):
    name = next(k for k in platform["outputs"]["secretArns"] if k.endswith("/email"))
    moto.client("secretsmanager", REGION).delete_secret(
        SecretId=name, ForceDeleteWithoutRecovery=True
    )
    result = _run(platform, moto, stand_ins, tmp_path)
    deps = next(r for r in result.report.steps if r["name"] == "deps-user-auth")["result"]
    email = next(d for d in deps["dependencies"] if d["ref"] == "secret:email")
    assert email["ok"] and email["action"] == f"replicated from {PRIMARY}"
    assert moto.client("secretsmanager", REGION).describe_secret(SecretId=name)["Name"] == name


def test_a_secret_in_a_failure_message_never_reaches_an_audience(
    platform, moto, stand_ins, receiver, tmp_path
):
    """The fault: an HTTP client that echoes the DSN it was configured with in its error."""

    class Leaky:
        def get(self, url, timeout):
            if url == stand_ins["user-auth"].url:
                raise ConnectionError(f"cannot reach {url} via {DSN}")
            return 200

    result = _run(platform, moto, stand_ins, tmp_path, http=Leaky(), database_dsn=DSN)
    assert result.all_met is False
    validate = next(r for r in result.report.steps if r["name"] == "validate-critical")
    assert "[redacted]" in validate["result"]["services"]["user-auth"]["detail"]
    published = _everything_published(moto, platform["outputs"], receiver)
    assert "pw-Hunter2-XYZ" not in published and "app:pw" not in published
    assert "[redacted]" in published
    journal = (tmp_path / "recover.json").read_text()
    assert "pw-Hunter2-XYZ" not in journal


def test_a_rebuild_stack_runs_the_rebuilds_own_preflight(platform, moto, stand_ins, tmp_path):
    """recover --stack dr: the rebuild's preflight (scripts/runbooks/rebuild.py) runs first and
    stops the recovery (exit 4) when a copy the rebuild adopts is missing in the region."""
    from scripts.runbooks.recover import rebuild_preflight_for

    target = load_target("dr")
    assert target.region == REGION and target.objectives.is_rebuild
    # prod's copies the dr stack adopts: in its primary (us-west-2) and DR (eu-west-1) regions
    third = "eu-west-1"
    source = {"regions": {"primary": PRIMARY, "dr": REGION, "third": third}, "drStandby": {}}
    source["buckets"] = {}
    for dataset, copies in platform["outputs"]["buckets"].items():
        moto.client("s3", third).create_bucket(
            Bucket=copies[third], CreateBucketConfiguration={"LocationConstraint": third}
        )
        source["buckets"][dataset] = {REGION: copies[REGION], third: copies[third]}
    preflight = rebuild_preflight_for(
        target, moto, lambda: source, which=lambda _: "/usr/local/bin/pulumi", open_stack=None
    )
    fast = RecoverOptions(time_scale=360000, retry_interval_s=60)  # every deadline is instant
    servers = {
        s.name: stand_ins.get(s.name) or stand_ins["user-auth"] for s in target.catalogue.services
    }

    def recover(journal: str):
        return run_recover(
            target,
            moto,
            execute=True,
            yes=True,
            outputs=platform["outputs"],
            options=fast,
            health_url=lambda s: servers[s.name].url,
            rebuild_preflight=preflight,
            journal=tmp_path / journal,
        )

    result = recover("dr.json")
    checks = next(r for r in result.report.steps if r["name"] == "preflight")["result"]["rebuild"][
        "checks"
    ]
    assert {c["what"] for c in checks} >= {"creator-audio copy"} and all(c["ok"] for c in checks)
    # the fault: the copy the rebuild would adopt in its primary region is gone
    source["buckets"]["creator-audio"][REGION] = "creator-audio-deleted-copy"
    with pytest.raises(DrctlError) as raised:
        recover("dr-2.json")
    assert raised.value.code == ExitCode.PRECONDITION_FAILED
    assert "creator-audio copy creator-audio-deleted-copy in us-west-2" in str(raised.value)


class _NoCloud:
    """An Aws that fails the test if anything reaches the cloud."""

    def client(self, service, region):
        raise AssertionError(f"{service} in {region} was called")


def test_cli_refuses_without_yes_before_touching_the_cloud(monkeypatch, tmp_path):
    import scripts.runbooks.recover as recover_module

    monkeypatch.setattr(recover_module, "make_aws", _NoCloud)
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")
    result = CliRunner().invoke(
        app,
        [
            "recover",
            "--stack",
            "prod",
            "--outputs",
            str(outputs),
            "--execute",
            "--journal",
            str(tmp_path / "j.json"),
        ],
    )
    assert result.exit_code == ExitCode.REFUSED
    assert "without --yes" in result.output
    assert not (tmp_path / "j.json").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--incident-start", "yesterday"], "--incident-start 'yesterday' is not valid"),
        (["--incident-start", "2026-11-26T18:30:00"], "an ISO 8601 time with a UTC offset"),
        (["--incident-start", "2999-01-01T00:00:00Z"], "is in the future"),
        (["--stack", "staging"], "no stack 'staging'"),
    ],
)
def test_cli_bad_arguments_exit_2(args, words):
    result = CliRunner().invoke(app, ["recover", *args])
    assert result.exit_code == ExitCode.INVALID_CONFIG
    assert words in " ".join(result.output.split())


def test_cli_exits_1_when_a_tier_is_not_met(monkeypatch, platform, moto, tmp_path):
    """Through the CLI: an incident that started 25 h ago has every deadline behind it, so each
    check runs once; the health endpoints answer 500; every tier is NOT met: exit 1."""
    import scripts.runbooks.recover as recover_module

    class Failing:
        def get(self, url, timeout):
            return 500

    monkeypatch.setattr(recover_module, "make_aws", lambda: moto)
    monkeypatch.setattr(recover_module, "UrllibClient", Failing)
    monkeypatch.setattr(recover_module, "load_target", lambda stack: platform["target"])
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(platform["outputs"]))
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)).isoformat()
    result = CliRunner().invoke(
        app,
        [
            "recover",
            "--outputs",
            str(outputs),
            "--incident-start",
            start,
            "--execute",
            "--yes",
            "--json",
            "--journal",
            str(tmp_path / "j.json"),
        ],
    )
    assert result.exit_code == ExitCode.OBJECTIVE_NOT_MET, result.output
    doc = json.loads(result.stdout)
    assert doc["all_met"] is False and [t["met"] for t in doc["tiers"]] == [False] * 4
    assert doc["steps"][0]["result"]["started_at"].startswith(start[:16])
