"""`drctl posture`: how each data class is protected, from the declared settings alone.

Evaluates the real ``__main__.py`` for a stack under Pulumi's mocks (no cloud, no Pulumi CLI),
then applies the same rules the CrossGuard pack enforces (policy/rules.py) to what was declared.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from components.objectives import ConfigError, parse_stack_config
from policy import rules
from scripts.common import ExitCode, fail, out, print_json, progress
from scripts.local.evaluate import ROOT, Evaluation, evaluate_stack, read_stack_config


def report(evaluation: Evaluation) -> dict[str, Any]:
    """The posture of one evaluated stack as plain data (what --json prints)."""
    resources = [rules.Resource(r.type, r.name, r.inputs) for r in evaluation.resources]
    objectives = rules.objectives_of(resources)
    if objectives is None:
        raise ValueError(f"stack {evaluation.stack} declares no ObjectivesRecord")
    verdicts = rules.class_verdicts(resources, objectives)
    violations = rules.resource_violations(resources) + rules.semantic_violations(resources)
    return {
        "stack": evaluation.stack,
        "resources": evaluation.resource_count,
        "regions": objectives["regions"],
        "db_backend": objectives["db_backend"],
        # An example stack (platform-dr:example) names placeholder hosts: say so wherever it shows.
        "example": bool(objectives.get("example")),
        "pitr_window_days": objectives["pitr_window_days"],
        "classes": [
            {
                "name": v.name,
                "rpo_objective_s": v.rpo_objective_s,
                "rto_objective_s": v.rto_objective_s,
                "rpo_declared_s": v.rpo_declared_s,
                "met": v.met,
                "mechanisms": v.mechanisms,
                "problems": v.problems,
                "datasets": v.datasets,
                "aws_backup": {k: val for k, val in v.backup.items() if k != "problems"},
            }
            for v in verdicts
        ],
        "violations": [asdict(v) for v in violations],
        "met": all(v.met for v in verdicts) and not violations,
    }


def posture_of(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """Validate the stack's config exactly as the program does, then evaluate and report."""
    parse_stack_config(read_stack_config(stack, root), stack)
    return report(evaluate_stack(stack, root=root))


def render(document: dict[str, Any]) -> None:
    regions = document["regions"]
    verdict = "[green]all classes met[/]" if document["met"] else "[red]NOT MET[/]"
    example = " [yellow](example stack: placeholder hosts)[/]" if document.get("example") else ""
    out.print(
        f"[bold]{document['stack']}[/]{example}: {document['resources']} resources; primary "
        f"{regions['primary']}, DR {regions['dr']}, third {regions['third']}; database "
        f"{document['db_backend']}, {document['pitr_window_days']}-day PITR: {verdict}"
    )
    for c in document["classes"]:
        declared = rules.fmt_s(c["rpo_declared_s"]) if c["datasets"] else "-"
        mark = "[green]met[/]" if c["met"] else "[red]NOT MET[/]"
        out.print(
            f"  [bold]{c['name']:<11}[/] RPO {rules.fmt_s(c['rpo_objective_s']):>6} "
            f"(worst case declared {declared})  RTO {rules.fmt_s(c['rto_objective_s']):>6}  {mark}"
        )
        for line in c["mechanisms"] or ["(no data declared in this class)"]:
            out.print(f"      - {line}")
        backup = c.get("aws_backup") or {}
        for line in backup.get("mechanisms", []):
            out.print(f"      - {line}")
        if backup.get("gap_note"):
            out.print(f"      [dim]note: {backup['gap_note']}[/]")
        for problem in c["problems"]:
            out.print(f"      [red]! {problem}[/]")
    for v in document["violations"]:
        out.print(f"  [red]violation[/] {v['rule']} on {v['resource']}: {v['message']}")
    out.print()


def register(app: typer.Typer) -> None:
    @app.command()
    def posture(
        stack: list[str] = typer.Option(
            ["prod"], "--stack", "-s", help="Stack(s) to report on; repeat for several."
        ),
        json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
        project_dir: Path = typer.Option(
            ROOT, "--project-dir", help="Directory holding Pulumi.yaml and the stack files."
        ),
        diff: str | None = typer.Option(
            None, "--diff", metavar="REV", help="Markdown of what changed since git revision REV."
        ),
    ) -> None:
        """Offline report: per data class, objectives, mechanisms, worst-case RPO and a verdict.

        Exit 0 when every class is met, 1 when one is not, 2 when the config is invalid.
        """
        if diff is not None:
            from scripts.checks import posture_diff  # evaluates both trees in subprocesses

            posture_diff.run(diff, stack, json_output, project_dir)
            return
        documents = []
        for name in stack:
            progress.print(f"evaluating stack {name} under Pulumi mocks ...")
            try:
                documents.append(posture_of(name, project_dir))
            except ConfigError as err:
                fail(str(err), ExitCode.INVALID_CONFIG)
            except FileNotFoundError as err:
                fail(str(err), ExitCode.INVALID_CONFIG)
        if json_output:
            print_json(documents[0] if len(documents) == 1 else documents)
        else:
            for document in documents:
                render(document)
        if not all(d["met"] for d in documents):
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
