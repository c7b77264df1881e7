"""`drctl render --stack STACK --out DIR`: write the database host artefacts a stack renders.

The files are the stack's ``databaseArtefacts`` output (components/postgres_backup.py), read by
evaluating the real program under mocks (scripts.local.evaluate): pgbackrest.conf, the
postgresql.conf fragment with the archiving settings, systemd services and timers, and cron.d lines.
They hold no secret (the pgBackRest cipher passphrase and the dump DSN live in separate 0600 files
that the host provisions), so they can be reviewed and diffed like code.

Only the rendered paths are written; nothing else under DIR is touched or deleted. Rendering
again is idempotent: unchanged files are reported as such and not rewritten.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

from scripts.common import DrctlError, ExitCode, progress


def artefacts_of(stack: str, backend: str | None = None) -> tuple[str, dict[str, str]]:
    """(dbBackend, {relative path: text}) of a stack, without any cloud access."""
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
    database = evaluation.outputs.get("database") or {}
    return database.get("backend", ""), dict(evaluation.outputs.get("databaseArtefacts") or {})


def _safe_relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DrctlError(f"refusing to write artefact path {path!r}", ExitCode.STEP_FAILED)
    return rel


def write_artefacts(files: dict[str, str], out: Path) -> list[dict[str, Any]]:
    """Write each file under ``out``; returns one record per file (created/updated/unchanged)."""
    if out.exists() and not out.is_dir():
        raise DrctlError(
            f"--out {str(out)!r} exists and is not a directory", ExitCode.INVALID_CONFIG
        )
    records = []
    for path in sorted(files):
        target = out / _safe_relative(path)
        data = files[path].encode()
        if target.exists():
            status = "unchanged" if target.read_bytes() == data else "updated"
        else:
            status = "created"
        if status != "unchanged":
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            tmp.chmod(0o644)
            tmp.replace(target)  # atomic: a reader never sees half a config file
        records.append(
            {
                "path": path,
                "status": status,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return records


def register(app) -> None:
    import typer

    from scripts.common import fail, out, print_json

    @app.command()
    def render(
        stack: str = typer.Option("prod", help="Stack to render."),
        out_dir: Path = typer.Option(..., "--out", help="Directory to write the files into."),
        backend: str = typer.Option(
            "", help="Render as if dbBackend were this (rds, self-managed, supabase)."
        ),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """Write the database host artefacts (pgbackrest.conf, Postgres settings, timers)."""
        try:
            progress.print(f"evaluating stack {stack} under mocks...")
            actual, files = artefacts_of(stack, backend or None)
            records = write_artefacts(files, out_dir)
        except DrctlError as err:
            fail(str(err), err.code)
        if as_json:
            print_json({"stack": stack, "backend": actual, "out": str(out_dir), "files": records})
            return
        if not records:
            out.print(
                f"stack {stack} (dbBackend {actual}) renders no host artefacts: the Pulumi "
                "program configures the database entirely"
            )
        for record in records:
            out.print(f"{record['status']:>9}  {out_dir / record['path']}")
