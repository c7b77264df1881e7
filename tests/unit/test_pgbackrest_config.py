"""The pure pgBackRest/PostgreSQL derivations. The rendered text itself is exercised against real
pgBackRest and PostgreSQL 15 in tests/integration/test_pgbackrest.py."""

from __future__ import annotations

import configparser
import dataclasses

import pytest

from components import pgbackrest_config as pc
from components import pgbackrest_schedule as ps
from components.objectives import DAY, HOUR, ConfigError, DatabaseSchedule, parse_objectives

BUCKETS = {"us-east-1": "pg-backup-use1", "us-west-2": "pg-backup-usw2"}
KEYS = {
    "us-east-1": "arn:aws:kms:us-east-1:1:key/mrk-1",
    "us-west-2": "arn:aws:kms:us-west-2:1:key/mrk-1",
}


def objectives(**raw):
    base = {"primaryRegion": "us-east-1", "drRegion": "us-west-2", "thirdRegion": "eu-west-1"}
    return parse_objectives({**base, **raw}, "prod")


def parse_conf(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # pgBackRest keys are case-sensitive
    parser.read_string(text)
    return parser


@pytest.fixture
def s3():
    return pc.s3_settings(objectives(), bucket_names=BUCKETS, kms_key_ids=KEYS)


# -- archive timing / RPO -----------------------------------------------------------------------


def test_default_critical_rpo_gives_300s_archive_timeout_and_6_minute_worst_case():
    timing = pc.archive_timing(objectives())
    assert (timing.archive_timeout_s, timing.push_timeout_s) == (300, 60)
    assert pc.worst_case_rpo_s(objectives()) == 360
    assert pc.postgres_settings(objectives())["archive_timeout"] == "300s"


@pytest.mark.parametrize("rpo", ["60s", "90s", "5m", "15m", "1h", "6h", "24h"])
def test_worst_case_rpo_stays_within_half_the_objective(rpo):
    obj = objectives(criticalRpo=rpo)
    assert pc.worst_case_rpo_s(obj) <= obj.of("critical").rpo_s / 2


def test_archive_timeout_follows_the_rpo_and_is_capped_at_an_hour():
    assert pc.archive_timing(objectives(criticalRpo="3m")).archive_timeout_s == 60
    assert pc.archive_timing(objectives(criticalRpo="24h")).archive_timeout_s == HOUR


def test_rpo_below_what_archiving_can_promise_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as err:
        pc.archive_timing(objectives(criticalRpo="30s"))
    assert err.value.key == "criticalRpo"
    assert "at least 60s" in str(err.value)


def test_postgres_settings_archive_through_pgbackrest_with_the_stanza_and_pinned_config(s3):
    settings = pc.postgres_settings(objectives(), s3)
    assert settings["wal_level"] == "replica"
    assert settings["archive_mode"] == "on"
    cmd = settings["archive_command"]
    assert cmd.endswith(" archive-push %p")
    assert "--stanza=main" in cmd
    assert f"--config={pc.CONFIG_PATH}" in cmd
    assert f"--config-include-path={pc.CONFIG_INCLUDE_PATH}" in cmd


# -- retention ------------------------------------------------------------------------------------


def test_retention_covers_pitr_window_plus_monthly_archive():
    # ceil((7 + 30) / 7) + 1 = 7 fulls; ceil(7 / 1) + 1 = 8 diffs.
    assert pc.retention_full(objectives()) == 7
    assert pc.retention_diff(objectives()) == 8


@pytest.mark.parametrize("window", [1, 7, 14, 35])
def test_oldest_full_kept_is_always_older_than_window_plus_archive(window):
    obj = objectives(pitrWindowDays=window, operationalRetention="35d")
    n, full = pc.retention_full(obj), obj.schedule.full_s
    need = window * DAY + obj.schedule.archive_s
    # Worst moment: a full has just completed (age 0), so the oldest kept is (n-1) fulls back.
    assert (n - 1) * full >= need
    # And not one more than needed.
    assert (n - 2) * full < need


def test_retention_reaches_both_repos_and_wal_follows_fulls(s3):
    conf = parse_conf(pc.render_pgbackrest_conf(s3))["global"]
    for i in (1, 2):
        assert conf[f"repo{i}-retention-full"] == "7"
        assert conf[f"repo{i}-retention-full-type"] == "count"
        assert conf[f"repo{i}-retention-archive"] == "7"
        assert conf[f"repo{i}-retention-diff"] == "8"


# -- repositories ---------------------------------------------------------------------------------


def test_repo1_is_primary_region_and_repo2_is_dr_region_with_their_own_kms_keys(s3):
    conf = parse_conf(pc.render_pgbackrest_conf(s3))["global"]
    assert conf["repo1-s3-bucket"] == "pg-backup-use1"
    assert conf["repo1-s3-region"] == "us-east-1"
    assert conf["repo1-s3-endpoint"] == "s3.us-east-1.amazonaws.com"
    assert conf["repo1-s3-kms-key-id"] == KEYS["us-east-1"]
    assert conf["repo2-s3-bucket"] == "pg-backup-usw2"
    assert conf["repo2-s3-region"] == "us-west-2"
    assert conf["repo2-s3-kms-key-id"] == KEYS["us-west-2"]
    for i in (1, 2):
        assert conf[f"repo{i}-type"] == "s3"
        assert conf[f"repo{i}-cipher-type"] == "aes-256-cbc"
        assert conf[f"repo{i}-storage-verify-tls"] == "y"
        assert conf[f"repo{i}-s3-key-type"] == "auto"
    assert conf["archive-async"] == "y"
    assert conf["compress-type"] in ("zst", "lz4")


def test_stanza_section_points_at_the_data_dir_and_socket(s3):
    conf = parse_conf(pc.render_pgbackrest_conf(s3))
    assert conf["main"]["pg1-path"] == "/var/lib/postgresql/15/main"
    assert conf["main"]["pg1-socket-path"] == "/var/run/postgresql"


def test_rendered_conf_holds_no_secret_and_secret_fragment_holds_them(s3):
    conf = pc.render_pgbackrest_conf(s3)
    assert "cipher-pass" not in conf and "key-secret" not in conf
    shared = dataclasses.replace(
        s3, repos=tuple(dataclasses.replace(r, key_type="shared") for r in s3.repos)
    )
    secret = parse_conf(
        pc.render_secret_conf(shared, {1: "p1", 2: "p2"}, {1: ("AK1", "SK1"), 2: ("AK2", "SK2")})
    )["global"]
    assert secret["repo1-cipher-pass"] == "p1" and secret["repo2-s3-key-secret"] == "SK2"


def test_secret_fragment_refuses_a_missing_passphrase(s3):
    with pytest.raises(ConfigError, match="repo2-cipher-pass"):
        pc.render_secret_conf(s3, {1: "p1"})


def test_missing_bucket_in_dr_region_is_a_config_error_naming_repo2():
    with pytest.raises(ConfigError) as err:
        pc.s3_settings(objectives(), bucket_names={"us-east-1": "b"}, kms_key_ids=KEYS)
    assert err.value.key == "repo2" and "us-west-2" in str(err.value)


def test_missing_kms_key_is_refused_so_sse_kms_is_never_silently_off():
    with pytest.raises(ConfigError, match="KMS key"):
        pc.s3_settings(objectives(), bucket_names=BUCKETS, kms_key_ids={"us-east-1": "k"})


def test_bad_compress_type_is_refused():
    with pytest.raises(ConfigError, match="zst or lz4"):
        pc.s3_settings(objectives(), bucket_names=BUCKETS, kms_key_ids=KEYS, compress_type="gz")


def test_s3_overrides_for_an_s3_compatible_endpoint_reach_both_repos():
    s = pc.s3_settings(
        objectives(),
        bucket_names=BUCKETS,
        kms_key_ids=KEYS,
        repo_uri_style="path",
        repo_endpoint="s3.local",
        repo_storage_port=4433,
        repo_verify_tls=False,
    )
    conf = parse_conf(pc.render_pgbackrest_conf(s))["global"]
    for i in (1, 2):
        assert conf[f"repo{i}-s3-uri-style"] == "path"
        assert conf[f"repo{i}-storage-port"] == "4433"
        assert conf[f"repo{i}-storage-verify-tls"] == "n"


def test_posix_variant_keeps_the_production_derivation():
    s = pc.posix_settings(objectives(), repo1_path="/r1", repo2_path="/r2", pg_path="/d")
    conf = parse_conf(pc.render_pgbackrest_conf(s))["global"]
    assert (conf["repo1-type"], conf["repo1-path"]) == ("posix", "/r1")
    assert (conf["repo2-type"], conf["repo2-path"]) == ("posix", "/r2")
    assert conf["repo1-retention-full"] == "7"
    assert conf["repo1-cipher-type"] == "aes-256-cbc"
    assert "repo1-s3-bucket" not in conf


# -- schedule -------------------------------------------------------------------------------------


def test_schedule_is_full_weekly_diff_daily_incr_hourly():
    jobs = {j.type: j for j in ps.backup_jobs(objectives())}
    assert jobs["full"].cron == "0 1 * * 0"
    assert jobs["diff"].cron == "0 1 * * 1-6"
    assert jobs["incr"].cron == "30 * * * *"
    assert jobs["full"].on_calendar == "Sun *-*-* 01:00:00"
    assert jobs["diff"].on_calendar == "Mon..Sat *-*-* 01:00:00"
    assert jobs["incr"].on_calendar == "*-*-* *:30:00"


def test_incr_every_two_hours_when_the_schedule_says_so():
    obj = dataclasses.replace(objectives(), schedule=DatabaseSchedule(log_backup_s=2 * HOUR))
    incr = [j for j in ps.backup_jobs(obj) if j.type == "incr"][0]
    assert incr.cron == "30 */2 * * *" and incr.on_calendar == "*-*-* 0/2:30:00"


def test_schedule_that_cannot_be_rendered_is_a_config_error():
    obj = dataclasses.replace(objectives(), schedule=DatabaseSchedule(log_backup_s=7 * HOUR))
    with pytest.raises(ConfigError, match="schedule.log_backup_s"):
        ps.backup_jobs(obj)


def test_systemd_units_back_up_every_repo_and_fail_if_any_failed(s3):
    units = ps.render_systemd_units(objectives(), s3)
    assert set(units) == {
        f"pgbackrest-{t}.{k}" for t in ("full", "diff", "incr") for k in ("service", "timer")
    }
    service = units["pgbackrest-diff.service"]
    assert "User=postgres" in service and "Type=oneshot" in service
    assert "--type=diff --repo=$$r backup" in service
    assert "for r in 1 2" in service and "exit $$rc" in service
    assert "OnCalendar=Mon..Sat *-*-* 01:00:00" in units["pgbackrest-diff.timer"]


def test_cron_lines_run_as_postgres_for_every_type(s3):
    lines = [ln for ln in ps.render_cron(objectives(), s3).splitlines() if ln[:1].isdigit()]
    assert len(lines) == 3
    assert all(" postgres rc=0; for r in 1 2; do " in ln for ln in lines)
    assert all("--repo=$r backup" in ln for ln in lines)


def test_render_all_lists_every_artefact(s3):
    files = ps.render_all(objectives(), s3)
    assert "pgbackrest/pgbackrest.conf" in files and "cron.d/pgbackrest" in files
    assert "archive_timeout = '300s'" in files["postgresql/conf.d/pgbackrest-archiving.conf"]
    assert len([f for f in files if f.startswith("systemd/")]) == 6
