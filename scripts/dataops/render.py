"""`drctl render --stack STACK --out DIR`: write the host artefacts of a *deployed* stack.

The files are the stack's ``databaseArtefacts`` output (components/postgres_backup.py:
pgbackrest.conf, the postgresql.conf fragment with the archiving settings, systemd services and
timers, cron.d lines) and its ``probeArtefacts`` output (components/health_probe.py: the primary
database probe that feeds the Route 53 health check). They hold no secret: the pgBackRest cipher
passphrase and the dump DSN live in separate 0600 files that the host provisions.

Render from reality. The values come from the stack's real outputs: ``pulumi stack output
--json`` (through the Pulumi CLI; secrets stay masked) or ``--outputs FILE`` (that command's
output, saved). An offline evaluation under Pulumi's mocks has invented accounts, bucket names
and key ARNs, so rendering from it is refused unless ``--example``, which writes every file with
an EXAMPLE header; a stack marked ``platform-dr:example`` is example-only for the same reason.

Host files are never overwritten behind anyone's back: a file that exists with different content
is shown as a unified diff and left alone unless ``--execute`` (and ``--yes`` without a terminal).
New files are created, identical files are left untouched, nothing else under DIR is touched.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from scripts.common import DrctlError, ExitCode, progress

ARTEFACT_OUTPUTS = ("databaseArtefacts", "probeArtefacts")
SECRET_MASK = "[secret]"


def example_header(stack: str) -> str:
    return (
        f"# EXAMPLE (drctl render --example): from an offline evaluation of stack {stack}; every "
        "account, bucket, key ARN and host below is a placeholder. Not for a real host.\n"
    )


def artefacts_from_outputs(stack: str, outputs: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(dbBackend, {relative path: text}) from a deployed stack's outputs."""
    missing = [name for name in ARTEFACT_OUTPUTS if name not in outputs]
    if "databaseArtefacts" in missing:
        raise DrctlError(
            f"the outputs of stack {stack} have no databaseArtefacts: run `pulumi up` with this "
            "version of the program first, or pass the right --outputs file",
            ExitCode.PRECONDITION_FAILED,
        )
    files: dict[str, str] = {}
    for name in ARTEFACT_OUTPUTS:
        for path, text in (outputs.get(name) or {}).items():
            if text == SECRET_MASK or not isinstance(text, str):
                raise DrctlError(
                    f"{name}[{path!r}] is a secret or not text in the stack outputs; host "
                    "artefacts must never hold a secret",
                    ExitCode.PRECONDITION_FAILED,
                )
            if path in files:
                raise DrctlError(f"{path} is rendered twice", ExitCode.STEP_FAILED)
            files[path] = text
    backend = (outputs.get("database") or {}).get("backend", "")
    return backend, files


def example_artefacts(stack: str, backend: str | None = None) -> tuple[str, dict[str, str]]:
    """(dbBackend, files) from an offline evaluation, every file marked as an example."""
    from components.objectives import ConfigError
    from scripts.local.evaluate import evaluate_stack

    overrides = {"dbBackend": backend} if backend else None
    try:
        evaluation = evaluate_stack(stack, overrides=overrides)
    except FileNotFoundError as err:
        raise DrctlError(f"--stack {stack!r}: {err}", ExitCode.INVALID_CONFIG) from None
    except ConfigError as err:
        raise DrctlError(str(err), ExitCode.INVALID_CONFIG) from None
    except SystemExit as err:  # the program printed the config error itself
        raise DrctlError(
            f"stack {stack!r} has invalid config (see above)", ExitCode.INVALID_CONFIG
        ) from err
    actual, files = artefacts_from_outputs(stack, evaluation.outputs)
    return actual, {path: example_header(stack) + text for path, text in files.items()}


def stack_is_example(stack: str, root: Path | None = None) -> bool:
    """``platform-dr:example`` in the stack file (an example stack renders examples only)."""
    from scripts.local.evaluate import read_stack_config

    try:
        config = read_stack_config(stack, root)
    except (FileNotFoundError, DrctlError):
        return False  # no project here (a database host): the stack's outputs are what count
    value = config.get("platform-dr:example")
    return value is True or str(value).strip().lower() == "true"


def _safe_relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DrctlError(f"refusing to write artefact path {path!r}", ExitCode.STEP_FAILED)
    return rel


def plan_writes(files: Mapping[str, str], out: Path) -> list[dict[str, Any]]:
    """One record per file: created / unchanged / changed (with the unified diff)."""
    if out.exists() and not out.is_dir():
        raise DrctlError(
            f"--out {str(out)!r} exists and is not a directory", ExitCode.INVALID_CONFIG
        )
    records = []
    for path in sorted(files):
        target = out / _safe_relative(path)
        data = files[path].encode()
        record: dict[str, Any] = {
            "path": path,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if not target.exists():
            record["status"] = "created"
        elif target.read_bytes() == data:
            record["status"] = "unchanged"
        else:
            record["status"] = "changed"
            current = target.read_text(errors="replace").splitlines(keepends=True)
            record["diff"] = "".join(
                difflib.unified_diff(
                    current,
                    files[path].splitlines(keepends=True),
                    fromfile=f"{target} (on the host)",
                    tofile=f"{target} (rendered)",
                )
            )
        records.append(record)
    return records


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(target)  # atomic: a reader never sees half a config file


def apply_writes(
    records: list[dict[str, Any]], files: Mapping[str, str], out: Path, overwrite: bool
) -> None:
    """Create new files; overwrite changed ones only when ``overwrite``. Updates statuses."""
    for record in records:
        target = out / _safe_relative(record["path"])
        if record["status"] == "created":
            _write(target, files[record["path"]].encode())
        elif record["status"] == "changed":
            if overwrite:
                _write(target, files[record["path"]].encode())
                record["status"] = "updated"
            else:
                record["status"] = "changed (kept: add --execute to overwrite)"


def register(app) -> None:
    import typer

    from scripts.common import confirm_execute, fail, out, print_json
    from scripts.dataops.stack_outputs import outputs_file, pulumi_outputs

    @app.command()
    def render(
        stack: str = typer.Option("prod", help="Stack whose host artefacts to write."),
        out_dir: Path = typer.Option(..., "--out", help="Directory to write the files into."),
        outputs: Path | None = typer.Option(
            None,
            "--outputs",
            help="JSON of `pulumi stack output --json -s STACK`; default: ask the Pulumi CLI.",
        ),
        example: bool = typer.Option(
            False,
            "--example",
            help="Render EXAMPLE files from an offline evaluation (no deployed stack needed).",
        ),
        backend: str = typer.Option(
            "", help="With --example: render as if dbBackend were this (rds, self-managed, ...)."
        ),
        execute: bool = typer.Option(
            False, "--execute", help="Overwrite host files whose content differs (diff shown)."
        ),
        yes: bool = typer.Option(False, "--yes", help="Do not ask (required without a TTY)."),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """Write the host artefacts (pgBackRest, Postgres settings, timers, the primary probe)."""
        try:
            if backend and not example:
                raise DrctlError(
                    "--backend only applies to --example: a deployed stack's backend is the one "
                    "it was deployed with",
                    ExitCode.INVALID_CONFIG,
                )
            if example:
                if outputs is not None:
                    raise DrctlError(
                        "--example renders from an offline evaluation; --outputs from a "
                        "deployed stack: pick one",
                        ExitCode.INVALID_CONFIG,
                    )
                progress.print(f"evaluating stack {stack} offline (EXAMPLE files) ...")
                actual, files = example_artefacts(stack, backend or None)
            else:
                if stack_is_example(stack):
                    raise DrctlError(
                        f"stack {stack} is marked platform-dr:example: its hosts and names are "
                        "placeholders, so it renders example files only (--example)",
                        ExitCode.REFUSED,
                    )
                if outputs is not None:
                    document = outputs_file(outputs)
                else:
                    progress.print(f"reading the outputs of stack {stack} (pulumi stack output)")
                    try:
                        document = pulumi_outputs(stack)
                    except DrctlError as err:
                        raise DrctlError(
                            f"cannot render stack {stack} from real outputs: {err}. Render "
                            f"from reality: `pulumi stack output --json -s {stack} > "
                            f"outputs.json`, then `drctl render --stack {stack} --outputs "
                            "outputs.json --out DIR`; or `--example` for files marked as "
                            "examples from an offline evaluation",
                            err.code,
                        ) from None
                actual, files = artefacts_from_outputs(stack, document)
            records = plan_writes(files, out_dir)
            changed = [r for r in records if r["status"] == "changed"]
            if changed and not as_json:
                for record in changed:
                    out.print(record["diff"], markup=False, highlight=False)
            overwrite = bool(changed) and confirm_execute(
                execute, yes, f"overwrite {len(changed)} changed host file(s) under {out_dir}"
            )
            apply_writes(records, files, out_dir, overwrite)
        except DrctlError as err:
            fail(str(err), err.code)
        if as_json:
            print_json(
                {
                    "stack": stack,
                    "backend": actual,
                    "example": example,
                    "out": str(out_dir),
                    "files": records,
                }
            )
            return
        if not records:
            out.print(f"stack {stack} (dbBackend {actual}) renders no host artefacts")
        for record in records:
            out.print(f"{record['status']:>9}  {out_dir / record['path']}")
