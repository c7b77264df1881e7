"""The drill's HTML report (``report.html``): the evidence as people want to look at it.

``render_html`` takes the drill's record exactly as ``report.json`` holds it
(``DrillReport.to_record()``, fields in model.py), so a saved report can be rendered again without
the drill. Per scenario it shows the verdict (NOT MET in words, with every reason the drill
gave), measured RPO and RTO against the objectives on the drill's time scale as a bar chart, and
a timeline of the scenario's own recorded steps with their durations. Nothing here knows a
scenario or a step by name: a new scenario or phase appears without a change.

The page is one self-contained file: plotly.js is inlined once in the head (no CDN, no network),
charts are SVG bar charts, and every figure is also in a plain HTML table.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from components.objectives import format_duration
from scripts.checks.drill.model import PHASES

MET_COLOUR, NOT_MET_COLOUR, OBJECTIVE_COLOUR = "#1a7f37", "#cf222e", "#8c959f"
# One colour per phase in recovery order (model.PHASES); an unknown phase is drawn grey.
_PALETTE = (
    "#bdbdbd",
    "#9e9e9e",
    "#cf222e",
    "#fb8c00",
    "#f9a825",
    "#6d4c41",
    "#8e24aa",
    "#3949ab",
    "#1e88e5",
    "#00897b",
    "#43a047",
    "#7cb342",
    "#c0ca33",
    "#1a7f37",
    "#00acc1",
    "#546e7a",
)
PHASE_COLOURS = dict(zip(PHASES, _PALETTE, strict=True))
# Set-up and the write load run before the failure; they are in the step table, not on the
# timeline, where their tens of seconds would squeeze the recovery into a sliver.
OFF_TIMELINE = ("setup", "load")
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1f2328; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; }
.verdict { font-weight: 700; padding: .15em .5em; border-radius: 4px; color: #fff; }
.verdict.met { background: #1a7f37; } .verdict.not-met { background: #cf222e; }
.banner { font-size: 1.2em; padding: .6em .9em; border-radius: 6px; margin: 1em 0; }
.banner.met { background: #dafbe1; border: 1px solid #1a7f37; }
.banner.not-met { background: #ffebe9; border: 2px solid #cf222e; }
.reasons { background: #ffebe9; border-left: 4px solid #cf222e; padding: .5em 1em; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: .25em .6em;
       border-bottom: 1px solid #d0d7de; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.scenario { border-top: 1px solid #d0d7de; }
.muted { color: #59636e; } pre { overflow-x: auto; background: #f6f8fa; padding: .6em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.3f} s" if abs(seconds) < 10 else f"{seconds:.1f} s"


def _objective(seconds: float, declared: int) -> str:
    return f"{seconds:g} s (≙ {format_duration(declared)})"


def _verdict_badge(met: bool) -> str:
    return (
        '<span class="verdict met">MET</span>'
        if met
        else '<span class="verdict not-met">NOT MET</span>'
    )


def render_html(record: Mapping[str, Any]) -> str:
    """The whole page for one drill record (``report.json``)."""
    from plotly.offline import get_plotlyjs

    scenarios = record["scenarios"]
    met = sum(1 for s in scenarios if s["met"])
    scale = record["time_scale"]
    title = f"DR drill evidence: {record['started_at']}"
    if record["all_met"]:
        banner = f"MET: all {len(scenarios)} scenarios met their objectives"
    else:
        missed = ", ".join(s["name"] for s in scenarios if not s["met"]) or "no scenario ran"
        banner = f"NOT MET: {met} of {len(scenarios)} scenarios met their objectives ({missed})"
    durations = record.get("durations_s", {})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request from a file:// page
        f"<title>{_e(title)}</title><style>{_STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p id="verdict" class="banner {"met" if record["all_met"] else "not-met"}">'
        f"{_e(banner)}</p>",
        f"<p>Stack <code>Pulumi.{_e(record['stack'])}.yaml</code>. Time scale <b>{scale:g}</b>: "
        f"every objective and every mechanism interval is divided by {scale:g}; measured figures "
        f"are real seconds on that scale (an objective of 9 s at time scale 100 stands for "
        f"15 min). Drill {_s(durations.get('drill'))}; set-up {_s(durations.get('setup'))} and "
        f"teardown {_s(durations.get('teardown'))} excluded.</p>",
    ]
    if record.get("faults"):
        parts.append(
            f"<p>Injected faults: {', '.join(f'<code>{_e(f)}</code>' for f in record['faults'])}"
            "</p>"
        )
    parts += [_summary_table(scenarios)]
    for scenario in scenarios:
        parts.append(_scenario_section(scenario, scale))
    if record.get("simulated"):
        parts += ["<h2>What is simulated</h2><ul>"]
        parts += [f"<li>{_e(text)}</li>" for text in record["simulated"]]
        parts += ["</ul>"]
    parts.append(
        "<p class=muted>Drawn from <code>report.json</code> beside this file (the same figures as "
        "<code>report.md</code>); docs/drill.md explains each one.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


def _summary_table(scenarios: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        '<table id="summary"><thead><tr><th>scenario</th><th>class</th><th>RPO measured</th>'
        "<th>RPO objective</th><th>RTO measured</th><th>RTO objective</th><th>verdict</th>"
        "</tr></thead><tbody>"
    ]
    for s in scenarios:
        o = s["objectives"]
        rows.append(
            f'<tr data-scenario="{_e(s["name"])}"><td><a href="#scenario-{_e(s["name"])}">'
            f"{_e(s['title'])}</a> <code>{_e(s['name'])}</code></td><td>{_e(s['data_class'])}</td>"
            f'<td class="num">{_s(s["rpo_s"])}</td>'
            f"<td>{_e(_objective(o['rpo_s'], o['declared_rpo_s']))}</td>"
            f'<td class="num">{_s(s["rto_s"])}</td>'
            f"<td>{_e(_objective(o['rto_s'], o['declared_rto_s']))}</td>"
            f"<td>{_verdict_badge(s['met'])}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _scenario_section(s: Mapping[str, Any], scale: float) -> str:
    name = s["name"]
    parts = [
        f'<section class="scenario" id="scenario-{_e(name)}" data-scenario="{_e(name)}">',
        f"<h2>{_e(s['title'])} <code>{_e(name)}</code> {_verdict_badge(s['met'])}</h2>",
    ]
    if not s["met"]:
        reasons = s.get("not_met_because") or ["the drill gave no reason"]
        parts.append(
            '<div class="reasons"><b>NOT MET because:</b><ul>'
            + "".join(f"<li>{_e(r)}</li>" for r in reasons)
            + "</ul></div>"
        )
    parts.append(
        f"<p><b>Incident:</b> {_e(s['incident'])}.<br><b>Recovery:</b> {_e(s['recovery'])}.</p>"
    )
    if s.get("faults"):
        parts.append(f"<p><b>Injected:</b> {_e(', '.join(s['faults']))}</p>")
    if s.get("data"):
        d = s["data"]
        parts.append(
            f"<p><b>Data</b> against {_e(d['point'])}: {d['back']} of {d['promised']} promised "
            f"writes back exactly; missing {d['missing']}, stale {d['stale']}, wrong "
            f"{d['wrong']}, after the point {d['after_point']}, unknown {d['unknown']}, in "
            f"flight {d['uncertain']}.</p>"
        )
    parts += _tier_and_check_tables(s)
    parts.append(_figure_html(objective_chart(s, scale), f"objectives-{name}"))
    if s.get("steps"):
        parts.append(_figure_html(timeline_chart(s), f"timeline-{name}"))
        parts.append(
            f"<p class=muted>Every step, {', '.join(OFF_TIMELINE)} included (before the "
            "failure, off the timeline); seconds from the failure instant:</p>"
        )
        parts.append(_steps_table(s["steps"]))
    else:
        parts.append("<p><b>No step was recorded:</b> the scenario stopped before its first.</p>")
    if s.get("evidence"):
        parts.append(
            "<details><summary>Raw figures</summary><pre>"
            + _e(json.dumps(s["evidence"], indent=2, default=str))
            + "</pre></details>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _tier_and_check_tables(s: Mapping[str, Any]) -> list[str]:
    """A scenario's own further verdicts (the region rebuild's tiers and named checks)."""
    parts = []
    if s.get("tiers"):
        parts.append(
            '<table class="tiers"><thead><tr><th>tier</th><th>RTO objective</th>'
            "<th>measured</th><th>verdict</th></tr></thead><tbody>"
        )
        parts += [
            f"<tr><td>{_e(t['tier'])}</td><td>{_e(_objective(t['rto_s'], t['declared_rto_s']))}"
            f'</td><td class="num">{_s(t["elapsed_s"]) if t["healthy"] else "not healthy"}</td>'
            f"<td>{_verdict_badge(t['met'])}</td></tr>"
            for t in s["tiers"]
        ]
        parts.append("</tbody></table>")
    if s.get("checks"):
        parts.append('<ul class="checks">')
        parts += [
            f"<li>{'ok' if c['ok'] else '<b>NOT ok</b>'}: {_e(c['name'])} ({_e(c['detail'])})</li>"
            for c in s["checks"]
        ]
        parts.append("</ul>")
    return parts


def _steps_table(steps: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        "<table><thead><tr><th>step</th><th>phase</th><th>start (s)</th><th>end (s)</th>"
        "<th>duration (s)</th></tr></thead><tbody>"
    ]
    rows += [
        f"<tr><td>{_e(t['name'])}</td><td>{_e(t['phase'])}</td>"
        f'<td class="num">{t["start_s"]:+.3f}</td><td class="num">{t["end_s"]:+.3f}</td>'
        f'<td class="num">{t["duration_s"]:.3f}</td></tr>'
        for t in steps
    ]
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _figure_html(figure: Any, div_id: str) -> str:
    return figure.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG
    )


def objective_chart(s: Mapping[str, Any], scale: float) -> Any:
    """Measured RPO and RTO beside their objectives (seconds on the drill's time scale)."""
    import plotly.graph_objects as go

    o = s["objectives"]
    labels = ["RPO", "RTO"]
    measured = [s["rpo_s"], s["rto_s"]]
    objectives = [o["rpo_s"], o["rto_s"]]
    declared = [o["declared_rpo_s"], o["declared_rto_s"]]
    colours = [
        MET_COLOUR if m is not None and m <= obj else NOT_MET_COLOUR
        for m, obj in zip(measured, objectives, strict=True)
    ]
    missing = ["none came back", "never came back"]
    figure = go.Figure(
        [
            go.Bar(
                name="measured",
                x=labels,
                y=[0 if m is None else m for m in measured],
                marker_color=colours,
                text=[
                    miss if m is None else _s(m) for m, miss in zip(measured, missing, strict=True)
                ],
                textposition="outside",
            ),
            go.Bar(
                name=f"objective / {scale:g}",
                x=labels,
                y=objectives,
                marker_color=OBJECTIVE_COLOUR,
                text=[
                    f"{obj:g} s (≙ {format_duration(d)})"
                    for obj, d in zip(objectives, declared, strict=True)
                ],
                textposition="outside",
            ),
        ]
    )
    figure.update_layout(
        title=f"{s['title']}: measured against the objective (time scale {scale:g})",
        barmode="group",
        yaxis_title="seconds",
        height=340,
        margin={"t": 60, "b": 40, "l": 60, "r": 20},
        legend={"orientation": "h", "y": -0.15},
    )
    return figure


def timeline_chart(s: Mapping[str, Any]) -> Any:
    """The scenario's steps on one time axis from the failure instant, one bar per step."""
    import plotly.graph_objects as go

    steps = [t for t in s["steps"] if t["phase"] not in OFF_TIMELINE]
    labels = [f"{i + 1}. {_short(t['name'])}" for i, t in enumerate(steps)]
    traces = []
    for phase in dict.fromkeys(t["phase"] for t in steps):
        mine = [(label, t) for label, t in zip(labels, steps, strict=True) if t["phase"] == phase]
        colour = PHASE_COLOURS.get(phase, OBJECTIVE_COLOUR)
        spans = [(label, t) for label, t in mine if t["duration_s"] > 0]
        instants = [(label, t) for label, t in mine if t["duration_s"] <= 0]
        if spans:
            traces.append(
                go.Bar(
                    name=phase,
                    legendgroup=phase,
                    orientation="h",
                    y=[label for label, _ in spans],
                    base=[t["start_s"] for _, t in spans],
                    x=[t["duration_s"] for _, t in spans],
                    marker_color=colour,
                    text=[f"{t['duration_s']:.3f} s" for _, t in spans],
                    textposition="auto",
                    hovertext=[
                        f"{t['name']}<br>{t['start_s']:+.3f} s to {t['end_s']:+.3f} s"
                        for _, t in spans
                    ],
                    hoverinfo="text",
                )
            )
        if instants:
            traces.append(
                go.Scatter(
                    name=phase,
                    legendgroup=phase,
                    showlegend=not spans,
                    mode="markers",
                    y=[label for label, _ in instants],
                    x=[t["start_s"] for _, t in instants],
                    marker={"color": colour, "symbol": "diamond", "size": 11},
                    hovertext=[f"{t['name']}<br>at {t['start_s']:+.3f} s" for _, t in instants],
                    hoverinfo="text",
                )
            )
    figure = go.Figure(traces)
    figure.add_vline(x=0, line_color=NOT_MET_COLOUR, line_dash="dot")
    if s["rto_s"] is not None:
        figure.add_vline(
            x=s["rto_s"],
            line_color=MET_COLOUR if s["met"] else NOT_MET_COLOUR,
            line_dash="dash",
            annotation_text=f"service back, RTO {_s(s['rto_s'])}",
            annotation_position="top left",
        )
    objective = s["objectives"]["rto_s"]
    if steps and objective <= max(t["end_s"] for t in steps):  # the budget ran out on screen
        figure.add_vline(
            x=objective,
            line_color=OBJECTIVE_COLOUR,
            line_dash="dash",
            annotation_text=f"RTO objective {objective:g} s",
            annotation_position="bottom left",
        )
    figure.update_layout(
        title=f"{s['title']}: steps from the failure instant (s)",
        barmode="overlay",
        xaxis_title="seconds from the failure instant",
        # Steps in the order they started, whichever phase (trace) they belong to.
        yaxis={
            "autorange": "reversed",
            "automargin": True,
            "categoryorder": "array",
            "categoryarray": labels,
        },
        height=120 + 28 * len(steps),
        margin={"t": 60, "b": 40, "l": 20, "r": 20},
    )
    return figure


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
