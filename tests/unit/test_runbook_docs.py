"""Every runbook page (docs/runbooks/*.md) has a Mermaid sequence diagram that Mermaid can parse.

Not a renderer: the checks are the rules of Mermaid's sequence-diagram lexer that a hand-written
diagram breaks most easily. Message, note and alias text ends at ``;`` or ``#`` (a ``;`` splits
the statement, a ``#`` starts a comment); every arrow joins declared participants; every
``alt``/``opt``/``loop``/``par``/``rect`` block is closed by ``end``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
PAGES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
DECLARED = re.compile(r"^(?:participant|actor)\s+(\S+?)(?:\s+as\s+.*)?$")
ARROW = re.compile(r"^([^-:\s]+?)\s*(?:-->>|->>|-->|->|--x|-x|--\)|-\))\s*[+-]?([^:\s]+)\s*:(.*)$")
NOTE = re.compile(r"^Note\s+(?:over|left of|right of)\s+([^:]+):(.*)$", re.IGNORECASE)
BLOCKS = ("alt", "opt", "loop", "par", "rect", "critical", "break")


def _diagrams(page: Path) -> list[list[str]]:
    found, current = [], None
    for line in page.read_text().splitlines():
        if line.strip() == "```mermaid":
            current = []
        elif current is not None and line.strip() == "```":
            found.append(current)
            current = None
        elif current is not None:
            current.append(line.strip())
    return [d for d in found if d and d[0] == "sequenceDiagram"]


def problems(lines: list[str]) -> list[str]:
    """What Mermaid would reject or misread in one sequence diagram (empty: none)."""
    found, declared, depth = [], set(), 0
    for n, line in enumerate(lines[1:], 2):
        if not line or line.startswith("%%") or line == "autonumber":
            continue
        if re.search(r"[;#]", line):
            found.append(f"line {n}: ';' or '#' ends the statement early: {line}")
        if m := DECLARED.match(line):
            declared.add(m.group(1))
        elif m := ARROW.match(line):
            for actor in m.group(1, 2):
                if actor not in declared:
                    found.append(f"line {n}: {actor} is not a declared participant")
        elif m := NOTE.match(line):
            for actor in m.group(1).split(","):
                if actor.strip() not in declared:
                    found.append(f"line {n}: note over undeclared {actor.strip()}")
        elif line.split()[0] in BLOCKS:
            depth += 1
        elif line.split()[0] in ("else", "and", "option"):
            if depth == 0:
                found.append(f"line {n}: {line.split()[0]} outside a block")
        elif line == "end":
            depth -= 1
            if depth < 0:
                found.append(f"line {n}: end without a block")
        else:
            found.append(f"line {n}: not a statement Mermaid knows: {line}")
    if depth > 0:
        found.append(f"{depth} block(s) never closed with end")
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_runbook_page_has_a_sequence_diagram_mermaid_can_parse(page):
    diagrams = _diagrams(page)
    assert diagrams, f"{page.name} has no ```mermaid sequenceDiagram"
    for lines in diagrams:
        assert problems(lines) == []


def test_the_checks_catch_what_breaks_a_diagram():
    good = ["sequenceDiagram", "actor Op as Operator", "participant S3 as Bucket"]
    assert problems(good + ["Op->>S3: list versions", "Note over Op,S3: dry run"]) == []
    assert problems(good + ["Op->>S3: list; then copy"])[0].startswith("line 4: ';' or '#'")
    assert problems(good + ["Op->>DB: promote"]) == ["line 4: DB is not a declared participant"]
    assert problems(good + ["opt fill", "Op->>S3: copy"]) == ["1 block(s) never closed with end"]
