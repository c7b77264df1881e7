"""Tables on stdout that never cut an identifier.

On a terminal, a Rich table whose cells fold (wrap inside the cell) instead of ending in "…";
anywhere else (a pipe, a file, a CI log) plain aligned lines as wide as they need to be, so the
log says exactly which parameter drifted. ``--json`` remains the machine-readable form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from scripts.common import out


def print_table(
    title: str,
    header: Iterable[str],
    rows: Iterable[Iterable[Any]],
    console: Console | None = None,
) -> None:
    console = console or out
    header = [str(h) for h in header]
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    if not console.is_terminal:
        widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
        lines = [
            title,
            *(
                "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in [header, *cells]
            ),
        ]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title)
    for h in header:
        table.add_column(h, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)
