"""Real PostgreSQL 15 + real pgBackRest, wired exactly as a database host is: the config comes from
components/pgbackrest_config.py, the archive_command from its ``postgres_settings``.

Nothing here skips: a machine without the binaries fails these tests loudly (CI installs them
through `make sysdeps`)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.objectives import parse_objectives
from components.pgbackrest_config import PgBackRestSettings, posix_settings, postgres_settings
from scripts.dataops.pgbackrest import PgBackRest, require_binaries, write_config
from scripts.local.evaluate import read_stack_config
from scripts.local.postgres import LocalCluster, chown_to_postgres, make_postgres_dir

# Short enough that an idle test cluster still ships WAL quickly; tests switch WAL explicitly.
TEST_ARCHIVE_TIMEOUT = "5s"


@dataclass
class BackrestEnv:
    """One primary archiving to two posix repos standing for the two regions."""

    cluster: LocalCluster
    settings: PgBackRestSettings
    backrest: PgBackRest
    root: Path
    repo1: Path
    repo2: Path

    def switch_and_wait_archived(self, timeout: float = 30) -> str:
        """Close the current WAL segment and wait until archive-push has stored it."""
        # A WAL record first, so the switch really closes a segment even on an idle cluster.
        self.cluster.execute("select pg_logical_emit_message(false, 'test', 'switch')")
        segment = self.cluster.scalar("select pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.cluster.query(
                "select last_archived_wal, last_failed_wal, last_failed_time from pg_stat_archiver"
            )[0]
            # last_archived_wal may be a backup history file: 0000...03.00000028.backup
            if row[0] and row[0][:24] >= segment:
                return segment
            time.sleep(0.05)
        raise AssertionError(f"WAL segment {segment} not archived in {timeout}s: {row}")

    def wal_files(self, repo: Path, segment: str) -> list[Path]:
        """The archived copies of one segment in one repo (name-<sha1>.<ext>)."""
        return sorted((repo / "archive" / self.settings.stanza).glob(f"*/*/{segment}-*"))


@pytest.fixture(scope="session")
def objectives():
    return parse_objectives(read_stack_config("prod"), "prod")


@pytest.fixture
def backrest_env(objectives):
    require_binaries()
    # Not pytest's tmp_path: it lives under a root-only 0700 dir the postgres user cannot enter.
    root = make_postgres_dir(tempfile.mkdtemp(prefix="drctl-it-"), 0o755)
    repo1 = make_postgres_dir(root / "region-primary")
    repo2 = make_postgres_dir(root / "region-dr")
    for sub in ("spool", "lock", "log"):
        make_postgres_dir(root / sub)
    with LocalCluster("primary", base_dir=root, settings={"fsync": False}) as cluster:
        settings = posix_settings(
            objectives,
            repo1_path=str(repo1),
            repo2_path=str(repo2),
            pg_path=str(cluster.data_dir),
            pg_port=cluster.port,
            pg_socket_path=str(cluster.socket_dir),
            spool_path=str(root / "spool"),
            lock_path=str(root / "lock"),
            log_path=str(root / "log"),
            process_max=2,
        )
        settings = write_config(
            settings,
            make_postgres_dir(root / "etc"),
            cipher_passes={1: secrets.token_urlsafe(24), 2: secrets.token_urlsafe(24)},
        )
        pg = postgres_settings(objectives, settings)
        pg["archive_timeout"] = TEST_ARCHIVE_TIMEOUT
        cluster.configure(**pg)
        # archive_mode needs a restart, not a reload.
        cluster.stop()
        cluster.start()
        backrest = PgBackRest.from_settings(settings)
        backrest.stanza_create()
        try:
            yield BackrestEnv(cluster, settings, backrest, root, repo1, repo2)
        finally:
            cluster.cleanup()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def new_dir():
    """A parent the postgres user can enter, and a not-yet-existing data dir inside it."""
    parent = Path(tempfile.mkdtemp(prefix="drctl-restore-"))
    parent.chmod(0o755)
    chown_to_postgres(parent)
    yield parent / "restored"
    shutil.rmtree(parent, ignore_errors=True)
