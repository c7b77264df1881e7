"""PostgresBackup for all three backends, read off the inputs the real program declares (mocks).

Every backend is evaluated for both stacks with ``evaluate_stack(stack, overrides=...)``: the same
__main__.py, the real pulumi_aws / pulumi_postgresql classes, no cloud.
"""

from __future__ import annotations

import functools
import json

import pytest
from pulumi.runtime import rpc

from components import database_derivation as dd
from components import database_settings as ds
from components import postgres_backup as pb
from components import postgres_jobs as pj
from components.objectives import ConfigError, parse_objectives
from policy.rules import iam_no_wildcard_actions
from scripts.local.evaluate import evaluate_stack, read_stack_config

STACKS = ("prod", "dr")
BACKENDS = ("rds", "self-managed", "supabase")
SECRET = "s3cr3t-Hunter2-do-not-leak"
OTHER_SECRET = "repl-pass-XYZZY-do-not-leak"


@functools.cache
def _evaluate(stack: str, backend: str, extra: tuple = ()):
    return evaluate_stack(stack, overrides={"dbBackend": backend, **dict(extra)})


def _objectives(stack: str, **overrides):
    raw = read_stack_config(stack)
    raw.update({f"platform-dr:{k}": v for k, v in overrides.items()})
    return parse_objectives(raw, stack)


def _secret_value(value):
    """The value of an input the engine received as a secret; AssertionError if it was plain."""
    assert isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig, (
        f"not a secret: {value!r}"
    )
    return value["value"]


def _one(ev, type_token):
    found = ev.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


# -- all backends ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stack", STACKS)
def test_every_backend_evaluates_for_both_stacks(stack, backend):
    ev = _evaluate(stack, backend)
    regions = ev.outputs["regions"]
    component = _one(ev, pb.PostgresBackup.TYPE)
    assert component.inputs["backend"] == backend
    db = ev.outputs["database"]
    assert db["backend"] == backend and db["primaryEndpoint"]
    # Only this component's resources: the DR standby declares its own (a read replica, say).
    types = {r.type for r in ev.resources if r.name.startswith(("database", "db-"))}
    has_rds = "aws:rds/instance:Instance" in types
    has_slot = "postgresql:index/physicalReplicationSlot:PhysicalReplicationSlot" in types
    has_pub = "postgresql:index/publication:Publication" in types
    assert (has_rds, has_slot, has_pub) == (
        backend == "rds",
        backend == "self-managed",
        backend == "supabase",
    )
    if backend == "rds":
        assert db["rdsInstanceArn"].startswith(f"arn:aws:rds:{regions['primary']}:")
        assert db["repoBuckets"] is None and db["replicationSlotName"] is None
        # No pulumi-postgresql provider at all: nothing connects to an RDS database at deploy.
        assert not any(t.startswith("pulumi:providers:postgresql") for t in types)
    if backend == "self-managed":
        assert set(db["repoBuckets"]) == {"repo1", "repo2"}
        assert db["replicationSlotName"] == pb.slot_name(_objectives(stack))
        assert db["rdsInstanceArn"] is None
    if backend == "supabase":
        assert db["publicationName"] == pb.PUBLICATION
        assert set(db["dumpBuckets"]) == set(regions.values())


# -- rds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_rds_instance_keeps_pitr_window_encrypted_protected(stack):
    ev = _evaluate(stack, "rds")
    regions = ev.outputs["regions"]
    inst = ev.named("database-instance").inputs
    assert inst["region"] == regions["primary"]
    assert inst["backupRetentionPeriod"] == 7 == _objectives(stack).pitr_window_days
    assert inst["backupWindow"] == "03:00-03:30"
    assert inst["storageEncrypted"] is True
    key = next(
        r for r in ev.of_type("aws:kms/key:Key") if r.name == f"database-key-{regions['primary']}"
    )
    assert key.inputs["multiRegion"] is True and key.inputs["enableKeyRotation"] is True
    assert inst["kmsKeyId"] == f"arn:aws:kms:{regions['primary']}:111122223333:key/{key.id}"
    assert inst["deletionProtection"] is True
    assert inst["copyTagsToSnapshot"] is True
    assert inst["skipFinalSnapshot"] is False
    assert inst["finalSnapshotIdentifier"] == f"{inst['identifier']}-final"
    assert inst["deleteAutomatedBackups"] is False
    assert "postgresql" in inst["enabledCloudwatchLogsExports"]
    assert inst["manageMasterUserPassword"] is True
    assert "password" not in inst and "passwordWo" not in inst
    assert inst["publiclyAccessible"] is False
    assert inst["tags"]["backup-class"] == "critical" and inst["tags"]["dr-dataset"] == "database"
    params = _one(ev, "aws:rds/parameterGroup:ParameterGroup")
    assert params.inputs["family"] == f"postgres{inst['engineVersion']}" == "postgres16"
    assert inst["parameterGroupName"] == params.name
    assert {
        "name": "rds.force_ssl",
        "value": "1",
        "applyMethod": "pending-reboot",
    } in params.inputs["parameters"]


@pytest.mark.parametrize("stack", STACKS)
def test_rds_automated_backups_replicate_to_dr_under_dr_key(stack):
    ev = _evaluate(stack, "rds")
    regions = ev.outputs["regions"]
    repl = _one(
        ev, "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
    )
    assert repl.inputs["region"] == regions["dr"]
    assert repl.inputs["sourceDbInstanceArn"] == ev.outputs["database"]["rdsInstanceArn"]
    assert repl.inputs["retentionPeriod"] >= _objectives(stack).pitr_window_days
    dr_key = ev.named(f"database-key-{regions['dr']}")
    assert dr_key.type == "aws:kms/replicaKey:ReplicaKey" and dr_key.region == regions["dr"]
    assert repl.inputs["kmsKeyId"] == f"arn:aws:kms:{regions['dr']}:111122223333:key/{dr_key.id}"


def test_rds_retention_follows_the_window_with_the_spec_floor():
    longer = _evaluate("prod", "rds", (("pitrWindowDays", 14),))
    assert longer.named("database-instance").inputs["backupRetentionPeriod"] == 14
    repl_type = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
    assert _one(longer, repl_type).inputs["retentionPeriod"] == 14
    shorter = _evaluate("prod", "rds", (("pitrWindowDays", 3),))
    assert shorter.named("database-instance").inputs["backupRetentionPeriod"] == 7


def test_rds_adopts_an_existing_instance_by_import():
    ev = _evaluate("prod", "rds", (("rdsAdoptInstanceId", "legacy-music-db"),))
    inst = ev.named("database-instance")
    assert inst.import_id == "legacy-music-db"
    assert inst.inputs["identifier"] == "legacy-music-db"
    assert _evaluate("prod", "rds").named("database-instance").import_id == ""


# -- self-managed ---------------------------------------------------------------------------------


def _repo_copies(ev, repo):
    return {
        r.region: r
        for r in ev.of_type("aws:s3/bucket:Bucket")
        if r.name.startswith(f"database-{repo}-")
    }


@pytest.mark.parametrize("stack", STACKS)
def test_two_independent_object_locked_repositories_in_two_regions(stack):
    ev = _evaluate(stack, "self-managed")
    regions = ev.outputs["regions"]
    objectives = _objectives(stack)
    names = ev.outputs["database"]["repoBuckets"]
    repo1, repo2 = _repo_copies(ev, "repo1"), _repo_copies(ev, "repo2")
    assert repo1[regions["primary"]].id == names["repo1"]
    assert repo2[regions["dr"]].id == names["repo2"]
    for copies in (repo1, repo2):
        for bucket in copies.values():
            assert bucket.inputs["objectLockEnabled"] is True
            lock = ev.named(f"{bucket.name}-object-lock").inputs["rule"]["defaultRetention"]
            assert lock["mode"] == objectives.backup_object_lock_mode == "COMPLIANCE"
            assert lock["days"] == dd.repo_lock_days(objectives) == 14
    # Independent: each repository replicates from its own root, and neither root is a
    # destination of the other repository's replication.
    r1 = ev.named("database-repo1-replication").inputs
    r2 = ev.named("database-repo2-replication").inputs
    assert r1["region"] == regions["primary"] and r2["region"] == regions["dr"]
    r1_dest = {rule["destination"]["bucket"] for rule in r1["rules"]}
    r2_dest = {rule["destination"]["bucket"] for rule in r2["rules"]}
    assert f"arn:aws:s3:::{names['repo2']}" not in r1_dest
    assert f"arn:aws:s3:::{names['repo1']}" not in r2_dest
    # Different keys: losing or disabling one repository's key leaves the other readable.
    key1 = ev.named(f"database-repo1-key-{regions['primary']}")
    key2 = ev.named(f"database-repo2-key-{regions['dr']}")
    assert key1.type == key2.type == "aws:kms/key:Key" and key1.id != key2.id


@pytest.mark.parametrize("stack", STACKS)
def test_host_role_has_exactly_the_repository_buckets_and_keys(stack):
    ev = _evaluate(stack, "self-managed")
    regions = ev.outputs["regions"]
    names = ev.outputs["database"]["repoBuckets"]
    policy_resource = ev.named("database-host-s3-kms")
    assert iam_no_wildcard_actions(policy_resource.inputs) == []
    policy = json.loads(policy_resource.inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    assert all("*" not in a for a in actions)
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    buckets = {f"arn:aws:s3:::{names['repo1']}", f"arn:aws:s3:::{names['repo2']}"}
    objects = {f"{b}/pgbackrest/*" for b in buckets}
    key1 = ev.named(f"database-repo1-key-{regions['primary']}")
    key2 = ev.named(f"database-repo2-key-{regions['dr']}")
    keys = {
        f"arn:aws:kms:{regions['primary']}:111122223333:key/{key1.id}",
        f"arn:aws:kms:{regions['dr']}:111122223333:key/{key2.id}",
    }
    assert resources == buckets | objects | keys
    profile = ev.of_type("aws:iam/instanceProfile:InstanceProfile")
    assert [p.inputs["role"] for p in profile if p.name == "database-host"] == ["database-host"]


def test_archive_timeout_is_derived_from_critical_rpo():
    def archiving(ev):
        conf = ev.outputs["databaseArtefacts"]["postgresql/conf.d/pgbackrest-archiving.conf"]
        return dict(line.split(" = ", 1) for line in conf.splitlines() if not line.startswith("#"))

    default = _evaluate("prod", "self-managed")
    tighter = _evaluate("prod", "self-managed", (("criticalRpo", "3m"),))
    assert archiving(default)["archive_timeout"] == "'300s'"
    assert archiving(tighter)["archive_timeout"] == "'60s'"
    assert archiving(default)["wal_level"] == "'replica'"
    assert archiving(default)["archive_mode"] == "'on'"
    assert "archive-push %p" in archiving(default)["archive_command"]
    # The component registers the rendered files themselves (what posture and the pack parse),
    # and no derived numbers beside them that a rule could read instead.
    comp = _one(tighter, pb.PostgresBackup.TYPE).inputs
    assert comp["artefacts"] == tighter.outputs["databaseArtefacts"]
    assert not {"archiveTimeoutS", "archivePushTimeoutS", "dumpIntervalS"} & set(comp)


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_artefacts_name_the_declared_repositories(stack):
    ev = _evaluate(stack, "self-managed")
    files = ev.outputs["databaseArtefacts"]
    names = ev.outputs["database"]["repoBuckets"]
    conf = files["pgbackrest/pgbackrest.conf"]
    assert f"repo1-s3-bucket={names['repo1']}" in conf
    assert f"repo2-s3-bucket={names['repo2']}" in conf
    assert f"repo2-s3-region={ev.outputs['regions']['dr']}" in conf
    assert "cipher-pass" not in conf
    assert {
        "systemd/pgbackrest-full.timer",
        "systemd/pgbackrest-incr.timer",
        "cron.d/pgbackrest",
    } <= set(files)
    assert "databaseArtefacts" not in ev.secret_outputs  # plain on purpose: holds no secret


def test_replication_and_monitoring_roles_and_standby_slot():
    ev = _evaluate("prod", "self-managed")
    roles = {r.inputs["name"]: r.inputs for r in ev.of_type("postgresql:index/role:Role")}
    assert roles[pb.REPLICATION_ROLE]["replication"] is True
    assert roles[pb.REPLICATION_ROLE]["login"] is True
    assert roles[pb.MONITORING_ROLE]["roles"] == ["pg_monitor"]
    assert not roles[pb.MONITORING_ROLE].get("superuser")
    slot = _one(ev, "postgresql:index/physicalReplicationSlot:PhysicalReplicationSlot")
    assert slot.inputs["name"] == "dr_standby_us_west_2"
    provider = _one(ev, "pulumi:providers:postgresql")
    assert provider.name == "db-primary" and provider.inputs["sslmode"] == "require"


# -- supabase -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_supabase_publication_subscription_and_dump_bucket(stack):
    ev = _evaluate(stack, "supabase")
    regions = ev.outputs["regions"]
    pub = _one(ev, "postgresql:index/publication:Publication").inputs
    assert pub["name"] == pb.PUBLICATION and pub["allTables"] is True
    sub = _one(ev, "postgresql:index/subscription:Subscription").inputs
    assert sub["publications"] == [pb.PUBLICATION]
    assert "sslmode=require" in _secret_value(sub["conninfo"])
    providers = {p.name: p.inputs for p in ev.of_type("pulumi:providers:postgresql")}
    assert set(providers) == {"db-primary", "db-dr"}
    assert providers["db-primary"]["superuser"] == "false"  # Supabase's postgres role is not one
    dumps = {
        r.region: r
        for r in ev.of_type("aws:s3/bucket:Bucket")
        if r.name.startswith("database-dumps-")
    }
    assert set(dumps) == set(regions.values())
    assert all(b.inputs["objectLockEnabled"] for b in dumps.values())
    policy = json.loads(ev.named("database-dump-host-s3-kms").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert "s3:DeleteObject" not in actions  # the dump writer can never remove a dump
    files = ev.outputs["databaseArtefacts"]
    assert "OnCalendar=*-*-01 02:45:00 UTC" in files["systemd/supabase-dump-monthly.timer"]
    service = files["systemd/supabase-dump-daily.service"]
    assert "pg_dump --format=custom" in service and dumps[regions["primary"]].id in service
    assert "%%Y" in service  # systemd needs % doubled
    assert "\\%Y" in files["cron.d/supabase-dump"]  # cron needs it escaped


@pytest.mark.parametrize("stack", STACKS)
def test_supabase_subscription_lag_alarm_and_monitor(stack):
    ev = _evaluate(stack, "supabase")
    dr = ev.outputs["regions"]["dr"]
    alarm = ev.named("database-subscription-lag")
    lag = alarm.inputs
    assert alarm.region == dr
    assert (lag["namespace"], lag["metricName"]) == (pj.LAG_NAMESPACE, pj.LAG_METRIC)
    sub = _one(ev, "postgresql:index/subscription:Subscription").inputs
    assert lag["dimensions"] == {"Subscription": sub["name"]} == {"Subscription": pb.SUBSCRIPTION}
    assert (lag["statistic"], lag["period"], lag["evaluationPeriods"]) == ("Maximum", 60, 1)
    assert lag["threshold"] == _objectives(stack).of("critical").rpo_s == 900
    assert lag["comparisonOperator"] == "GreaterThanThreshold"
    assert lag["treatMissingData"] == "breaching"  # no metric = the monitor is dead
    topic = ev.outputs["alertTopicArns"][dr]
    assert lag["alarmActions"] == lag["okActions"] == [topic]
    assert alarm.tags["backup-class"] == "critical" and alarm.tags["dr-dataset"] == "database"
    # The host may publish that metric and nothing else.
    doc = json.loads(ev.named("database-dump-host-metrics").inputs["policy"])
    (statement,) = doc["Statement"]
    assert statement["Action"] == ["cloudwatch:PutMetricData"]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "platform-dr"}}
    assert iam_no_wildcard_actions({"policy": json.dumps(doc)}) == []
    files = ev.outputs["databaseArtefacts"]
    service = files["systemd/subscription-lag-monitor.service"]
    assert f"where subname = '{pb.SUBSCRIPTION}'" in service and "pg_stat_subscription" in service
    assert f"--region {dr} --namespace platform-dr --metric-name SubscriptionLagSeconds" in service
    assert f"--dimensions Subscription={pb.SUBSCRIPTION}" in service
    assert "$$lag" in service  # systemd needs $ doubled
    assert "OnCalendar=minutely" in files["systemd/subscription-lag-monitor.timer"]


@pytest.mark.parametrize("backend", ("rds", "self-managed"))
def test_other_backends_have_no_subscription_monitor(backend):
    ev = _evaluate("prod", backend)
    assert not any(r.name == "database-subscription-lag" for r in ev.resources)
    assert not any("subscription-lag" in path for path in ev.outputs["databaseArtefacts"])


def test_supabase_needs_a_dr_alarm_topic():
    objectives = _objectives("prod", dbBackend="supabase")
    provider = object()  # never used: validation stops first
    args = pb.PostgresBackupArgs(
        objectives=objectives,
        alarm_topic_arns={"us-east-1": "arn:aws:sns:us-east-1:111122223333:alerts"},
        postgres_provider=provider,
        dr_postgres_provider=provider,
        publisher_conninfo="host=db.abc.supabase.co",
    )
    with pytest.raises(ConfigError) as err:
        pb.PostgresBackup("database", args)
    assert err.value.key == "alarm_topic_arns" and "a topic in us-west-2" in str(err.value)


# -- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ("self-managed", "supabase"))
def test_no_secret_in_plain_outputs_or_artefacts(backend):
    ev = _evaluate(
        "prod",
        backend,
        (
            ("platform-dr-db:password", SECRET),
            ("platform-dr-db:drPassword", SECRET),
            ("platform-dr-db:replicationPassword", OTHER_SECRET),
        ),
    )
    plain = json.dumps({k: v for k, v in ev.outputs.items() if k not in ev.secret_outputs})
    assert SECRET not in plain and OTHER_SECRET not in plain
    # The secrets did reach the resources that need them (so the test above means something).
    provider = next(p for p in ev.of_type("pulumi:providers:postgresql") if p.name == "db-primary")
    # ...and reached them as secrets, so state and previews show them encrypted.
    assert _secret_value(provider.inputs["password"]) == SECRET
    if backend == "supabase":
        sub = _one(ev, "postgresql:index/subscription:Subscription").inputs
        assert f"password={SECRET}" in _secret_value(sub["conninfo"])
    else:
        roles = {r.inputs["name"]: r.inputs for r in ev.of_type("postgresql:index/role:Role")}
        assert _secret_value(roles[pb.REPLICATION_ROLE]["password"]) == OTHER_SECRET


def test_publisher_conninfo_is_a_secret_output():
    from pulumi.runtime.sync_await import _sync_await

    out = ds.DatabaseSettings(host="db.abc.supabase.co").publisher_conninfo("it's secret")
    assert _sync_await(out.is_secret()) is True
    text = _sync_await(out.future())
    assert text.startswith("host=db.abc.supabase.co port=5432 user=postgres dbname=postgres")
    assert text.endswith("password='it\\'s secret'")


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("dbPort", 70000, "a TCP port"),
        ("dbHost", "db.example.com:5432", "without a port"),
        ("supabaseProjectRef", "ABC", "20 lowercase letters"),
        ("rdsInstanceClass", "r6g.large", "db.r6g.large"),
        ("rdsAdoptInstanceId", "bad--id", "RDS instance identifier"),
    ],
)
def test_bad_database_config_names_key_value_and_allowed(key, value, needle):
    with pytest.raises(ConfigError) as err:
        ds.parse_database_settings({key: value})
    assert err.value.key == key and needle in str(err.value) and repr(value) in str(err.value)


def test_bad_database_config_stops_the_program_before_any_resource():
    with pytest.raises(SystemExit) as exit_:
        evaluate_stack("prod", overrides={"dbPort": "none"})
    assert exit_.value.code == 2


def test_self_managed_needs_a_provider_from_the_caller():
    args = pb.PostgresBackupArgs(objectives=_objectives("prod"))
    with pytest.raises(ConfigError, match="postgresProvider"):
        pb.PostgresBackup("database", args)


def test_rpo_too_tight_for_wal_archiving_stops_the_program_before_any_resource(capsys):
    with pytest.raises(SystemExit) as exit_:
        evaluate_stack("prod", overrides={"dbBackend": "self-managed", "criticalRpo": "30s"})
    assert exit_.value.code == 2
    assert "platform-dr:criticalRpo = '30s' is not valid" in capsys.readouterr().err
    # The same RPO is fine for RDS, whose log shipping does not depend on archive_timeout.
    assert _evaluate("prod", "rds", (("criticalRpo", "30s"),)).resource_count > 0


def test_s3_kms_policy_is_exact_and_has_no_wildcard_actions():
    doc = json.loads(
        dd.s3_kms_policy(["arn:aws:s3:::b2", "arn:aws:s3:::b1"], ["k1"], "dumps", delete=False)
    )
    list_stmt, rw, kms = doc["Statement"]
    assert list_stmt["Resource"] == ["arn:aws:s3:::b1", "arn:aws:s3:::b2"]
    assert list_stmt["Condition"]["StringLike"]["s3:prefix"] == ["dumps", "dumps/*"]
    assert rw["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert rw["Resource"] == ["arn:aws:s3:::b1/dumps/*", "arn:aws:s3:::b2/dumps/*"]
    assert kms["Resource"] == ["k1"]


def test_rds_rebuild_stack_warns_until_it_adopts_the_restored_instance(caplog):
    # Under mocks the engine's log goes through Python logging.
    evaluate_stack("dr", overrides={"dbBackend": "rds"})
    assert "declares a NEW, empty RDS instance" in caplog.text
    caplog.clear()
    ev = evaluate_stack(
        "dr", overrides={"dbBackend": "rds", "rdsAdoptInstanceId": "platform-dr-dr"}
    )
    assert "empty RDS instance" not in caplog.text
    assert ev.named("database-instance").import_id == "platform-dr-dr"


@pytest.mark.parametrize(
    "backup, maintenance, key, needle",
    [
        ("03:00-03:10", "sun:04:00-sun:04:30", "backupWindow", "at least 30 minutes"),
        ("3:00-03:30", "sun:04:00-sun:04:30", "backupWindow", "hh:mm-hh:mm"),
        ("03:00-03:30", "sunday 4am", "maintenanceWindow", "ddd:hh:mm-ddd:hh:mm"),
        ("03:00-03:30", "sun:03:15-sun:04:00", "maintenanceWindow", "does not overlap"),
        # The backup window crosses midnight into Monday's maintenance.
        ("23:50-00:30", "mon:00:00-mon:00:30", "maintenanceWindow", "does not overlap"),
    ],
)
def test_rds_windows_are_checked_before_anything_is_declared(backup, maintenance, key, needle):
    args = pb.PostgresBackupArgs(
        objectives=_objectives("prod", dbBackend="rds"),
        backup_window=backup,
        maintenance_window=maintenance,
    )
    with pytest.raises(ConfigError) as err:
        pb.PostgresBackup("database", args)  # raises before the component registers
    assert err.value.key == key and needle in str(err.value)


def test_rds_windows_that_touch_but_do_not_overlap_are_fine():
    ds.check_rds_windows("23:50-00:30", "mon:00:31-mon:01:00")
    ds.check_rds_windows("03:00-03:30", "sun:04:00-sun:04:30")
