"""`drctl rebuild --stack dr`: the spec's "infrastructure rebuild" from code, as a runbook.

Steps (journaled like failover; the first three also run in a dry run, they change nothing):

1. **preflight**: the Pulumi CLI is on PATH; the source stack's outputs are readable; what the
   rebuild adopts exists and is usable in its regions: the bucket copies and their KMS keys,
   the secret replicas, the backup vault, and the database copy (pgBackRest repo2, the RDS
   replica, or the dump bucket).
2. **preview**: ``pulumi preview`` through the Automation API, saving an update plan; every
   engine event is read to know *which* resources would be deleted or replaced.
3. **refuse**: any delete or replace not named with ``--allow URN`` stops the rebuild. A
   rebuild adopts and creates; destroying is never its job.
4. **up**: ``pulumi up`` constrained to the saved plan, so it cannot do more than was previewed.
5. **verify**: the outputs drctl needs are there, and a fresh preview shows no changes.
6. **fill** (unless ``--no-fill``): replication only carries objects written after its rules exist,
   so one S3 Batch Replication job per dataset copies every existing object of the new primary to
   its replicas, the new third region included (scripts/runbooks/repair.py ``fill_jobs``). The jobs
   run on in AWS; ``drctl audit replication --stack dr`` proves when the copies agree.

The Pulumi CLI cannot be installed on the machines that test this, so the stack object is
injected (``open_stack``); tests pass a fake that speaks the Automation API's types.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import typer

from components.objectives import PROJECT, Objectives, parse_objectives
from scripts import locations
from scripts.common import DrctlError, ExitCode, progress
from scripts.local.evaluate import read_stack_config
from scripts.runbooks.engine import Runbook, RunContext, RunReport, Step, journal_path, run_command
from scripts.runbooks.failover import Aws, default_sessions

DESTRUCTIVE_OPS = {
    "delete",
    "replace",
    "create-replacement",
    "delete-replaced",
    "discard",
    "discard-replaced",
    "import-replacement",
}
REQUIRED_OUTPUTS = ("regions", "buckets", "drStandby")
INSTALL_HINT = "install it (curl -fsSL https://get.pulumi.com | sh) and `pulumi login`"


class StackLike(Protocol):
    """The part of ``pulumi.automation.Stack`` the rebuild uses."""

    def preview(self, **kwargs: Any) -> Any: ...

    def up(self, **kwargs: Any) -> Any: ...

    def outputs(self) -> Mapping[str, Any]: ...


def automation_stack(name: str, root: Path | None = None) -> StackLike:
    from pulumi import automation as auto

    return auto.select_stack(stack_name=name, work_dir=str(root or locations.project_dir()))


def output_values(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Automation API outputs are OutputValue(value, secret); files hold plain values."""
    return {k: getattr(v, "value", v) for k, v in outputs.items()}


# ---------------------------------------------------------------------------------------------
# Pure checks


def destructive_steps(events: Sequence[Any]) -> list[dict[str, str]]:
    """Deletes and replaces among engine events (resource pre-events of a preview)."""
    found = []
    for event in events:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            continue
        op = getattr(pre.metadata.op, "value", pre.metadata.op)
        if op in DESTRUCTIVE_OPS:
            found.append({"op": op, "urn": pre.metadata.urn, "type": pre.metadata.type})
    return found


def summary_counts(change_summary: Mapping[Any, int]) -> dict[str, int]:
    return {getattr(k, "value", k): int(v) for k, v in (change_summary or {}).items()}


def refusals(
    destructive: Sequence[Mapping[str, str]], counts: Mapping[str, int], allowed: Sequence[str]
) -> list[str]:
    """Why the preview must not be applied; empty when it may."""
    reasons = [f"{d['op']} {d['urn']}" for d in destructive if d["urn"] not in set(allowed)]
    counted = sum(n for op, n in counts.items() if op in DESTRUCTIVE_OPS)
    if counted > len(destructive):
        # The summary says more than the events named: never apply what we cannot see.
        reasons.append(
            f"the change summary counts {counted} deletes/replaces but only "
            f"{len(destructive)} were reported as events"
        )
    return reasons


# ---------------------------------------------------------------------------------------------
# Preflight: what the rebuild adopts must exist


def _check(what: str, region: str, name: str, probe: Callable[[], Any]) -> dict[str, Any]:
    try:
        detail = probe()
        return {"what": what, "region": region, "name": name, "ok": True, "detail": detail}
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return {"what": what, "region": region, "name": name, "ok": False, "detail": first}


def _key_usable(kms: Any, key: str) -> str:
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    if meta.get("KeyState") != "Enabled":
        raise RuntimeError(f"key state {meta.get('KeyState')}")
    return "Enabled"


def adoption_checks(objectives: Objectives, source: Mapping[str, Any], aws: Aws) -> list[dict]:
    """One check per thing the rebuild stack adopts from the source stack's outputs."""
    regions = (objectives.regions.primary, objectives.regions.dr)
    checks: list[dict[str, Any]] = []
    buckets = source.get("buckets") or {}
    keys = source.get("bucketKeyArns") or {}
    for dataset in sorted(buckets):
        for region in regions:
            name = buckets[dataset].get(region)
            if not name:
                checks.append(
                    {
                        "what": f"{dataset} copy",
                        "region": region,
                        "name": "",
                        "ok": False,
                        "detail": "the source stack kept no copy here",
                    }
                )
                continue
            s3 = aws.client("s3", region)
            checks.append(
                _check(f"{dataset} copy", region, name, lambda s3=s3, n=name: _head(s3, n))
            )
            key = (keys.get(dataset) or {}).get(region)
            if key:
                kms = aws.client("kms", region)
                checks.append(
                    _check(f"{dataset} key", region, key, lambda k=kms, a=key: _key_usable(k, a))
                )
    primary = objectives.regions.primary
    for secret, arns in sorted((source.get("secretArns") or {}).items()):
        arn = arns.get(primary)
        sm = aws.client("secretsmanager", primary)
        checks.append(
            _check(
                "secret replica",
                primary,
                secret,
                lambda sm=sm, s=arn or secret: sm.describe_secret(SecretId=s)["Name"],
            )
        )
    vault = (source.get("backupVaultNames") or {}).get(primary)
    if vault:
        backup = aws.client("backup", primary)
        checks.append(
            _check(
                "backup vault",
                primary,
                vault,
                lambda: backup.describe_backup_vault(BackupVaultName=vault)["BackupVaultName"],
            )
        )
    database = source.get("database") or {}
    standby = source.get("drStandby") or {}
    if objectives.db_backend == "self-managed" and (database.get("repoBuckets") or {}).get("repo2"):
        repo2 = database["repoBuckets"]["repo2"]
        s3 = aws.client("s3", primary)
        checks.append(_check("pgBackRest repo2", primary, repo2, lambda: _head(s3, repo2)))
    elif objectives.db_backend == "rds" and standby.get("replicaIdentifier"):
        ident = standby["replicaIdentifier"]
        rds = aws.client("rds", primary)
        checks.append(
            _check(
                "database replica",
                primary,
                ident,
                lambda: rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0][
                    "DBInstanceStatus"
                ],
            )
        )
    elif objectives.db_backend == "supabase":
        dumps = (database.get("dumpBuckets") or {}).get(primary)
        if dumps:
            s3 = aws.client("s3", primary)
            checks.append(_check("database dumps", primary, dumps, lambda: _head(s3, dumps)))
    return checks


def _head(s3: Any, bucket: str) -> str:
    s3.head_bucket(Bucket=bucket)
    return "exists"


# ---------------------------------------------------------------------------------------------
# The runbook


def rebuild_steps(
    stack: str,
    objectives: Objectives,
    aws: Aws,
    *,
    open_stack: Callable[[str], StackLike],
    source_outputs: Callable[[], Mapping[str, Any]],
    which: Callable[[str], str | None] = shutil.which,
    allow: Sequence[str] = (),
    plan_file: Path,
    fill: bool = True,
) -> list[Step]:
    def preflight(ctx: RunContext) -> dict[str, Any]:
        cli = which("pulumi")
        if not cli:
            raise DrctlError(
                f"the Pulumi CLI is not on PATH; {INSTALL_HINT}", ExitCode.PRECONDITION_FAILED
            )
        if not objectives.is_rebuild:
            raise DrctlError(
                f"stack {stack!r} has no rebuildFrom; rebuild is for stacks that adopt another "
                "stack's copies (Pulumi.dr.yaml)",
                ExitCode.INVALID_CONFIG,
            )
        try:
            source = output_values(source_outputs())
        except DrctlError:
            raise
        except Exception as exc:
            raise DrctlError(
                f"cannot read the outputs of {objectives.rebuild_from} ({type(exc).__name__}: "
                f"{str(exc)[:200]}); pass --source-outputs FILE",
                ExitCode.PRECONDITION_FAILED,
            ) from None
        missing = [k for k in REQUIRED_OUTPUTS if k not in source]
        if missing:
            raise DrctlError(
                f"{objectives.rebuild_from} exports no {', '.join(missing)}",
                ExitCode.PRECONDITION_FAILED,
            )
        checks = adoption_checks(objectives, source, aws)
        for check in checks:
            mark = "ok" if check["ok"] else "MISSING"
            ctx.note(f"{mark:<7} {check['what']} {check['name']} ({check['region']})")
        failed = [c for c in checks if not c["ok"]]
        if failed:
            listed = "; ".join(f"{c['what']} {c['name']} in {c['region']}" for c in failed)
            raise DrctlError(
                f"{len(failed)} thing(s) the rebuild adopts are missing or unusable: {listed}",
                ExitCode.PRECONDITION_FAILED,
            )
        return {"pulumi": cli, "source": objectives.rebuild_from, "checks": checks}

    def preview(ctx: RunContext) -> dict[str, Any]:
        events: list[Any] = []
        target = open_stack(stack)
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        result = target.preview(on_event=events.append, diff=True, plan=str(plan_file))
        counts = summary_counts(result.change_summary)
        destructive = destructive_steps(events)
        ctx.note(", ".join(f"{op} {n}" for op, n in sorted(counts.items())) or "no changes")
        return {"change_summary": counts, "destructive": destructive, "plan": str(plan_file)}

    def refuse(ctx: RunContext) -> dict[str, Any]:
        seen = ctx.results["preview"]
        reasons = refusals(seen["destructive"], seen["change_summary"], allow)
        if reasons:
            raise DrctlError(
                f"the preview would delete or replace {len(reasons)} resource(s) a rebuild must "
                f"keep: {'; '.join(reasons[:10])}. Fix the program or config; allow a specific "
                "one with --allow URN",
                ExitCode.REFUSED,
            )
        return {"allowed": [d["urn"] for d in seen["destructive"]]}

    def up(ctx: RunContext) -> dict[str, Any]:
        target = open_stack(stack)
        plan = ctx.results["preview"]["plan"]
        result = target.up(on_output=lambda line: ctx.note(line.rstrip()), plan=plan)
        summary = result.summary
        if summary.result != "succeeded":
            raise DrctlError(f"pulumi up finished with result {summary.result!r}")
        return {
            "result": summary.result,
            "resource_changes": summary_counts(summary.resource_changes or {}),
        }

    def verify(ctx: RunContext) -> dict[str, Any]:
        target = open_stack(stack)
        outputs = output_values(target.outputs())
        missing = [k for k in REQUIRED_OUTPUTS if k not in outputs]
        if missing:
            raise DrctlError(f"the rebuilt stack exports no {', '.join(missing)}")
        events: list[Any] = []
        result = target.preview(on_event=events.append)
        pending = {op: n for op, n in summary_counts(result.change_summary).items() if op != "same"}
        if pending:
            raise DrctlError(f"the rebuilt stack has not converged; a new preview shows {pending}")
        return {"outputs": sorted(outputs), "converged": True, "regions": outputs["regions"]}

    def fill_copies(ctx: RunContext) -> dict[str, Any]:
        from scripts.runbooks.repair import fill_jobs

        outputs = output_values(open_stack(stack).outputs())
        return {"jobs": fill_jobs(stack, outputs, aws.client)}

    fill_steps = [
        Step(
            "fill",
            "Fill the new copies with the objects that existed before replication (S3 Batch "
            "Replication)",
            fill_copies,
            plan="create one S3 Batch Replication job per dataset (generated manifest)",
        )
    ]
    return [
        Step(
            "preflight",
            "Preflight: Pulumi CLI, source outputs, DR backups, replicas and keys",
            preflight,
            dry_run=True,
        ),
        Step("preview", "Preview the rebuild", preview, dry_run=True),
        Step("refuse", "Refuse unexpected deletes or replaces", refuse, dry_run=True),
        Step("up", "Apply the previewed plan (pulumi up)", up, plan="pulumi up --plan"),
        Step("verify", "Verify outputs and convergence", verify, plan="check outputs, re-preview"),
        *(fill_steps if fill else []),
    ]


def run_rebuild(
    stack: str,
    aws: Aws,
    *,
    execute: bool,
    yes: bool,
    open_stack: Callable[[str], StackLike] = automation_stack,
    source_outputs: Callable[[], Mapping[str, Any]] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    allow: Sequence[str] = (),
    journal: str | Path | None = None,
    fresh: bool = False,
    root: Path | None = None,
    fill: bool = True,
) -> RunReport:
    try:
        raw = read_stack_config(stack, root)
    except FileNotFoundError as exc:
        raise DrctlError(str(exc), ExitCode.INVALID_CONFIG) from None
    objectives = parse_objectives({k: v for k, v in raw.items() if k.startswith(PROJECT)}, stack)
    if source_outputs is None:

        def source_outputs() -> Mapping[str, Any]:
            return open_stack(objectives.rebuild_from).outputs()

    path = journal_path("rebuild", stack, journal)
    steps = rebuild_steps(
        stack,
        objectives,
        aws,
        open_stack=open_stack,
        source_outputs=source_outputs,
        which=which,
        allow=allow,
        plan_file=path.with_suffix(".plan.json"),
        fill=fill,
    )
    book = Runbook("rebuild", stack, steps, journal=path)
    progress.print(
        f"rebuild {stack} in {objectives.regions.primary} from {objectives.rebuild_from or '-'}"
    )
    return book.run(execute=execute, yes=yes, fresh=fresh, what=f"rebuild stack {stack}")


def make_aws() -> Aws:
    return Aws(default_sessions)


def register(app: typer.Typer) -> None:
    @app.command()
    def rebuild(
        stack: str = typer.Option("dr", "--stack", help="Rebuild stack (has rebuildFrom)."),
        execute: bool = typer.Option(False, "--execute", help="Run pulumi up; else dry run."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask; required without a TTY."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        allow: list[str] | None = typer.Option(
            None, "--allow", help="URN of a delete/replace to accept (repeatable)."
        ),
        source_outputs_file: Path | None = typer.Option(
            None,
            "--source-outputs",
            help="Source stack outputs JSON; default: read through the Pulumi CLI.",
        ),
        journal: Path | None = typer.Option(None, "--journal", help="Journal file."),
        fresh: bool = typer.Option(False, "--fresh", help="New run after a completed one."),
        fill: bool = typer.Option(
            True, "--fill/--no-fill", help="Batch-replicate existing objects to the new copies."
        ),
    ) -> None:
        """Rebuild the DR stack from code with the Automation API (dry run unless --execute)."""

        def build() -> RunReport:
            source = None
            if source_outputs_file is not None:
                import json

                def source() -> Mapping[str, Any]:
                    return json.loads(source_outputs_file.read_text())

            return run_rebuild(
                stack,
                make_aws(),
                execute=execute,
                yes=yes,
                source_outputs=source,
                allow=allow or (),
                journal=journal,
                fresh=fresh,
                fill=fill,
            )

        run_command(build, as_json)
