"""pgBackRest with the S3 repository settings the component renders (repo1 = primary-region bucket,
repo2 = DR-region bucket, SSE-KMS with each region's key, client-side cipher), against moto's S3
server behind stunnel for TLS.

Only what a laptop cannot have is overridden, and by name: the connection goes to stunnel on
127.0.0.1 (``storage-host``/``storage-port``) instead of the regional endpoint, TLS is not verified
(self-signed), path-style URIs (moto), and static keys instead of an instance profile. The bucket,
region, endpoint (sent as the Host header), path, KMS key ids, cipher and retention are the
rendered production values.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.server import ThreadedMotoServer

from components.pgbackrest_config import postgres_settings, render_pgbackrest_conf, s3_settings
from scripts.dataops import backup as backup_cli
from scripts.dataops.pgbackrest import PgBackRest, require_binaries, write_config
from scripts.local.postgres import LocalCluster, free_port, make_postgres_dir

pytestmark = pytest.mark.integration

KEYS = ("testing", "testing")  # moto accepts any static key pair


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_s3():
    """(moto endpoint URL for boto3, TLS port for pgBackRest); both torn down afterwards."""
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if not stunnel:
        pytest.fail("stunnel4 is not installed: run `make sysdeps`")
    moto_port, tls_port = free_port(), free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="drctl-stunnel-"))
    cert, key = _self_signed(work)
    conf = work / "stunnel.conf"
    conf.write_text(
        "foreground = yes\npid =\n"
        f"[s3]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{moto_port}\n"
        f"cert = {cert}\nkey = {key}\n"
    )
    # stunnel logs every connection; into a file, since an undrained pipe fills at 64 KiB and then
    # blocks stunnel, and with it every S3 request (pgBackRest times out on archive-get/push).
    log = work / "stunnel.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([stunnel, str(conf)], stderr=sink, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"stunnel did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{moto_port}", tls_port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_rendered_s3_repos_back_up_and_restore_through_tls(tls_s3, objectives):
    require_binaries()
    endpoint_url, tls_port = tls_s3
    regions = (objectives.regions.primary, objectives.regions.dr)

    def aws(service: str, region: str):
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=KEYS[0],
            aws_secret_access_key=KEYS[1],
        )

    buckets, kms = {}, {}
    for region in regions:
        s3 = aws("s3", region)
        kms_client = aws("kms", region)
        buckets[region] = f"pg-backup-{region}"
        create = {"Bucket": buckets[region]}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create)
        kms[region] = kms_client.create_key(Description=f"pgbackrest {region}")["KeyMetadata"][
            "Arn"
        ]

    root = make_postgres_dir(tempfile.mkdtemp(prefix="drctl-s3-"), 0o755)
    for sub in ("spool", "lock", "log"):
        make_postgres_dir(root / sub)
    try:
        with LocalCluster("s3-primary", base_dir=root, settings={"fsync": False}) as cluster:
            settings = s3_settings(
                objectives,
                bucket_names=buckets,
                kms_key_ids=kms,
                pg_path=str(cluster.data_dir),
                pg_port=cluster.port,
                pg_socket_path=str(cluster.socket_dir),
                spool_path=str(root / "spool"),
                lock_path=str(root / "lock"),
                log_path=str(root / "log"),
                process_max=2,
                repo_storage_host="127.0.0.1",
                repo_storage_port=tls_port,
                repo_uri_style="path",
                repo_verify_tls=False,
                repo_key_type="shared",
            )
            settings = write_config(
                settings,
                make_postgres_dir(root / "etc"),
                cipher_passes={1: secrets.token_urlsafe(24), 2: secrets.token_urlsafe(24)},
                s3_keys={1: KEYS, 2: KEYS},
            )
            rendered = Path(settings.config_path).read_text()
            assert rendered == render_pgbackrest_conf(settings)
            assert "s3-endpoint=s3.us-east-1.amazonaws.com" in rendered
            assert "cipher-pass" not in rendered and "key-secret" not in rendered

            pg = postgres_settings(objectives, settings)
            pg["archive_timeout"] = "5s"
            cluster.configure(**pg)
            cluster.stop()
            cluster.start()

            backrest = PgBackRest.from_settings(settings)
            backrest.stanza_create()
            backrest.check()
            records, ok = backup_cli.run_backup(backrest, "full")
            assert ok, records
            assert [(r["repo"], r["type"]) for r in records] == [(1, "full"), (2, "full")]

            time.sleep(1.0)  # T must fall after the base backup's (whole-second) stop stamp
            cluster.execute("create table plays (id int)")
            cluster.execute("insert into plays select generate_series(1, 40)")
            cluster.execute("select pg_switch_wal()")
            time.sleep(0.05)
            target = cluster.scalar("select clock_timestamp()")
            time.sleep(0.05)
            cluster.execute("insert into plays select generate_series(41, 90)")
            segment = cluster.scalar("select pg_walfile_name(pg_switch_wal())")
            cluster.wait_for(
                f"select left(last_archived_wal, 24) >= '{segment}' from pg_stat_archiver"
            )

            restored_dir = root / "restored"
            record = backup_cli.run_restore(
                backrest, target, restored_dir, 2, execute=True, yes=True
            )
            assert record["recovery"]["reached_target"]
            restored = cluster.adopt(restored_dir, "s3-restored").start()
            assert restored.scalar("select count(*) from plays") == 40

        # Every object in both buckets went in under that region's KMS key.
        for region in regions:
            s3 = aws("s3", region)
            listed = s3.list_objects_v2(Bucket=buckets[region], Prefix="pgbackrest/")
            keys = [o["Key"] for o in listed.get("Contents", [])]
            assert any(k.startswith("pgbackrest/backup/main/") for k in keys), keys
            assert any(k.startswith("pgbackrest/archive/main/") for k in keys), keys
            for key in keys[:20]:
                head = s3.head_object(Bucket=buckets[region], Key=key)
                assert head.get("ServerSideEncryption") == "aws:kms", key
                assert head.get("SSEKMSKeyId") == kms[region], key
    finally:
        shutil.rmtree(root, ignore_errors=True)
