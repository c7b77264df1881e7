"""`drctl verdict`: one final line for posture and drill together (what `make demo` ends with).

It reads what the two commands already wrote, ``drctl posture --json`` and the drill's
``report.json``, and decides nothing of its own: a class is met when posture says so, a scenario
when the drill says so. The combined verdict is NOT MET when anything is not met (a class, a
stack's resource violations, a scenario, or a drill that ran no scenario), UNKNOWN when nothing is
NOT MET but a posture class is UNKNOWN (its restore evidence is missing or stale), else MET.

    VERDICT: NOT MET — posture: 5 of 6 classes met (dr/critical: ...); drill: 5 of 5 scenarios
    met — report: evidence/drill-20261201T173000Z/report.html

Exit 0 when MET (and when UNKNOWN with ``--allow-unknown``, as posture does), 1 otherwise, 2
when an input cannot be read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from scripts.common import DrctlError, ExitCode, fail, print_json

MET, NOT_MET, UNKNOWN = "met", "not met", "unknown"  # posture's words (policy.recovery)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    line: str
    posture: dict[str, Any]
    drill: dict[str, Any]
    report: str

    def exit_code(self, allow_unknown: bool) -> ExitCode:
        if self.verdict == MET or (self.verdict == UNKNOWN and allow_unknown):
            return ExitCode.OK
        return ExitCode.OBJECTIVE_NOT_MET

    def to_record(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "line": self.line,
            "posture": self.posture,
            "drill": self.drill,
            "report": self.report,
        }


def posture_documents(document: Any) -> list[Mapping[str, Any]]:
    """The stacks of `posture --json` (``{"stacks": [...]}``; a file saved by an older drctl
    holds an object for one stack, a list for several)."""
    if isinstance(document, Mapping) and isinstance(document.get("stacks"), list):
        document = document["stacks"]
    stacks = [document] if isinstance(document, Mapping) else document
    if not isinstance(stacks, list) or not stacks:
        raise ValueError("no stack in it")
    for stack in stacks:
        if not isinstance(stack, Mapping) or not {"stack", "verdict", "classes"} <= set(stack):
            raise ValueError("a stack without stack, verdict and classes")
    return stacks


def _posture_part(stacks: Sequence[Mapping[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    classes = [(s["stack"], c) for s in stacks for c in s["classes"]]
    met = sum(1 for _, c in classes if c["verdict"] == MET)
    unknown = [(stack, c) for stack, c in classes if c["verdict"] == UNKNOWN]
    missed = [(stack, c) for stack, c in classes if c["verdict"] not in (MET, UNKNOWN)]
    why = [
        f"{stack}/{c['name']}: {'; '.join(c.get('problems') or ['not met'])}"
        for stack, c in missed + unknown
    ]
    for s in stacks:
        if s.get("violations"):
            why.append(f"{s['stack']}: {len(s['violations'])} resource violation(s)")
    verdicts = {s["verdict"] for s in stacks} | {c["verdict"] for _, c in classes}
    verdict = NOT_MET if NOT_MET in verdicts else UNKNOWN if UNKNOWN in verdicts else MET
    names = ", ".join(s["stack"] for s in stacks)
    text = f"posture: {met} of {len(classes)} classes met"
    if unknown:
        text += f", {len(unknown)} UNKNOWN"
    text += f" ({'; '.join(why)})" if why else f" ({names})"
    summary = {"verdict": verdict, "stacks": [s["stack"] for s in stacks], "classes_met": met}
    summary |= {"classes": len(classes), "not_met_because": why}
    return verdict, text, summary


def _drill_part(record: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    scenarios = record["scenarios"]
    met = sum(1 for s in scenarios if s["met"])
    why = [
        f"{s['name']}: {'; '.join(s.get('not_met_because') or ['not met'])}"
        for s in scenarios
        if not s["met"]
    ]
    if not scenarios:
        why.append("no scenario ran")
    verdict = MET if scenarios and not why else NOT_MET
    text = f"drill: {met} of {len(scenarios)} scenarios met"
    if why:
        text += f" ({'; '.join(why)})"
    summary = {"verdict": verdict, "scenarios_met": met, "scenarios": len(scenarios)}
    summary |= {"not_met_because": why}
    return verdict, text, summary


def combine(posture: Any, drill: Mapping[str, Any], report: str) -> Verdict:
    """The one verdict from posture's JSON and the drill's record."""
    p_verdict, p_text, p_summary = _posture_part(posture_documents(posture))
    d_verdict, d_text, d_summary = _drill_part(drill)
    both = {p_verdict, d_verdict}
    verdict = NOT_MET if NOT_MET in both else UNKNOWN if UNKNOWN in both else MET
    line = f"VERDICT: {verdict.upper()} — {p_text}; {d_text} — report: {report}"
    return Verdict(verdict, line, p_summary, d_summary, report)


def _read(option: str, path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise DrctlError(
            f"{option} {str(path)!r} cannot be read ({exc.strerror or exc}); it takes {what}",
            ExitCode.INVALID_CONFIG,
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DrctlError(
            f"{option} {str(path)!r} is not JSON ({exc}); it takes {what}",
            ExitCode.INVALID_CONFIG,
        ) from None


def verdict_of(posture_path: Path, drill_path: Path) -> Verdict:
    """Read both files and combine them; bad input is a DrctlError naming the file (exit 2)."""
    drill_json = drill_path / "report.json" if drill_path.is_dir() else drill_path
    posture = _read("--posture", posture_path, "what `drctl posture --json` printed")
    drill = _read("--drill", drill_json, "the report.json `drctl drill` wrote")
    if not isinstance(drill, Mapping) or not isinstance(drill.get("scenarios"), list):
        raise DrctlError(
            f"--drill {str(drill_json)!r} is not a drill record: no scenarios (the drill's "
            "report.json is)",
            ExitCode.INVALID_CONFIG,
        )
    html = drill_json.with_name("report.html")
    report = str(html) if html.exists() else f"{html} (missing)"
    try:
        return combine(posture, drill, report)
    except (ValueError, KeyError, TypeError) as exc:
        raise DrctlError(
            f"--posture {str(posture_path)!r} is not `drctl posture --json` output ({exc})",
            ExitCode.INVALID_CONFIG,
        ) from None


def register(app: typer.Typer) -> None:
    @app.command()
    def verdict(
        posture: Path = typer.Option(..., "--posture", help="What `drctl posture --json` wrote."),
        drill: Path = typer.Option(
            ..., "--drill", help="The drill's report.json, or its evidence directory."
        ),
        allow_unknown: bool = typer.Option(
            False, "--allow-unknown", help="Exit 0 when the verdict is UNKNOWN (as posture)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
    ) -> None:
        """One final line for posture and drill together, and the path of the drill's report.

        Exit 0 when MET (or UNKNOWN with --allow-unknown), 1 when NOT MET or UNKNOWN, 2 when a
        file cannot be read.
        """
        try:
            result = verdict_of(posture, drill)
        except DrctlError as exc:
            fail(str(exc), exc.code)
        if as_json:
            print_json(result.to_record())
        else:
            print(result.line)
        raise SystemExit(int(result.exit_code(allow_unknown)))
