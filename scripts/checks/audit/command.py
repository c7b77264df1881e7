"""The CLI of the audit: ``drctl audit replication``, and the wiring ``drctl repair`` reuses."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from components.objectives import ConfigError, Objectives
from scripts import locations
from scripts.checks import audit
from scripts.checks.audit.engines import AthenaEngine, LocalEngine, engine_names
from scripts.common import DrctlError, ExitCode, fail, out, print_json, progress
from scripts.dataops.inventory_store import S3Store, Store

CACHE_HELP = "Local engine's report cache (default: STATE_DIR/inventory, see drctl -h)."
DEFAULT_LIMIT = 20


def load_outputs(stack: str, outputs_file: Path | None) -> Mapping[str, Any]:
    from scripts.checks.verify import pulumi_outputs

    if outputs_file is None:
        return pulumi_outputs(stack)
    if not outputs_file.exists():
        raise DrctlError(f"--outputs {outputs_file}: no such file", ExitCode.INVALID_CONFIG)
    return json.loads(outputs_file.read_text())


def live_context(
    stack: str, outputs_file: Path | None
) -> tuple[Objectives, Mapping[str, Any], Callable[[str, str], Any]]:
    """The stack's objectives, its outputs, and boto3 clients per (service, region)."""
    import boto3

    from scripts.checks.verify import objectives_of_stack, session_clients

    try:
        objectives = objectives_of_stack(stack)
    except (FileNotFoundError, ConfigError) as err:
        raise DrctlError(str(err), ExitCode.INVALID_CONFIG) from None
    outputs = load_outputs(stack, outputs_file)
    return objectives, outputs, session_clients(lambda r: boto3.session.Session(region_name=r))


def make_engine(
    name: str,
    store: Store,
    client_for: Callable[[str, str], Any],
    inventory: Mapping[str, Any],
    *,
    cache: Path,
    query_region: str,
) -> Any:
    if name == "local":
        return LocalEngine(store, cache)
    if name == "athena":
        athena = (inventory.get("athena") or {}).get(query_region)
        if not athena:
            raise DrctlError(
                f"--query-region {query_region}: the stack declares Athena in "
                f"{', '.join(sorted(inventory.get('athena') or {})) or 'no region'}",
                ExitCode.INVALID_CONFIG,
            )
        return AthenaEngine(client_for("athena", query_region), athena["workgroup"])
    check_engine(name)
    raise AssertionError(name)  # check_engine refused it


def check_engine(name: str) -> str:
    """``--engine``, checked before anything is read."""
    if name not in engine_names():
        raise DrctlError(
            f"--engine {name!r} is not valid: {' or '.join(engine_names())}",
            ExitCode.INVALID_CONFIG,
        )
    return name


def run_audits(
    stack: str,
    objectives: Objectives,
    outputs: Mapping[str, Any],
    engine_name: str,
    client_for: Callable[[str, str], Any],
    *,
    datasets: Sequence[str] | None = None,
    query_region: str | None = None,
    cache: Path | None = None,
    store: Store | None = None,
) -> list[audit.DatasetAudit]:
    inventory = audit.inventory_of(outputs, stack)
    store = store or S3Store(lambda region: client_for("s3", region))
    region = query_region or objectives.regions.primary
    cache = cache or locations.inventory_cache_dir()
    engine = make_engine(
        engine_name, store, client_for, inventory, cache=cache, query_region=region
    )
    return [
        audit.audit_dataset(inventory, name, objectives, store, engine, query_region=region)
        for name in audit.select_datasets(inventory, datasets)
    ]


def per_class(audits: Sequence[audit.DatasetAudit]) -> dict[str, dict[str, int]]:
    """class -> kind -> discrepancies, over the class's datasets and copies."""
    classes: dict[str, dict[str, int]] = {}
    for a in audits:
        kinds = classes.setdefault(a.data_class, {})
        for per_kind in a.counts.values():
            for kind, n in per_kind.items():
                if kind in audit.DISCREPANCIES:
                    kinds[kind] = kinds.get(kind, 0) + n
    return classes


def render(stack: str, audits: Sequence[audit.DatasetAudit], limit: int) -> None:
    total = sum(a.discrepancies for a in audits)
    verdict = "[green]copies agree[/]" if not total else f"[red]{total} discrepancies[/]"
    out.print(f"[bold]{stack}[/]: replication audit: {verdict}")
    for data_class, kinds in per_class(audits).items():
        found = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
        out.print(f"  class {data_class}: {found}")
    for a in audits:
        mark = "[green]ok[/]" if not a.discrepancies else f"[red]{a.discrepancies}[/]"
        out.print(f"  [bold]{a.dataset}[/] ({a.data_class}, RPO {a.rpo_s // 60} min): {mark}")
        for region, copy in a.copies.items():
            role = "source" if copy["source"] else "replica"
            kinds = a.counts.get(region, {})
            found = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no findings"
            out.print(
                f"    {region:<15} {role:<7} {copy['versions']:>12,} versions "
                f"({copy['unsettled']:,} too recent to compare), report {copy['report_started']}: "
                f"{found}"
            )
        for row in a.rows(limit):
            out.print(
                f"      {row['kind']:<22} {row['region']:<15} {row['key']} "
                f"version {row['version_id']} ({row['source_status'] or 'no status'})"
            )
        if a.discrepancies > limit:
            out.print(f"      ... {a.discrepancies - limit} more (--limit, --json)")
        if a.expiring:
            out.print(f"    {a.expiring} noncurrent version(s) are being expired by lifecycle")
        if a.scanned_bytes is not None:
            out.print(f"    Athena read {a.scanned_bytes / 1e9:.2f} GB")


def register(app: typer.Typer) -> None:
    audit_app = typer.Typer(help="Audit the copies against each other at object scale.")
    app.add_typer(audit_app, name="audit")

    @audit_app.command("replication")
    def replication(
        stack: str = typer.Option("prod", "--stack", "-s", help="Stack whose copies to audit."),
        engine: str = typer.Option("local", "--engine", help="local (DuckDB) or athena."),
        dataset: list[str] | None = typer.Option(
            None, "--dataset", help="Only this dataset (repeatable); default all."
        ),
        query_region: str | None = typer.Option(
            None, "--query-region", help="Athena region (default the primary)."
        ),
        outputs_file: Path | None = typer.Option(
            None, "--outputs", help="JSON of `pulumi stack output --json` instead of the CLI."
        ),
        cache: Path | None = typer.Option(None, "--cache", help=CACHE_HELP),
        limit: int = typer.Option(DEFAULT_LIMIT, "--limit", help="Findings listed per dataset."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    ) -> None:
        """Compare the inventories of every copy; exit 1 on any discrepancy."""
        try:
            check_engine(engine)
            objectives, outputs, clients = live_context(stack, outputs_file)
            audits = run_audits(
                stack,
                objectives,
                outputs,
                engine,
                clients,
                datasets=dataset,
                query_region=query_region,
                cache=cache,
            )
        except DrctlError as err:
            fail(str(err), err.code)
        total = sum(a.discrepancies for a in audits)
        if json_output:
            print_json(
                {
                    "stack": stack,
                    "engine": engine,
                    "discrepancies": total,
                    "classes": per_class(audits),
                    "datasets": [a.to_record(limit) for a in audits],
                }
            )
        else:
            render(stack, audits, limit)
        progress.print(f"{total} discrepancies in {len(audits)} dataset(s)")
        if total:
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
