"""`drctl posture`: how each data class is protected, from the declared settings and evidence.

Evaluates the real ``__main__.py`` for a stack under Pulumi's mocks (no cloud, no Pulumi CLI),
then applies the same rules the CrossGuard pack enforces (policy/rules.py) to what was declared:
the files the database hosts receive (policy/artefacts.py), each dataset's enforced bounds and
the alarms that only detect (policy/bounds.py). For the database it adds what the pack cannot
judge: whether each recovery path finishes inside the RTO at the restore and replay throughput
measured in the evidence file (policy/recovery.py; ``bench/restore.py`` writes it).

A class is **met** when its enforced bounds meet the RPO and a path that survives a region loss
fits the RTO, **NOT MET** when either fails, **UNKNOWN** when the RTO cannot be judged (missing,
stale or unreadable evidence). UNKNOWN fails like NOT MET unless ``--allow-unknown``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from components.objectives import parse_stack_config
from policy import recovery, rules
from scripts import locations
from scripts.common import ExitCode, out, print_json, progress
from scripts.local.evaluate import Evaluation, evaluate_stack, read_stack_config

EVIDENCE_PATH = Path("bench/results/restore.json")
MET, NOT_MET, UNKNOWN = recovery.MET, recovery.NOT_MET, recovery.UNKNOWN


def load_evidence(path: Path, objectives: dict, now: dt.datetime) -> recovery.Evidence:
    """The evidence file at ``path``, checked for age against the stack's restore-test interval."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        document = None
    except (OSError, json.JSONDecodeError) as err:
        return recovery.Evidence("invalid", f"{path}: {err}", source=str(path))
    if document is not None and not isinstance(document, dict):
        return recovery.Evidence("invalid", f"{path}: not a JSON object", source=str(path))
    return recovery.read_evidence(
        document, now, recovery.max_evidence_age_s(objectives), source=str(path)
    )


def _class_verdict(rpo_met: bool, rto: dict | None) -> str:
    if not rpo_met or (rto and rto["verdict"] == NOT_MET):
        return NOT_MET
    return UNKNOWN if rto and rto["verdict"] == UNKNOWN else MET


def report(
    evaluation: Evaluation,
    evidence_path: Path | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The posture of one evaluated stack as plain data (what --json prints)."""
    resources = [rules.Resource(r.type, r.name, r.inputs) for r in evaluation.resources]
    objectives = rules.objectives_of(resources)
    if objectives is None:
        raise ValueError(f"stack {evaluation.stack} declares no ObjectivesRecord")
    now = now or dt.datetime.now(dt.UTC)
    evidence_path = evidence_path or locations.project_dir() / EVIDENCE_PATH
    evidence = load_evidence(evidence_path, objectives, now)
    assessment = recovery.assess_rto(resources, objectives, evidence)
    verdicts = rules.class_verdicts(resources, objectives)
    violations = rules.resource_violations(resources) + rules.semantic_violations(resources)
    classes = []
    for v in verdicts:
        rto = assessment.to_dict() if assessment and assessment.data_class == v.name else None
        problems = list(v.problems)
        if rto and rto["verdict"] != MET:
            problems.append(f"RTO {rto['verdict'].upper()}: {rto['why']}")
        verdict = _class_verdict(v.met, rto)
        classes.append(
            {
                "name": v.name,
                "rpo_objective_s": v.rpo_objective_s,
                "rto_objective_s": v.rto_objective_s,
                "rpo_declared_s": v.rpo_declared_s,
                "verdict": verdict,
                "met": verdict == MET,
                "mechanisms": v.mechanisms,
                "problems": problems,
                "datasets": v.datasets,
                "bounds": {d: [b.to_dict() for b in bs] for d, bs in v.bounds.items() if bs},
                "rto": rto,
                "aws_backup": {k: val for k, val in v.backup.items() if k != "problems"},
            }
        )
    states = {c["verdict"] for c in classes}
    if violations or NOT_MET in states:
        overall = NOT_MET
    else:
        overall = UNKNOWN if UNKNOWN in states else MET
    return {
        "stack": evaluation.stack,
        "resources": evaluation.resource_count,
        "regions": objectives["regions"],
        "db_backend": objectives["db_backend"],
        # An example stack (platform-dr:example) names placeholder hosts: say so wherever it shows.
        "example": bool(objectives.get("example")),
        "pitr_window_days": objectives["pitr_window_days"],
        "classes": classes,
        "violations": [asdict(v) for v in violations],
        "evidence": evidence.to_dict(),
        "verdict": overall,
        "met": overall == MET,
    }


def posture_of(
    stack: str,
    root: Path | None = None,
    evidence_path: Path | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Validate the stack's config exactly as the program does, then evaluate and report."""
    root = locations.project_dir() if root is None else root
    parse_stack_config(read_stack_config(stack, root), stack)
    evidence_path = evidence_path or root / EVIDENCE_PATH
    return report(evaluate_stack(stack, root=root), evidence_path, now)


_MARK = {MET: "[green]met[/]", NOT_MET: "[red]NOT MET[/]", UNKNOWN: "[yellow]UNKNOWN[/]"}


def render(document: dict[str, Any]) -> None:
    regions = document["regions"]
    verdict = {
        MET: "[green]all classes met[/]",
        NOT_MET: "[red]NOT MET[/]",
        UNKNOWN: "[yellow]UNKNOWN[/] (RTO not proven)",
    }[document["verdict"]]
    example = " [yellow](example stack: placeholder hosts)[/]" if document.get("example") else ""
    out.print(
        f"[bold]{document['stack']}[/]{example}: {document['resources']} resources; primary "
        f"{regions['primary']}, DR {regions['dr']}, third {regions['third']}; database "
        f"{document['db_backend']}, {document['pitr_window_days']}-day PITR: {verdict}"
    )
    for c in document["classes"]:
        declared = rules.fmt_s(c["rpo_declared_s"]) if c["datasets"] else "-"
        out.print(
            f"  [bold]{c['name']:<11}[/] RPO {rules.fmt_s(c['rpo_objective_s']):>6} "
            f"(worst case enforced {declared})  RTO {rules.fmt_s(c['rto_objective_s']):>6}  "
            f"{_MARK[c['verdict']]}"
        )
        for line in c["mechanisms"] or ["(no data declared in this class)"]:
            out.print(f"      - {line}")
        for dataset, bounds in c.get("bounds", {}).items():
            for bound in bounds:
                colour = "green" if bound["enforced"] else "yellow"
                out.print(f"      [{colour}]{dataset} {bound['text']}[/]")
        backup = c.get("aws_backup") or {}
        for line in backup.get("mechanisms", []):
            out.print(f"      - {line}")
        if backup.get("gap_note"):
            out.print(f"      [dim]note: {backup['gap_note']}[/]")
        if c.get("rto"):
            _render_rto(c["rto"])
        for problem in c["problems"]:
            out.print(f"      [red]! {problem}[/]")
    for v in document["violations"]:
        out.print(f"  [red]violation[/] {v['rule']} on {v['resource']}: {v['message']}")
    evidence = document.get("evidence") or {}
    if not any(c.get("rto") for c in document["classes"]):
        pass  # no database: nothing was sized with the evidence
    elif evidence.get("status") == "ok":
        out.print(
            f"  [dim]evidence: {evidence['source']}, measured {evidence['measured_at']} "
            f"by `{evidence['command']}` ({evidence['host'].get('cpus')} CPUs)[/]"
        )
    else:
        out.print(f"  [yellow]evidence {evidence.get('status')}: {evidence.get('why')}[/]")
    out.print()


def _render_rto(rto: dict[str, Any]) -> None:
    out.print(f"      RTO {_MARK[rto['verdict']]}: {rto['why']}")
    for path in rto["paths"]:
        region = "survives region loss" if path["survives_region_loss"] else "in-region only"
        steps = " + ".join(f"{s['step']} {recovery.human_s(s['seconds'])}" for s in path["steps"])
        head = f"        {path['path']} ({region}): {_MARK[path['verdict']]}"
        if path["blocked"]:
            out.print(f"{head}, blocked: {path['blocked']}")
            continue
        out.print(f"{head}, {recovery.human_s(path['seconds'])} = {steps}")
        unknown = [s for s in path["steps"] if s["seconds"] is None]
        for step in unknown:
            out.print(f"          [yellow]{step['step']}: {step['note']}[/]")


def register(app: typer.Typer) -> None:
    @app.command()
    def posture(
        stack: list[str] = typer.Option(
            ["prod"], "--stack", "-s", help="Stack(s) to report on; repeat for several."
        ),
        json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
        project_dir: Path | None = typer.Option(
            None,
            "--project-dir",
            help="Directory holding Pulumi.yaml and the stack files (default: drctl's "
            "--project-dir, else the current directory).",
        ),
        diff: str | None = typer.Option(
            None, "--diff", metavar="REV", help="Markdown of what changed since git revision REV."
        ),
        evidence: Path | None = typer.Option(
            None,
            "--evidence",
            help="Restore evidence JSON (default: bench/results/restore.json in --project-dir).",
        ),
        allow_unknown: bool = typer.Option(
            False, "--allow-unknown", help="Exit 0 when a class is UNKNOWN (evidence missing)."
        ),
    ) -> None:
        """Offline report: per data class, objectives, enforced and detected bounds, the time
        each database recovery path needs, and a verdict.

        Exit 0 when every class is met, 1 when one is NOT MET or UNKNOWN (0 for UNKNOWN with
        --allow-unknown), 2 when the config is invalid.
        """
        if diff is not None:
            from scripts.checks import posture_diff  # evaluates both trees in subprocesses

            posture_diff.run(diff, stack, json_output, project_dir or locations.project_dir())
            return
        documents = []
        for name in stack:
            progress.print(f"evaluating stack {name} under Pulumi mocks ...")
            documents.append(posture_of(name, project_dir, evidence))  # errors: cli_errors.py
        if json_output:
            print_json({"stacks": documents})  # one shape for one stack and several
        else:
            for document in documents:
                render(document)
        failed = {NOT_MET} if allow_unknown else {NOT_MET, UNKNOWN}
        if any(d["verdict"] in failed for d in documents):
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
