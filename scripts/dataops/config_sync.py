"""`drctl config export | import | diff`: back up, restore and compare the app config.

What the SecretsBackup component declares, read back from AWS:

- **export** reads the SSM parameters under the stack's prefix (``/platform-dr/<stack>``), the
  feature flags among them, and the metadata of the stack's Secrets Manager secrets, and writes
  one JSON snapshot into the config snapshot bucket (S3 versioning and object lock keep every
  snapshot; the object is put with SSE-KMS under the bucket's customer key).
- **import** restores a snapshot's parameters into a region; a dry run unless ``--execute``.
- **diff** compares the primary and the DR region by name, version and a hash of the value and
  exits 1 on drift.

Secret handling, decided once here:

- Secrets Manager *values* never leave Secrets Manager: their replication is AWS's job and the
  snapshot records metadata only (ARN, KMS key, version ids, replication status, last change).
- SecureString parameter values are decrypted in memory and at once **re-encrypted with KMS**
  under the parameter's own customer key, with the encryption context
  ``{"platform-dr:parameter": <name>}``, so a ciphertext cannot be replayed onto another
  parameter. The snapshot stores that ciphertext. SSM's own ``WithDecryption=False`` output is
  not used: it is bound to the source parameter's ARN (useless in another region) and moto
  returns the plain value in it. The key is multi-Region, so the DR replica decrypts the
  ciphertext when the source region is gone (``--decrypt-region``). The snapshot object itself is
  then SSE-KMS encrypted as a whole.
- **diff** shows ``sha256:<hex>`` of String values and ``hmac-sha256:<hex>`` of SecureString
  values, keyed with a random key that lives only for the run: equal values compare equal within
  a run, but a low-entropy secret cannot be looked up in a dictionary of precomputed hashes.
- Nothing ever prints a value; the tests capture stdout, stderr and the snapshot to prove it.

AWS access is injected: every function takes ``sessions``, a factory from region name to a boto3
Session, so the tests run the same code on moto.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
from collections.abc import Callable, Iterable
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from components.objectives import ConfigError
from scripts.common import DrctlError, ExitCode, confirm_execute, fail, out, print_json, progress
from scripts.dataops.config_read import (
    ConfigTarget,
    SessionFactory,
    check_region,
    default_sessions,
    error_code,
    read_parameters,
    read_secrets,
    target_of,
)
from scripts.dataops.config_snapshot import (
    apply_import,
    build_snapshot,
    export_snapshot,
    load_snapshot,
    plan_import,
)

# ---------------------------------------------------------------------------------------------
# diff


class _Hasher:
    """sha256 for String values; HMAC-SHA256 under a per-run random key for SecureStrings."""

    def __init__(self):
        self._key = pysecrets.token_bytes(32)

    def __call__(self, ptype: str, value: str) -> str:
        if ptype == "SecureString":
            return "hmac-sha256:" + hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def diff_regions(sessions: SessionFactory, target: ConfigTarget) -> dict[str, Any]:
    """Compare the primary and DR region's parameters and secrets; never carries a value."""
    hasher = _Hasher()
    sides = {}
    for region in (target.primary, target.dr):
        session = sessions(region)
        params = read_parameters(session.client("ssm"), target.prefix)
        for p in params.values():
            p["hash"] = hasher(p["type"], p["value"])
            p["value"] = None
        sides[region] = (params, read_secrets(session.client("secretsmanager"), target.namespace))
    (pp, ps), (dp, ds) = sides[target.primary], sides[target.dr]
    rows = []
    for name in sorted(set(pp) | set(dp)):
        a, b = pp.get(name), dp.get(name)
        if a is None or b is None:
            status = f"missing-in-{target.primary if a is None else target.dr}"
        elif a["type"] != b["type"] or a["hash"] != b["hash"]:
            status = "differs"
        elif a["version"] != b["version"]:
            status = "version-skew"
        else:
            status = "same"
        rows.append(
            {
                "name": name,
                "status": status,
                "type": {
                    r: (p or {}).get("type") for r, p in ((target.primary, a), (target.dr, b))
                },
                "version": {
                    r: (p or {}).get("version") for r, p in ((target.primary, a), (target.dr, b))
                },
                "hash": {
                    r: (p or {}).get("hash") for r, p in ((target.primary, a), (target.dr, b))
                },
            }
        )
    secret_rows = []
    for name in sorted(set(ps) | set(ds)):
        a, b = ps.get(name), ds.get(name)
        replica = next(
            (r for r in (a or {}).get("replication", []) if r["region"] == target.dr), None
        )
        if a is None or b is None:
            status = f"missing-in-{target.primary if a is None else target.dr}"
        elif a["current_version_id"] != b["current_version_id"]:
            status = "differs"
        elif replica is None or replica["status"] != "InSync":
            status = "not-replicating"
        else:
            status = "same"
        secret_rows.append(
            {
                "name": name,
                "status": status,
                "current_version_id": {
                    target.primary: (a or {}).get("current_version_id"),
                    target.dr: (b or {}).get("current_version_id"),
                },
                "replication_status": replica["status"] if replica else None,
            }
        )
    drift = [r["name"] for r in rows + secret_rows if r["status"] not in ("same", "version-skew")]
    return {
        "stack": target.stack,
        "regions": [target.primary, target.dr],
        "prefix": target.prefix,
        "parameters": rows,
        "secrets": secret_rows,
        "drift": drift,
        "in_sync": not drift,
    }


# ---------------------------------------------------------------------------------------------
# CLI

# Tests replace this with a factory bound to moto; production uses the operator's credentials.
sessions: SessionFactory = default_sessions


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ConfigError as err:
        fail(str(err), ExitCode.INVALID_CONFIG)
    except FileNotFoundError as err:
        fail(str(err), ExitCode.INVALID_CONFIG)
    except DrctlError as err:
        fail(str(err), err.code)
    except NoCredentialsError:
        fail(
            "no AWS credentials: set AWS_PROFILE or the AWS_* variables, then run again",
            ExitCode.PRECONDITION_FAILED,
        )
    except (ClientError, BotoCoreError) as err:
        fail(f"AWS call failed: {error_code(err)}", ExitCode.STEP_FAILED)


def _table(title: str, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    from scripts.tables import print_table  # identifiers folded or on plain lines, never cut

    print_table(title, header, rows)


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(
        help="Back up, restore and compare app config (SSM parameters, flags, secret metadata).",
        no_args_is_help=True,
    )
    app.add_typer(config_app, name="config")

    @config_app.command("export")
    def export_cmd(
        stack: str = typer.Option("prod", help="Stack whose config to snapshot."),
        region: str = typer.Option(None, help="Region to read (default: the stack's primary)."),
        bucket: str = typer.Option(
            None, help="Snapshot bucket (default: the tagged config-snapshots bucket in --region)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Write a versioned, SSE-KMS encrypted snapshot of the config into the snapshot bucket."""

        def act():
            target = target_of(stack)
            return export_snapshot(sessions, target, region or target.primary, bucket)

        result = _run(act)
        if as_json:
            print_json(result)
            return
        out.print(
            f"snapshot {result['snapshot']} (version {result['version_id']}, {result['sse']}): "
            f"{result['parameters']} parameters ({result['secure_parameters']} SecureString, "
            f"KMS-encrypted), {result['feature_flags']} feature flags, {result['secrets']} secrets "
            "(metadata only)"
        )

    @config_app.command("import")
    def import_cmd(
        snapshot: str = typer.Argument(
            ..., help="s3://bucket/key (optionally #versionId) or a local file."
        ),
        region: str = typer.Option(..., help="Region to restore into."),
        decrypt_region: str = typer.Option(
            None,
            help="Decrypt SecureStrings with the multi-Region key's replica here "
            "(default: the snapshot's region).",
        ),
        kms_key: str = typer.Option(
            None,
            help="Key for SecureStrings written in --region (default: the existing "
            "parameter's key, else the snapshot key's multi-Region replica there).",
        ),
        execute: bool = typer.Option(False, "--execute", help="Act; without it, a dry run."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask (required without a TTY)."),
        as_json: bool = typer.Option(False, "--json", help="Print the plan/result as JSON."),
    ) -> None:
        """Restore a snapshot's parameters into a region (dry run unless --execute)."""

        def plan():
            check_region("--region", region)
            if decrypt_region:
                check_region("--decrypt-region", decrypt_region)
            document = load_snapshot(sessions, snapshot, region)
            return document, *plan_import(sessions, document, region, decrypt_region)

        document, steps, desired, secret_checks = _run(plan)
        changes = [s for s in steps if s.action != "unchanged"]
        what = f"write {len(changes)} parameters into {region}"
        if changes and confirm_execute(execute, yes, what):
            _run(lambda: apply_import(sessions, document, region, steps, desired, kms_key))
        desired.clear()
        result = {
            "snapshot": snapshot,
            "source_region": document["region"],
            "region": region,
            "executed": any(s.done for s in steps),
            "parameters": [s.to_record() for s in steps],
            "secrets": secret_checks,
            "summary": {
                a: sum(1 for s in steps if s.action == a) for a in ("create", "update", "unchanged")
            },
        }
        if as_json:
            print_json(result)
            return
        _table(
            f"import into {region} ({'executed' if result['executed'] else 'dry run'})",
            ("parameter", "type", "action", "reason", "done"),
            ((s.name, s.type, s.action, s.reason, "yes" if s.done else "") for s in steps),
        )
        if secret_checks:
            _table(
                f"secrets in {region} (metadata only)",
                ("secret", "present", "action"),
                ((c["name"], c["present_in_target"], c["action"]) for c in secret_checks),
            )

    @config_app.command("diff")
    def diff_cmd(
        stack: str = typer.Option("prod", help="Stack whose primary and DR regions to compare."),
        as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    ) -> None:
        """Compare primary and DR by name, version and value hash; exit 1 on drift."""
        result = _run(lambda: diff_regions(sessions, target_of(stack)))
        if as_json:
            print_json(result)
        else:
            p, d = result["regions"]
            _table(
                f"parameters {result['prefix']}: {p} vs {d}",
                ("parameter", "status", f"version {p}", f"version {d}", f"hash {p}", f"hash {d}"),
                (
                    (
                        r["name"],
                        r["status"],
                        r["version"][p],
                        r["version"][d],
                        _short(r["hash"][p]),
                        _short(r["hash"][d]),
                    )
                    for r in result["parameters"]
                ),
            )
            _table(
                "secrets (metadata only)",
                ("secret", "status", "replication"),
                ((r["name"], r["status"], r["replication_status"]) for r in result["secrets"]),
            )
        if not result["in_sync"]:
            progress.print(f"drift in {len(result['drift'])} item(s): {', '.join(result['drift'])}")
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))


def _short(h: str | None) -> str:
    if not h:
        return "-"
    algo, _, digest = h.partition(":")
    return f"{algo}:{digest[:12]}"


__all__ = [
    "ConfigTarget",
    "apply_import",
    "build_snapshot",
    "diff_regions",
    "export_snapshot",
    "load_snapshot",
    "plan_import",
    "register",
    "target_of",
]
