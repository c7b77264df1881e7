"""`drctl config export | import | diff` on moto (mock_aws), in two regions.

The world each test starts from is what SecretsBackup declares for the prod stack, created with
boto3 in moto: a multi-Region KMS key in us-east-1 with its replica in us-west-2, the stack's SSM
parameters (String env config, a SecureString, feature flags) in us-east-1 only, as if the DR
copies were lost or never written, Secrets Manager secrets replicated to us-west-2, and the
tagged, versioned, SSE-KMS config snapshot bucket. The CLI runs through the real typer app with
the module's session factory replaced by one that records which regions it was asked for.

One moto limitation shapes the fixture: moto 5.2.5 writes the key id into a fixed 36-byte
ciphertext header, and multi-Region key ids ("mrk-" + a 36-character UUID) are 40 characters, so
moto cannot decrypt anything encrypted under a multi-Region key. The SecureString therefore sits
under a single-Region key per region here (``--kms-key`` names the DR one on import), and the
multi-Region key path of import is tested on ``apply_import`` alone, which does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import json

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from components.objectives import class_tags
from components.secrets_backup import parameter_name, parse_settings, secret_name
from scripts.cli import app
from scripts.common import ExitCode
from scripts.dataops import config_snapshot, config_sync

PRIMARY, DR = "us-east-1", "us-west-2"
NAMESPACE = "platform-dr/prod"
PREFIX = "/platform-dr/prod"
DB_URL = "postgres://app:S3CR3T-DBPASS-5d1c@db.internal:5432/app"
API_KEY = "sk_live_API-KEY-VALUE-9f2e41"
INTEGRATION = '{"cdn_token": "CDN-TOKEN-VALUE-07aa"}'
SECRET_VALUES = (DB_URL, API_KEY, INTEGRATION)


class World:
    def __init__(self):
        self.regions_asked: list[str] = []
        self.c = {r: boto3.session.Session(region_name=r) for r in (PRIMARY, DR)}

    def sessions(self, region: str):
        self.regions_asked.append(region)
        return self.c[region]

    def client(self, service: str, region: str):
        return self.c[region].client(service)


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", PRIMARY)
    with mock_aws():
        w = World()
        kms = w.client("kms", PRIMARY)
        key = kms.create_key(MultiRegion=True, Description="app secrets")["KeyMetadata"]
        w.key_arn = {PRIMARY: key["Arn"]}
        w.key_arn[DR] = kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion=DR)[
            "ReplicaKeyMetadata"
        ]["Arn"]
        w.ssm_key = {
            r: w.client("kms", r).create_key(Description="secure params")["KeyMetadata"]["Arn"]
            for r in (PRIMARY, DR)
        }

        settings = parse_settings({})  # the stack's declared defaults
        ssm = w.client("ssm", PRIMARY)
        w.names = []
        for key_path, secure in settings.parameter_keys().items():
            name = parameter_name(NAMESPACE, key_path)
            w.names.append(name)
            if secure:
                value, extra = DB_URL, {"KeyId": w.ssm_key[PRIMARY]}
            else:
                short = key_path.split("/", 1)[1]
                value, extra = settings.env.get(short) or settings.feature_flags[short], {}
            ssm.put_parameter(
                Name=name, Value=value, Type="SecureString" if secure else "String", **extra
            )

        sm = w.client("secretsmanager", PRIMARY)
        w.secrets = [secret_name(NAMESPACE, k) for k in settings.secret_keys()]
        for name in w.secrets:
            sm.create_secret(
                Name=name,
                SecretString=INTEGRATION if "/integrations/" in name else API_KEY,
                KmsKeyId=w.key_arn[PRIMARY],
                AddReplicaRegions=[{"Region": DR, "KmsKeyId": w.key_arn[DR]}],
            )

        s3 = w.client("s3", PRIMARY)
        bucket_key = kms.create_key(Description="snapshots")["KeyMetadata"]["Arn"]
        w.bucket, w.bucket_key = "config-snapshots-abc123", bucket_key
        s3.create_bucket(Bucket=w.bucket)
        s3.put_bucket_versioning(Bucket=w.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=w.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": bucket_key,
                        }
                    }
                ]
            },
        )
        tags = class_tags("operational", "config-snapshots")
        s3.put_bucket_tagging(
            Bucket=w.bucket,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
        )
        # a decoy in the same region that is not ours
        s3.create_bucket(Bucket="someone-elses-bucket")
        monkeypatch.setattr(config_sync, "sessions", w.sessions)
        yield w


runner = CliRunner()


def drctl(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def said(result) -> str:
    """stderr with rich's line wrapping (80 columns without a terminal) undone."""
    return " ".join(result.stderr.split())


def params_in(w: World, region: str) -> dict[str, dict]:
    ssm = w.client("ssm", region)
    found = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=PREFIX, Recursive=True, WithDecryption=True
    ):
        for p in page["Parameters"]:
            found[p["Name"]] = {"type": p["Type"], "value": p["Value"], "version": p["Version"]}
    return found


def export(w: World) -> dict:
    result = drctl("config", "export", "--stack", "prod", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_export_writes_a_versioned_sse_kms_snapshot(world):
    first = export(world)
    second = export(world)
    assert first["bucket"] == world.bucket  # found by its tags; the decoy is ignored
    assert first["key"].startswith(f"config-snapshots/{NAMESPACE}/{PRIMARY}/")
    assert (first["parameters"], first["secure_parameters"]) == (len(world.names), 1)
    assert (first["feature_flags"], first["secrets"]) == (4, len(world.secrets))
    assert first["version_id"] and second["version_id"] != first["version_id"]

    s3 = world.client("s3", PRIMARY)
    head = s3.head_object(Bucket=world.bucket, Key=first["key"], VersionId=first["version_id"])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == world.bucket_key

    doc = json.loads(s3.get_object(Bucket=world.bucket, Key=first["key"])["Body"].read())
    assert (doc["format"], doc["format_version"], doc["region"]) == (
        "platform-dr/config-snapshot",
        1,
        PRIMARY,
    )
    assert doc["feature_flags"] == {
        "music-generation": "true",
        "social-feed": "true",
        "creator-payouts": "true",
        "maintenance-mode": "false",
    }
    secret = next(s for s in doc["secrets"] if s["name"].endswith("/api-keys/payments"))
    assert secret["replication"] == [
        {"region": DR, "status": "InSync", "kms_key_id": secret["replication"][0]["kms_key_id"]}
    ]
    assert secret["current_version_id"] and secret["last_changed"]
    assert "value" not in secret and "secret_string" not in json.dumps(secret).lower()
    # The SecureString is stored as KMS ciphertext that decrypts, with the name as context,
    # to the real value: encrypted, not dropped.
    record = next(p for p in doc["parameters"] if p["type"] == "SecureString")
    assert "value" not in record and record["key_id"] == world.ssm_key[PRIMARY]
    plain = world.client("kms", PRIMARY).decrypt(
        CiphertextBlob=base64.b64decode(record["ciphertext"]),
        EncryptionContext={"platform-dr:parameter": record["name"]},
    )["Plaintext"]
    assert plain.decode() == DB_URL
    assert set(world.regions_asked) == {PRIMARY}  # the injected factory did the AWS calls


def test_round_trip_export_import_into_dr_then_diff_is_clean(world):
    snap = export(world)["snapshot"]
    assert drctl("config", "diff", "--stack", "prod").exit_code == ExitCode.OBJECTIVE_NOT_MET

    result = drctl(
        "config",
        "import",
        snap,
        "--region",
        DR,
        "--execute",
        "--yes",
        "--kms-key",
        world.ssm_key[DR],
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["executed"] is True
    assert plan["summary"] == {"create": len(world.names), "update": 0, "unchanged": 0}
    assert all(c["present_in_target"] and c["current_version_matches"] for c in plan["secrets"])

    primary, dr = params_in(world, PRIMARY), params_in(world, DR)
    assert primary == dr  # names, types, values and versions
    described = world.client("ssm", DR).describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [f"{PREFIX}/env/DATABASE_URL"]}]
    )["Parameters"][0]
    assert described["KeyId"] == world.ssm_key[DR]

    diff = drctl("config", "diff", "--stack", "prod", "--json")
    assert diff.exit_code == 0, diff.stderr
    report = json.loads(diff.stdout)
    assert report["in_sync"] and report["drift"] == []
    assert {r["status"] for r in report["parameters"]} == {"same"}
    assert len(report["parameters"]) == len(world.names)
    assert {r["status"] for r in report["secrets"]} == {"same"}

    again = drctl(
        "config",
        "import",
        snap,
        "--region",
        DR,
        "--execute",
        "--yes",
        "--kms-key",
        world.ssm_key[DR],
        "--json",
    )
    assert json.loads(again.stdout)["summary"]["unchanged"] == len(world.names)
    assert params_in(world, DR) == dr  # idempotent: nothing rewritten


def test_diff_detects_drift_in_value_type_and_presence(world):
    snap = export(world)["snapshot"]
    drctl(
        "config",
        "import",
        snap,
        "--region",
        DR,
        "--execute",
        "--yes",
        "--kms-key",
        world.ssm_key[DR],
    )
    ssm = world.client("ssm", DR)
    ssm.put_parameter(
        Name=f"{PREFIX}/flags/maintenance-mode", Value="true", Type="String", Overwrite=True
    )
    ssm.put_parameter(
        Name=f"{PREFIX}/env/DATABASE_URL",
        Value=DB_URL + "-changed",
        Type="SecureString",
        KeyId=world.ssm_key[DR],
        Overwrite=True,
    )
    ssm.delete_parameter(Name=f"{PREFIX}/env/LOG_LEVEL")
    world.client("ssm", PRIMARY).put_parameter(
        Name=f"{PREFIX}/env/MAX_UPLOAD_MB", Value="200", Type="String", Overwrite=True
    )  # same value, new version in the primary only

    result = drctl("config", "diff", "--stack", "prod", "--json")
    assert result.exit_code == ExitCode.OBJECTIVE_NOT_MET
    rows = {r["name"]: r for r in json.loads(result.stdout)["parameters"]}
    assert rows[f"{PREFIX}/flags/maintenance-mode"]["status"] == "differs"
    assert rows[f"{PREFIX}/env/DATABASE_URL"]["status"] == "differs"
    assert rows[f"{PREFIX}/env/LOG_LEVEL"]["status"] == f"missing-in-{DR}"
    skew = rows[f"{PREFIX}/env/MAX_UPLOAD_MB"]
    assert skew["status"] == "version-skew"
    assert skew["version"] == {PRIMARY: 2, DR: 1}
    assert (
        skew["hash"][PRIMARY]
        == skew["hash"][DR]
        == ("sha256:" + hashlib.sha256(b"200").hexdigest())
    )
    assert rows[f"{PREFIX}/flags/social-feed"]["status"] == "same"
    assert "drift in 3 item(s)" in said(result)


def test_dry_run_changes_nothing_and_execute_needs_yes_without_a_tty(world):
    snap = export(world)["snapshot"]
    world.client("ssm", DR).put_parameter(
        Name=f"{PREFIX}/flags/social-feed", Value="false", Type="String"
    )
    before = params_in(world, DR)

    dry = drctl("config", "import", snap, "--region", DR, "--json")
    assert dry.exit_code == 0, dry.stderr
    plan = json.loads(dry.stdout)
    actions = {p["name"]: p["action"] for p in plan["parameters"]}
    assert actions[f"{PREFIX}/flags/social-feed"] == "update"
    assert list(actions.values()).count("create") == len(world.names) - 1
    assert plan["executed"] is False and "dry run" in dry.stderr
    assert params_in(world, DR) == before

    refused = drctl("config", "import", snap, "--region", DR, "--execute")
    assert refused.exit_code == ExitCode.REFUSED
    assert "--yes" in said(refused)
    assert params_in(world, DR) == before


def test_no_secret_value_is_ever_printed_or_stored_in_plain(world):
    captured: list[str] = []

    def run(*args):
        result = drctl(*args)
        captured.extend([result.stdout, result.stderr])
        return result

    exported = json.loads(run("config", "export", "--stack", "prod", "--json").stdout)
    run("config", "export", "--stack", "prod")
    snap = exported["snapshot"]
    run("config", "import", snap, "--region", DR)
    run("config", "import", snap, "--region", DR, "--json")
    run(
        "config",
        "import",
        snap,
        "--region",
        DR,
        "--execute",
        "--yes",
        "--kms-key",
        world.ssm_key[DR],
    )
    world.client("ssm", DR).put_parameter(
        Name=f"{PREFIX}/env/DATABASE_URL",
        Value=API_KEY,  # drift to another secret, so the diff has something to show
        Type="SecureString",
        KeyId=world.ssm_key[DR],
        Overwrite=True,
    )
    run("config", "diff", "--stack", "prod")
    run("config", "diff", "--stack", "prod", "--json")

    body = world.client("s3", PRIMARY).get_object(Bucket=world.bucket, Key=exported["key"])
    stored = body["Body"].read().decode()
    everything = "\n".join([*captured, stored])
    assert "DATABASE_URL" in everything and f"{PREFIX}/env/DATABASE_URL" in stored  # not vacuous
    # rich wraps long lines and table cells, so compare with all whitespace removed as well
    squeezed = "".join(everything.split())
    for value in SECRET_VALUES:
        for form in (value, json.dumps(value), base64.b64encode(value.encode()).decode()):
            assert form not in everything
            assert "".join(form.split()) not in squeezed
        # nor a plain hash that a dictionary of candidate secrets could be matched against
        assert hashlib.sha256(value.encode()).hexdigest() not in everything


def test_bad_arguments_are_one_line_errors_and_nothing_is_written(world):
    snap = export(world)["snapshot"]
    before = params_in(world, DR)
    bad_region = drctl(
        "config",
        "import",
        snap,
        "--region",
        "us-east-9",
        "--execute",
        "--yes",
        "--kms-key",
        world.ssm_key[DR],
    )
    assert bad_region.exit_code == ExitCode.INVALID_CONFIG
    assert "--region 'us-east-9' is not valid" in said(bad_region)
    assert "us-west-2" in said(bad_region)  # says what is allowed
    bad_ref = drctl("config", "import", "nowhere.json", "--region", DR)
    assert bad_ref.exit_code == ExitCode.INVALID_CONFIG
    assert "SNAPSHOT 'nowhere.json' is not valid" in said(bad_ref)
    no_stack = drctl("config", "diff", "--stack", "staging")
    assert no_stack.exit_code == ExitCode.INVALID_CONFIG
    assert "no stack 'staging'" in said(no_stack)
    assert params_in(world, DR) == before


def test_export_refuses_a_bucket_without_a_customer_key(world):
    s3 = world.client("s3", PRIMARY)
    s3.create_bucket(Bucket="plain-bucket")
    s3.put_bucket_encryption(
        Bucket="plain-bucket",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    result = drctl("config", "export", "--stack", "prod", "--bucket", "plain-bucket")
    assert result.exit_code == ExitCode.PRECONDITION_FAILED
    assert "no default SSE-KMS customer key" in said(result)
    assert s3.list_objects_v2(Bucket="plain-bucket").get("KeyCount") == 0


def test_import_under_a_multi_region_key_writes_with_the_target_regions_replica(world):
    """apply_import alone (no decrypt, see the module docstring): with no --kms-key and no
    existing parameter, a SecureString created in the DR region goes under the replica of the
    snapshot's multi-Region key, which shares the key id."""
    name = f"{PREFIX}/env/NEW_SECRET"
    snapshot = {
        "prefix": PREFIX,
        "parameters": [
            {
                "name": name,
                "type": "SecureString",
                "key_id": world.key_arn[PRIMARY],
                "version": 3,
                "data_type": "text",
            }
        ],
    }
    steps = [
        config_snapshot.ParameterStep(name, "SecureString", "create", "missing in target", 3, None)
    ]
    desired = {name: DB_URL}
    config_sync.apply_import(world.sessions, snapshot, DR, steps, desired)
    ssm = world.client("ssm", DR)
    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])[
        "Parameters"
    ][0]
    assert described["KeyId"] == world.key_arn[DR]
    assert world.key_arn[DR].split("/")[-1] == world.key_arn[PRIMARY].split("/")[-1]
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == DB_URL
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    assert {t["Key"]: t["Value"] for t in tags}["backup-class"] == "operational"
    assert steps[0].done and desired[name] == ""  # the plaintext is dropped once written


def test_decrypting_in_another_region_needs_a_multi_region_key(world):
    snap = export(world)["snapshot"]
    result = drctl("config", "import", snap, "--region", DR, "--decrypt-region", DR)
    assert result.exit_code == ExitCode.PRECONDITION_FAILED
    assert "not a multi-Region key" in said(result)
    assert config_snapshot._mrk_in(world.ssm_key[PRIMARY], DR) is None
    assert config_snapshot._mrk_in(world.key_arn[PRIMARY], DR) == world.key_arn[DR]


def test_export_refuses_a_securestring_under_the_aws_managed_key(world):
    world.client("ssm", PRIMARY).put_parameter(
        Name=f"{PREFIX}/env/LEGACY_TOKEN", Value=API_KEY, Type="SecureString"
    )
    result = drctl("config", "export", "--stack", "prod")
    assert result.exit_code == ExitCode.PRECONDITION_FAILED
    assert f"SecureString {PREFIX}/env/LEGACY_TOKEN is under the AWS-managed key" in said(result)
    listed = world.client("s3", PRIMARY).list_objects_v2(Bucket=world.bucket)
    assert listed.get("KeyCount") == 0  # nothing half-written


def test_missing_credentials_are_a_precondition_with_a_hint(monkeypatch):
    """No moto here: a real boto3 session with every credential source emptied."""
    import boto3
    import botocore.session

    def no_credentials(region: str):
        core = botocore.session.Session()
        core.get_component("credential_provider").providers = []
        return boto3.Session(botocore_session=core, region_name=region)

    monkeypatch.setattr(config_sync, "sessions", no_credentials)
    result = drctl("config", "diff", "--stack", "prod")
    assert result.exit_code == 4
    assert "no AWS credentials" in said(result) and "AWS_PROFILE" in said(result)
