"""The drill's evidence: ``report.md`` and ``report.json`` (the same figures), and the table on
stdout. Everything is drawn from ``DrillReport.to_record()`` (model.py documents its fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.objectives import format_duration
from scripts.checks.drill.model import DrillReport
from scripts.checks.drill.runner import fmt_s

HOW_MEASURED = (
    "RPO = failure instant minus the acknowledgement time of the newest write acknowledged "
    "before the failure that came back. RTO = failure instant until the service accepted "
    "writes again and was validated, through detection (the declared health check and alarm), "
    "fencing, promotion or restore, and DNS with the record's TTL honoured by the "
    "application's resolver. Data is verified exactly against the recovery point each "
    "mechanism promises: every write acknowledged before it back with its exact content, "
    "nothing written after it back (point-in-time recovery), no unknown key, every overwritten "
    "or deleted object back at its prior version."
)


def _objective(seconds: float, declared: int) -> str:
    return f"{seconds:g} s (≙ {format_duration(declared)})"


def render_markdown(report: DrillReport) -> str:
    record = report.to_record()
    verdict = "all scenarios met their objectives" if report.all_met else "objectives NOT met"
    scale = report.time_scale
    lines = [
        f"# DR drill evidence: {report.started_at}",
        "",
        f"Stack: `Pulumi.{report.stack}.yaml`. Result: **{verdict}**. Time scale **{scale:g}**: "
        f"every objective and every mechanism interval is divided by {scale:g}; measured figures "
        f"are real seconds on that scale.",
        f"Drill duration {report.drill_s:.1f} s (set-up {report.setup_s:.1f} s, "
        f"teardown {report.teardown_s:.1f} s, excluded).",
    ]
    if report.faults:
        lines.append(f"Injected faults: {', '.join(f'`{f}`' for f in report.faults)}.")
    lines += [
        "",
        HOW_MEASURED,
        "",
        "| scenario | class | data | RPO measured | RPO objective | RTO measured | RTO objective "
        "| met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in report.scenarios:
        lines.append(
            f"| {s.title} | {s.data_class} | {_cell(s.data.summary() if s.data else 'n/a')} | "
            f"{fmt_s(s.rpo_s)} | {_objective(s.rpo_objective_s, s.declared_rpo_s)} | "
            f"{fmt_s(s.rto_s)} | {_objective(s.rto_objective_s, s.declared_rto_s)} | "
            f"{'yes' if s.met else '**NO**'} |"
        )
    mech = record["mechanisms"]
    lines += ["", "## Mechanisms (declared, and as run on the time scale)", ""]
    lines += _mechanism_lines(mech)
    lines += ["", "## What is simulated", ""] + [f"- {text}." for text in report.simulated]
    for s in report.scenarios:
        rec = s.to_record()
        lines += [
            "",
            f"## {s.title} (`{s.name}`)",
            "",
            f"- Incident: {s.incident}.",
            f"- Recovery: {s.recovery}.",
            f"- Verdict: {'met' if s.met else 'NOT met: ' + '; '.join(s.reasons())}.",
        ]
        if s.faults:
            lines.append(f"- Injected: {', '.join(s.faults)}.")
        if s.recovery_point:
            rp = s.recovery_point
            lines.append(f"- Recovery point ({rp['kind']}): `{rp['value']}`, {rp['how']}.")
        if s.detection:
            lines.append(f"- Detection: {_detection(s.detection)}.")
        if s.data:
            d = s.data
            lines += [
                f"- Data: {d.summary()}; {d.uncertain} in flight (either outcome accepted).",
                f"- SHA-256 of the promised content `{d.expected_checksum}`",
                f"- SHA-256 of what came back      `{d.recovered_checksum}`",
            ]
            for kind, keys in d.examples.items():
                lines.append(f"- {kind}: {', '.join(keys)}")
        if s.error:
            lines.append(f"- **Error**: {s.error}")
        lines += _tier_lines(rec)
        if rec["steps"]:
            lines += [
                "",
                "| step | phase | start (s) | end (s) | duration (s) |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {_cell(t['name'])} | {t['phase']} | {t['start_s']:+.3f} | {t['end_s']:+.3f} | "
                f"{t['duration_s']:.3f} |"
                for t in rec["steps"]
            ]
        if s.evidence:
            lines += ["", "```json", json.dumps(s.evidence, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"


def _tier_lines(rec: dict[str, Any]) -> list[str]:
    """Per-tier RTO and the named checks (the region rebuild in priority order)."""
    lines = []
    if rec["tiers"]:
        lines += ["", "| tier | RTO objective | measured | met |", "|---|---|---|---|"]
        lines += [
            f"| {t['tier']} | {_objective(t['rto_s'], t['declared_rto_s'])} | "
            f"{fmt_s(t['elapsed_s']) if t['healthy'] else 'not healthy'} | "
            f"{'yes' if t['met'] else '**NO**'} |"
            for t in rec["tiers"]
        ]
    if rec["checks"]:
        lines.append("")
        lines += [
            f"- {'ok' if c['ok'] else '**NOT ok**'}: {c['name']} ({c['detail']})"
            for c in rec["checks"]
        ]
    return lines


def _mechanism_lines(mech: dict[str, Any]) -> list[str]:
    declared, scaled, effective = mech["declared"], mech["scaled"], mech["effective"]
    det, det_scaled = declared["detection"], scaled["detection"]
    rows = [
        ("archive_timeout", declared["archive_timeout_s"], effective["archive_timeout_s"]),
        ("pgBackRest push timeout", declared["push_timeout_s"], effective["push_timeout_s"]),
        (
            "health check interval x threshold",
            f"{declared['detection']['poll_interval_s']:g} s x "
            f"{declared['detection']['failure_threshold']}",
            f"{scaled['detection']['poll_interval_s']:g} s x "
            f"{scaled['detection']['failure_threshold']}",
        ),
        (
            "health status published to CloudWatch every",
            det["publication_s"],
            det_scaled["publication_s"],
        ),
        (
            "alarm period x periods",
            f"{det['alarm_period_s']:g} s x {det['alarm_periods']}",
            f"{det_scaled['alarm_period_s']:g} s x {det_scaled['alarm_periods']}",
        ),
        (
            "detection, worst case",
            declared["detection"]["worst_case_s"],
            scaled["detection"]["worst_case_s"],
        ),
        ("DNS TTL", declared["dns_ttl_s"], scaled["dns_ttl_s"]),
    ]
    for kind, value in declared["backup_interval_s"].items():
        rows.append(
            (f"longest gap between {kind} backups", value, scaled["backup_interval_s"][kind])
        )
    out = ["| mechanism | declared | as run |", "|---|---|---|"]
    for name, a, b in rows:
        out.append(f"| {name} | {_seconds(a)} | {_seconds(b)} |")
    out.append("")
    out += [f"- {key}: {where}" for key, where in declared["sources"].items()]
    return out


def _seconds(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:g} s"
    return "n/a" if value is None else str(value)


def _detection(d: dict[str, Any]) -> str:
    if "at_s" not in d:
        return d["by"]
    return (
        f"{d['by']} every {d['poll_interval_s']:g} s, unhealthy after "
        f"{d['failure_threshold']} failures (at {d['unhealthy_at_s']} s); alarm {d['alarm']} "
        f"fired at {d['at_s']} s"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def check_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and prove it is writable, before anything is started."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / ".drctl-write-test"
    probe.write_text("")
    probe.unlink()


def write_evidence(report: DrillReport, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "report.md", "json": out_dir / "report.json"}
    paths["markdown"].write_text(render_markdown(report))
    paths["json"].write_text(json.dumps(report.to_record(), indent=2, default=str) + "\n")
    return paths


def print_table(report: DrillReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from scripts.common import out

    # Piped output (make demo | tee) gets the full table, not one squeezed to 80 columns.
    console = out if out.is_terminal else Console(highlight=False, width=150)
    table = Table(
        title=f"DR drill against {report.stack} objectives, time scale {report.time_scale:g}",
        title_justify="left",
    )
    for column in ("scenario", "data", "RPO", "RPO obj.", "RTO", "RTO obj.", "met"):
        table.add_column(column)
    for s in report.scenarios:
        table.add_row(
            s.name + (f" [{', '.join(s.faults)}]" if s.faults else ""),
            s.data.summary() if s.data else (s.error or "n/a")[:60],
            fmt_s(s.rpo_s),
            _objective(s.rpo_objective_s, s.declared_rpo_s),
            fmt_s(s.rto_s),
            _objective(s.rto_objective_s, s.declared_rto_s),
            "[green]yes[/]" if s.met else "[red]NO[/]",
        )
    console.print(table)
    console.print(
        f"all met: {'yes' if report.all_met else 'NO'}; time scale {report.time_scale:g} "
        f"(objectives and mechanism intervals divided by {report.time_scale:g}); drill "
        f"{report.drill_s:.1f} s (set-up and teardown excluded)"
    )
    for s in report.scenarios:
        if not s.met:
            console.print(
                f"{s.name} NOT met: {'; '.join(s.reasons())}", highlight=False, markup=False
            )
