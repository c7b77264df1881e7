"""What failover needs from the program: the control bucket, the cipher passphrase with its DR
replica, the slot alarm, the host agents and their derivations, read off the real __main__.py
evaluated under Pulumi's mocks (scripts/local/evaluate.py), plus the pure renderers.

The agents themselves run against real PostgreSQL in tests/integration (test_failover_pg.py,
test_standby_rendered.py, test_rpo_governor.py); here: the numbers and the text they are given.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
from dataclasses import replace

import pytest

from components import pg_host_agents as agents
from components.agents.rpo_governor import Governor
from components.dr_standby import render_standby_config
from components.failover_control import (
    control_bucket_policy,
    journal_key,
    lease_access_policy,
    lease_key,
)
from components.objectives import parse_objectives
from components.pgbackrest_config import (
    postgres_settings,
    rearm_settings,
    render_secret_conf,
    restore_command,
    s3_settings,
)
from components.postgres_backup import REPLICATION_ROLE, cipher_secret_name, slot_name
from policy.rules import iam_no_wildcard_actions
from scripts.local.evaluate import evaluate_stack, read_stack_config

PRIMARY, DR = "us-east-1", "us-west-2"


def _objectives(**overrides):
    raw = read_stack_config("prod")
    raw.update({f"platform-dr:{k}": v for k, v in overrides.items()})
    return parse_objectives(raw, "prod")


@functools.cache
def _prod(backend: str = "self-managed"):
    return evaluate_stack("prod", overrides={"dbBackend": backend})


# -- derivations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rto, ttl, interval, wait",
    [("1h", 180, 30, 315), ("4h", 300, 30, 435), ("10m", 30, 5, 140)],
)
def test_lease_timing_follows_the_critical_rto_and_bounds_the_fence_wait(rto, ttl, interval, wait):
    timing = agents.lease_timing(_objectives(criticalRto=rto))
    assert (timing.ttl_s, timing.interval_s, timing.fence_wait_s) == (ttl, interval, wait)


def test_governor_engages_at_half_the_rpo_and_releases_at_a_quarter():
    t = agents.governor_thresholds(_objectives(criticalRpo="15m"))
    assert (t.rpo_s, t.engage_lag_s, t.release_lag_s) == (900, 450, 225)


def test_archiving_settings_keep_rewind_possible_and_the_slot_bounded():
    obj = _objectives()
    pg = postgres_settings(obj)
    assert pg["wal_log_hints"] == "on" and pg["max_slot_wal_keep_size"] == "64GB"
    assert postgres_settings(obj, max_slot_wal_keep_size="1GB")["max_slot_wal_keep_size"] == "1GB"


def test_standby_reads_repo2_and_connects_as_the_declared_role_over_verified_tls():
    conf = render_standby_config("db.internal", 5432, REPLICATION_ROLE, "dr_standby_us_west_2")[
        "standby.conf"
    ]
    assert f"user={REPLICATION_ROLE}" in conf and "sslmode=verify-full" in conf
    assert "application_name=dr_standby" in conf
    assert '--repo=2 archive-get %f "%p"' in conf
    assert f"restore_command = '{restore_command()}'" in conf.replace("''", "'")


def test_rearm_keeps_the_dr_repository_as_repo1_and_adds_a_new_region_as_repo2():
    obj = _objectives()
    settings = s3_settings(
        obj,
        bucket_names={PRIMARY: "b1", DR: "b2", "eu-west-1": "b3"},
        kms_key_ids={PRIMARY: "k1", DR: "k2", "eu-west-1": "k3"},
    )
    alone = rearm_settings(settings)
    assert [(r.index, r.bucket, r.region) for r in alone.repos] == [(1, "b2", DR)]
    third = replace(settings.repo(2), bucket="b3", region="eu-west-1", kms_key_id="k3")
    both = rearm_settings(settings, third)
    assert [(r.index, r.bucket) for r in both.repos] == [(1, "b2"), (2, "b3")]


def test_governor_lag_is_zero_when_idle_and_grows_while_the_standby_stays_behind():
    gov = Governor({"slot": "s", "application_name": "dr_standby"})
    assert gov.lag(0.0, 100, 100) == 0.0  # caught up
    assert gov.lag(5.0, 100, 100) == 0.0  # idle for 5 s: still no lag
    assert gov.lag(6.0, 200, 100) == pytest.approx(1.0)  # new WAL, not replayed: since 5.0
    assert gov.lag(9.0, 300, None) == pytest.approx(4.0)  # standby silent: keeps growing
    assert gov.lag(10.0, 300, 250) == pytest.approx(4.0)  # replayed past 200: anchor 6.0
    assert gov.lag(11.0, 300, 300) == 0.0


# -- rendered host files ---------------------------------------------------------------------------


def _files(obj=None):
    obj = obj or _objectives()
    settings = s3_settings(
        obj, bucket_names={PRIMARY: "b1", DR: "b2"}, kms_key_ids={PRIMARY: "k1", DR: "k2"}
    )
    template = render_secret_conf(settings, {r.index: "\0" for r in settings.repos})
    files = agents.render_host_agents(
        obj,
        lease_bucket="drctl-control-x",
        slot=slot_name(obj),
        pgbackrest_argv=settings.base_command,
        cipher_secret_name=cipher_secret_name(obj),
        secret_conf_template=template,
        include_path=settings.config_include_path,
    )
    return obj, settings, files


def test_each_host_gets_its_own_region_in_the_guard_and_the_same_lease():
    obj, _, files = _files()
    guards = {r: json.loads(files[f"platform-dr/{r}/fence_guard.json"]) for r in agents.ROLES}
    assert guards["primary"]["region"] == PRIMARY and guards["dr"]["region"] == DR
    for guard in guards.values():
        assert guard["lease"] == {
            "bucket": "drctl-control-x",
            "region": DR,
            "key": lease_key("prod"),
            "ack_prefix": "lease/prod/fenced/",
        }
        assert guard["ttl_s"] == 180 and guard["pgbackrest"][0] == "/usr/bin/pgbackrest"
    assert files["platform-dr/fence_guard.py"] == agents.agent_source("fence_guard")
    dropin = files["systemd/postgresql@.service.d/platform-dr-fence-guard.conf"]
    assert "ExecStartPre=/usr/bin/python3 /usr/local/lib/platform-dr/fence_guard.py" in dropin
    assert dropin.rstrip().endswith("preflight")
    assert "OnUnitActiveSec=30s" in files["systemd/platform-dr-fence-guard.timer"]
    governor = json.loads(files["platform-dr/primary/rpo_governor.json"])
    assert (governor["engage_lag_s"], governor["sync_commit"]) == (450, "remote_apply")
    assert "Restart=always" in files["systemd/platform-dr-rpo-governor.service"]
    assert "OnUnitActiveSec=5s" in files["systemd/platform-dr-heartbeat.timer"]


def _run_secrets_unit(unit: str, settings, tmp_path, fake_aws: str):
    """The unit's ExecStart as systemd runs it, writing into tmp_path, with a stand-in aws."""
    (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
    argv = [a.replace("$$", "$").replace("%%", "%") for a in shlex.split(line[10:])]
    argv[-1] = argv[-1].replace(settings.config_include_path, str(tmp_path))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "aws").write_text(f"#!/bin/sh\n{fake_aws}\n")
    (fake / "aws").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "AWS_REGION": DR}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def test_secrets_unit_writes_exactly_the_fragment_the_renderer_defines(tmp_path):
    """Run the rendered ExecStart with a stand-in aws that answers the passphrase."""
    obj, settings, files = _files()
    unit = files["systemd/platform-dr-pgbackrest-secrets.service"]
    assert f"--secret-id {cipher_secret_name(obj)}" in unit and '--region \\"$$AWS_REGION' in unit
    done = _run_secrets_unit(unit, settings, tmp_path, "printf 'Pa55-w0rd%%x\\n'")
    assert done.returncode == 0, done.stderr
    written = tmp_path / "secrets.conf"
    assert written.read_text() == render_secret_conf(settings, {1: "Pa55-w0rd%x", 2: "Pa55-w0rd%x"})
    assert oct(os.stat(written).st_mode & 0o777) == "0o600"


def test_secrets_unit_writes_nothing_when_the_secret_cannot_be_read(tmp_path):
    _, settings, files = _files()
    unit = files["systemd/platform-dr-pgbackrest-secrets.service"]
    done = _run_secrets_unit(unit, settings, tmp_path, "echo AccessDeniedException >&2; exit 255")
    assert done.returncode != 0 and not (tmp_path / "secrets.conf").exists()


# -- policies --------------------------------------------------------------------------------


def test_control_bucket_refuses_unconditional_writes_to_the_lease_and_journals():
    policy = json.loads(control_bucket_policy("arn:aws:s3:::ctl"))
    statements = {s["Sid"]: s for s in policy["Statement"]}
    conditional = statements["ConditionalWritesOnly"]
    assert conditional["Effect"] == "Deny" and conditional["Action"] == "s3:PutObject"
    assert conditional["Condition"] == {"Null": {"s3:if-match": "true", "s3:if-none-match": "true"}}
    assert conditional["Resource"] == [
        "arn:aws:s3:::ctl/lease/*/database.json",
        "arn:aws:s3:::ctl/journal/*",
    ]
    assert "DenyInsecureTransport" in statements
    assert journal_key("prod", "failover") == "journal/prod/failover.json"


def test_hosts_may_list_the_lease_prefix_so_a_missing_lease_is_404_not_403():
    policy = json.loads(lease_access_policy("arn:aws:s3:::ctl", "arn:aws:kms:k", ["prod"]))
    listing, objects, key = policy["Statement"]
    assert key["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert key["Resource"] == ["arn:aws:kms:k"]
    assert listing["Action"] == ["s3:ListBucket"] and listing["Resource"] == ["arn:aws:s3:::ctl"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["lease/prod/*"]}}
    assert objects["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert objects["Resource"] == ["arn:aws:s3:::ctl/lease/prod/*"]
    assert iam_no_wildcard_actions(policy) == []


# -- declared resources (the real program under mocks) ----------------------------------------


def test_control_bucket_is_declared_in_the_dr_region_and_exported():
    ev = _prod()
    bucket = ev.named("failover-control-bucket")
    assert bucket.inputs["region"] == DR and bucket.inputs["bucketPrefix"] == "drctl-control-"
    assert ev.named("failover-control-versioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"
    }
    assert ev.named("failover-control-public-access").inputs["restrictPublicBuckets"] is True
    (rule,) = ev.named("failover-control-encryption").inputs["rules"]
    default = rule["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms" and f":{DR}:" in default["kmsMasterKeyId"]
    control = ev.outputs["failoverControl"]
    assert control["region"] == DR and control["leaseKey"] == "lease/prod/database.json"
    assert control["bucket"].startswith("drctl-control-")


def test_cipher_passphrase_has_a_dr_replica_and_only_the_host_role_reads_it():
    ev = _prod()
    secret = ev.named("database-cipher-pass").inputs
    assert secret["region"] == PRIMARY and secret["name"] == cipher_secret_name(_objectives())
    (replica,) = secret["replicas"]
    assert replica["region"] == DR and replica["kmsKeyId"].startswith(f"arn:aws:kms:{DR}:")
    assert ev.named("database-cipher-pass-value").inputs["secretId"]
    arns = ev.outputs["database"]["cipherSecretArns"]
    assert set(arns) == {PRIMARY, DR} and f":{DR}:" in arns[DR]
    read = json.loads(ev.named("database-host-cipher-pass").inputs["policy"])
    assert read["Statement"][0]["Action"] == ["secretsmanager:GetSecretValue"]
    assert sorted(read["Statement"][0]["Resource"]) == sorted(arns.values())
    lease = json.loads(ev.named("database-host-lease").inputs["policy"])
    assert lease["Statement"][1]["Resource"][0].endswith("/lease/prod/*")


def test_slot_alarm_fires_on_unreserved_lost_or_silent():
    alarm = _prod().named("database-slot-wal-status").inputs
    assert alarm["metricName"] == agents.SLOT_METRIC and alarm["threshold"] == 2
    assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["treatMissingData"] == "breaching" and alarm["region"] == PRIMARY


def test_host_artefacts_include_the_agents_and_the_rearm_config():
    artefacts = _prod().outputs["databaseArtefacts"]
    for path in (
        "platform-dr/fence_guard.py",
        "platform-dr/primary/fence_guard.json",
        "platform-dr/dr/fence_guard.json",
        "systemd/platform-dr-rpo-governor.service",
        "systemd/platform-dr-slot-monitor.timer",
        "systemd/platform-dr-pgbackrest-secrets.service",
        "rearm/pgbackrest/pgbackrest.conf",
        "rearm/systemd/pgbackrest-full.timer",
    ):
        assert path in artefacts, path
    guard = json.loads(artefacts["platform-dr/primary/fence_guard.json"])
    assert guard["lease"]["bucket"] == _prod().outputs["failoverControl"]["bucket"]
    rearm = artefacts["rearm/pgbackrest/pgbackrest.conf"]
    repo2 = _prod().outputs["database"]["repoBuckets"]["repo2"]
    assert f"repo1-s3-bucket={repo2}" in rearm and "\nrepo2-" not in rearm


def test_a_configured_rearm_region_gives_the_promoted_primary_a_second_repository():
    ev = evaluate_stack(
        "prod", overrides={"dbBackend": "self-managed", "rearmRegion": "eu-central-1"}
    )
    names = ev.outputs["database"]["repoBuckets"]
    conf = ev.outputs["databaseArtefacts"]["rearm/pgbackrest/pgbackrest.conf"]
    assert f"repo1-s3-bucket={names['repo2']}" in conf
    assert f"repo2-s3-bucket={names['rearm']}" in conf and "repo2-s3-region=eu-central-1" in conf
    assert "repo2-s3-kms-key-id=arn:aws:kms:eu-central-1:" in conf
    policy = json.loads(ev.named("database-host-s3-kms").inputs["policy"])
    assert f"arn:aws:s3:::{names['rearm']}" in policy["Statement"][0]["Resource"]
    # Without the key there is no third repository at all.
    assert "rearm" not in _prod().outputs["database"]["repoBuckets"]


@pytest.mark.parametrize("value, needle", [(DR, "other than"), ("mars-north-1", "AWS region")])
def test_a_bad_rearm_region_stops_the_program_before_any_resource(value, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        evaluate_stack("prod", overrides={"dbBackend": "self-managed", "rearmRegion": value})
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "platform-dr:rearmRegion" in err and needle in err
