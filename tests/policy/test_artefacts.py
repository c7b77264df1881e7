"""policy/artefacts.py: the host files read the way the host's programs read them.

Every parser is checked on the files the prod stack really renders (the ``databaseArtefacts``
output of the evaluated program) and on hand-made variants: each reading that decides a verdict
has a case where it must come out the other way.
"""

from __future__ import annotations

import pytest

from policy import artefacts as art

CONF = "postgresql/conf.d/pgbackrest-archiving.conf"
PGBR = art.PGBACKREST_CONF


@pytest.fixture(scope="module")
def files(prod):
    return dict(prod.outputs["databaseArtefacts"])


def _edit(files, path, old, new):
    assert old in files[path], (path, old)
    return {**files, path: files[path].replace(old, new)}


# -- postgresql.conf ------------------------------------------------------------------------------


def test_postgresql_conf_reads_quotes_comments_units_and_the_last_setting():
    text = (
        "# a comment\n"
        "archive_timeout = '300s'   # trailing comment\n"
        "archive_command = 'pgbackrest --stanza=main archive-push %p ''quoted'''\n"
        "wal_level replica\n"
        "Archive_Timeout = 5min\n"
    )
    settings = art.parse_postgresql_conf(text)
    assert settings["archive_timeout"] == "5min"  # later line wins, names are case-insensitive
    assert settings["archive_command"].endswith("archive-push %p 'quoted'")
    assert settings["wal_level"] == "replica"
    assert [art.pg_duration_s(v) for v in ("300s", "5min", "300", "1h", "500ms", "0")] == [
        300,
        300,
        300,
        3600,
        0.5,
        0,
    ]
    assert art.pg_duration_s("soon") is None and art.pg_duration_s(None) is None
    with pytest.raises(art.ArtefactError, match="line 1"):
        art.parse_postgresql_conf("archive_timeout = '300s\n")


def test_fragments_merge_in_path_order_like_include_dir(files):
    later = {**files, "postgresql/conf.d/zz-override.conf": "archive_timeout = '3600s'\n"}
    assert art.postgresql_settings(files)["archive_timeout"] == "300s"
    assert art.postgresql_settings(later)["archive_timeout"] == "3600s"


# -- pgbackrest.conf ------------------------------------------------------------------------------


def test_pgbackrest_option_precedence_and_defaults():
    conf = art.parse_ini(
        "[global]\narchive-timeout=60\nrepo1-type=s3\n[global:archive-push]\narchive-timeout=30\n"
        "[main]\npg1-path=/x\n[main:archive-push]\narchive-timeout=10\n"
    )
    assert art.pgbackrest_option(conf, "main", "archive-push", "archive-timeout") == "10"
    assert art.pgbackrest_option(conf, "other", "archive-push", "archive-timeout") == "30"
    assert art.pgbackrest_option(conf, "other", "backup", "archive-timeout") == "60"
    assert art.pgbackrest_option({}, "main", "archive-push", "archive-timeout") == "60"  # default
    assert art.pgbackrest_option({}, "main", "archive-push", "archive-async") == "n"
    with pytest.raises(art.ArtefactError):
        art.parse_ini("archive-timeout=60\n")  # outside a section


def test_archiving_of_the_rendered_files(files):
    found = art.archiving(files)
    assert found.problems == []
    assert (found.archive_timeout_s, found.push_timeout_s) == (300, 60)
    assert found.asynchronous and found.stanza == "main"
    assert [(r.index, r.type, r.region) for r in found.repos] == [
        (1, "s3", "us-east-1"),
        (2, "s3", "us-west-2"),
    ]


@pytest.mark.parametrize(
    ("path", "old", "new", "needle"),
    [
        (CONF, "archive_timeout = '300s'", "archive_timeout = '0'", "never switches segments"),
        (CONF, "archive_mode = 'on'", "archive_mode = 'off'", "archive_mode is 'off'"),
        (CONF, "wal_level = 'replica'", "wal_level = 'minimal'", "wal_level is 'minimal'"),
        (CONF, "archive-push %p", "archive-get %f %p", "does not run pgbackrest archive-push"),
        (CONF, "--stanza=main", "--stanza=other", "stanza 'other'"),
        (PGBR, "archive-timeout=60", "archive-timeout=soon", "archive-timeout is 'soon'"),
        (PGBR, "archive-async=y", "archive-async=y\narchive-push-queue-max=1GiB", "drops WAL"),
    ],
)
def test_each_broken_archiving_setting_is_a_problem(files, path, old, new, needle):
    found = art.archiving(_edit(files, path, old, new))
    assert any(needle in p for p in found.problems), found.problems


def test_the_push_timeout_is_read_from_the_archive_push_section_first(files):
    changed = _edit(
        files, PGBR, "[global:archive-push]", "[global:archive-push]\narchive-timeout=600"
    )
    assert art.archiving(changed).push_timeout_s == 600


def test_missing_files_are_problems(files):
    assert "no postgresql.conf fragment" in art.archiving({PGBR: files[PGBR]}).problems[0]
    assert f"no {PGBR}" in art.archiving({CONF: files[CONF]}).problems[0]


def test_synchronous_standbys():
    def sync(text):
        return art.synchronous_standbys({"postgresql/conf.d/sync.conf": text})

    assert sync("synchronous_standby_names = 'dr_standby'\n").region_safe("dr_standby")
    assert sync("synchronous_standby_names = 'FIRST 2 (dr_standby, local)'\n").region_safe(
        "dr_standby"
    )
    # Another standby can acknowledge instead, or commits do not wait at all.
    assert not sync("synchronous_standby_names = 'ANY 1 (dr_standby, local)'\n").region_safe(
        "dr_standby"
    )
    assert not sync("synchronous_standby_names = '*'\n").region_safe("dr_standby")
    assert not sync(
        "synchronous_standby_names = 'dr_standby'\nsynchronous_commit = local\n"
    ).region_safe("dr_standby")
    assert not sync("").region_safe("dr_standby")


# -- schedules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "gap"),
    [
        ("*-*-* *:30:00", 3600),
        ("*-*-* 0/2:30:00", 7200),
        ("Sun *-*-* 01:00:00", 7 * 86400),
        ("Mon..Sat *-*-* 01:00:00", 2 * 86400),  # Saturday to Monday
        ("Mon,Wed *-*-* 12:00", 5 * 86400),
        ("minutely", 60),
        ("daily", 86400),
        ("monthly", 31 * 86400),
        ("*-*-31 00:00:00", 61 * 86400),  # August 31 to October 31
        ("*-*-* 02:15:00 UTC", 86400),
    ],
)
def test_on_calendar_gaps(spec, gap):
    assert art.max_gap_s([art.parse_on_calendar(spec)]) == gap


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("30 * * * *", 3600),
        ("30 */2 * * *", 7200),
        ("0 1 * * 0", 7 * 86400),
        ("0 1 * * 7", 7 * 86400),  # 7 is Sunday too
        ("0 1 * * 1-6", 2 * 86400),
        ("0 1 * * mon-sat", 2 * 86400),
        ("@daily", 86400),
        ("0 1 1 * *", 31 * 86400),
        ("0 1 13 * 5", 7 * 86400),  # day-of-month OR weekday: every Friday and every 13th
    ],
)
def test_cron_gaps(expression, gap):
    assert art.max_gap_s([art.parse_cron(expression)]) == gap


def test_union_of_schedules_and_the_zone():
    full, diff = (
        art.parse_on_calendar("Sun *-*-* 01:00:00"),
        art.parse_on_calendar("Mon..Sat *-*-* 01:00:00"),
    )
    assert art.max_gap_s([full, diff]) == 86400
    assert art.parse_on_calendar("*-*-* 02:15:00 UTC").zone == "UTC"
    assert art.parse_on_calendar("Sun *-*-* 01:00:00").zone == ""
    assert art.max_gap_s([]) is None


@pytest.mark.parametrize("spec", ["*-*-* 25:00:00", "every hour", "*-*~01 00:00", "*-13-01 0:0"])
def test_unreadable_calendars_are_errors(spec):
    with pytest.raises(art.ArtefactError):
        art.parse_on_calendar(spec)


def test_jobs_of_the_rendered_timers_and_cron(files):
    jobs, problems = art.scheduled_jobs(files)
    assert problems == []
    kinds = sorted((j.source.split("/")[0], j.kind, tuple(sorted(j.repos))) for j in jobs)
    assert kinds == [
        ("cron.d", "backup-diff", (1, 2)),
        ("cron.d", "backup-full", (1, 2)),
        ("cron.d", "backup-incr", (1, 2)),
        ("systemd", "backup-diff", (1, 2)),
        ("systemd", "backup-full", (1, 2)),
        ("systemd", "backup-incr", (1, 2)),
    ]
    for via in ("systemd/", "cron.d/"):
        for repo in (1, 2):
            assert art.backup_gaps(jobs, repo, via) == {"full": 604800, "diff": 86400, "incr": 3600}


def test_a_changed_timer_or_cron_line_changes_the_gaps(files):
    daily_incr = _edit(
        files, "systemd/pgbackrest-incr.timer", "OnCalendar=*-*-* *:30:00", "OnCalendar=daily"
    )
    jobs, _ = art.scheduled_jobs(daily_incr)
    # A daily incr at midnight plus the 01:00 diff or full: 23 h from 01:00 to midnight.
    assert art.backup_gaps(jobs, 2, "systemd/")["incr"] == 23 * 3600
    only_repo1 = _edit(files, "cron.d/pgbackrest", "for r in 1 2;", "for r in 1;")
    jobs, _ = art.scheduled_jobs(only_repo1)
    assert art.backup_gaps(jobs, 2, "cron.d/") == {"full": None, "diff": None, "incr": None}
    assert art.backup_gaps(jobs, 1, "cron.d/")["incr"] == 3600


def test_job_kinds_and_repositories():
    assert art.job_kind("pgbackrest --stanza=main --type=full backup") == (
        "backup-full",
        frozenset({1}),  # pgBackRest's default repository
    )
    assert art.job_kind("pgbackrest --type=diff --repo=2 backup")[1] == frozenset({2})
    assert art.job_kind("pgbackrest backup")[0] == "backup-incr"  # pgBackRest's default type
    assert art.job_kind("pg_dump --format=custom | aws s3 cp - s3://b/x")[0] == "dump"
    assert art.job_kind("aws cloudwatch put-metric-data ...")[0] == "lag-monitor"


def test_a_timer_whose_service_is_missing_is_a_problem(files):
    broken = {k: v for k, v in files.items() if k != "systemd/pgbackrest-incr.service"}
    _, problems = art.scheduled_jobs(broken)
    assert problems == [
        "systemd/pgbackrest-incr.timer: starts systemd/pgbackrest-incr.service, which is not "
        "rendered"
    ]
