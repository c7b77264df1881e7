"""The layout shows the architecture: no module over ~600 lines, and imports run one way.

    commands (scripts/cli.py, scripts/describe.py, scripts/doc_tables.py)
      -> runbooks / checks (scripts/runbooks/, scripts/checks/)
        -> data operations (scripts/dataops/)
          -> local platform / components / policy (scripts/local/, components/, policy/)
            -> objectives (components/objectives*)

``scripts/common.py`` (exit codes, consoles, the execute gate) sits under every scripts layer and
imports none of them; components and policy never import ``scripts``. Imports are read with
``ast``, including those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600
PACKAGES = ("components", "policy", "scripts")

# (prefix, layer, rank): a module may import modules of its own rank or lower.
LAYERS: tuple[tuple[str, str, int], ...] = (
    ("components.objectives", "objectives", 0),
    ("scripts.common", "common", 1),
    ("components", "components", 1),
    ("policy", "policy", 1),
    ("scripts.local", "local", 1),
    ("scripts.dataops", "dataops", 2),
    ("scripts.checks", "checks", 3),
    ("scripts.runbooks", "runbooks", 3),
    ("scripts.cli", "commands", 4),
    ("scripts.describe", "commands", 4),
    ("scripts.doc_tables", "commands", 4),
)
# Same-rank pairs that must still not meet.
FORBIDDEN: set[tuple[str, str]] = {
    ("components", "local"),
    ("policy", "local"),
    ("components", "common"),
    ("policy", "common"),
    ("common", "components"),
    ("common", "policy"),
    ("common", "local"),
}


def layer_of(module: str) -> tuple[str, int] | None:
    for prefix, name, rank in LAYERS:
        if module == prefix or module.startswith(prefix + ".") or module.startswith(prefix + "_"):
            return name, rank
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level or None]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def violations(source: str, module: str, where: str) -> list[str]:
    """Each import of ``source`` (module ``module``) that runs against the layering."""
    mine = layer_of(module)
    if mine is None:
        return []
    bad = []
    for line, target in imported(ast.parse(source), module):
        theirs = layer_of(target)
        if theirs is None:
            continue
        upward = theirs[1] > mine[1]
        if upward or (mine[0], theirs[0]) in FORBIDDEN:
            bad.append(f"{where}:{line}: {module} ({mine[0]}) imports {target} ({theirs[0]})")
    return bad


def python_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_module_is_over_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in python_files()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by role (limit {MAX_LINES} lines): {long}"


def test_imports_run_one_way():
    found = []
    for path in python_files():
        found += violations(path.read_text(), module_name(path), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("components.keys", "from scripts.local.evaluate import read_stack_config", "local"),
        ("policy.rules", "def f():\n    import scripts.common\n", "common"),
        ("scripts.dataops.backup", "from scripts.checks.verify import x", "checks"),
        ("scripts.dataops.backup", "from scripts.cli import app", "commands"),
        ("scripts.local.postgres", "from scripts.dataops import pgbackrest", "dataops"),
        ("scripts.checks.posture", "from scripts.cli import app", "commands"),
        ("components.objectives", "from components.keys import MultiRegionKey", "components"),
        ("scripts.dataops.render", "from ..checks import drill", "checks"),
    ],
)
def test_the_import_check_catches_each_wrong_direction(module, source, expected):
    found = violations(source, module, "x.py")
    assert len(found) == 1 and found[0].endswith(f"({expected})"), found


def test_the_allowed_directions_pass():
    for module, source in (
        ("scripts.cli", "from scripts.runbooks import failover\nfrom scripts.dataops import x"),
        ("scripts.checks.drill.runner", "from scripts.runbooks.failover import run"),
        ("scripts.dataops.backup", "from scripts.local.postgres import PG_BIN"),
        ("components.keys", "from components.objectives import Objectives\nimport policy.rules"),
        ("scripts.common", "import json"),
    ):
        assert violations(source, module, "x.py") == [], module
