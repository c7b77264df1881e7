"""scripts/local/postgres.py on a real PostgreSQL 15: the helper every real-database test uses."""

from __future__ import annotations

import socket

import pytest

from scripts.local.postgres import LocalCluster, LocalPgError

pytestmark = pytest.mark.integration


def test_primary_standby_slot_kill_promote_and_cleanup():
    with LocalCluster("primary", settings={"wal_level": "replica"}) as pg:
        assert pg.scalar("show listen_addresses") == "127.0.0.1"
        pg.execute("create table t (id int)")
        pg.execute("insert into t select generate_series(1, 10)")
        standby = pg.create_standby("standby", slot="dr_standby")
        assert standby.is_in_recovery()
        assert standby.port != pg.port
        # The named physical slot is in use by the standby's walreceiver.
        standby.wait_for("select count(*) = 10 from t")
        assert pg.scalar("select active from pg_replication_slots where slot_name = 'dr_standby'")

        pg.kill()  # the primary's host is gone: postmaster and backends at once
        assert not pg.is_running()
        standby.promote()
        assert not standby.is_in_recovery()
        standby.execute("insert into t values (11)")
        assert standby.scalar("select count(*) from t") == 11

        # A killed cluster restarts on its old port (crash recovery), and refuses a second initdb.
        port = pg.port
        pg.start()
        assert pg.port == port and pg.scalar("select count(*) from t") == 10
        with pytest.raises(LocalPgError, match="already holds a cluster"):
            pg.init()
        roots, ports = [pg.root, standby.root], [pg.port, standby.port]
    # Leaving the block stopped both servers and removed their files.
    assert not any(r.exists() for r in roots)
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
