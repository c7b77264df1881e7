"""`drctl posture --diff REV`: how a change moves each data class's posture, for pull requests.

Both sides are evaluated the same way, each in its own tree and its own Python process: the
revision is exported with ``git archive`` into a temporary directory, and ``drctl posture --json``
runs there with that tree first on the import path, so the old revision is judged by its own
``__main__.py``, ``components`` and ``policy/rules.py``, not by the working tree's. The working
tree side runs the same command in the project directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from policy import rules
from scripts.common import DrctlError, ExitCode, print_json, progress

WORKING_TREE = "working tree"
CHANGE_LABELS = {
    "met": "verdict",
    "rpo_declared_s": "declared RPO",
    "rpo_objective_s": "RPO objective",
}


def _git(root: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, **kwargs)


def export_revision(root: Path, rev: str, into: Path) -> Path:
    """Write the tracked files of ``rev`` under ``into``; returns the project directory in it."""
    resolved = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", text=True)
    if resolved.returncode != 0:
        raise DrctlError(
            f"--diff {rev!r} is not a commit in the git repository at {root}; "
            "give a branch, tag or commit (e.g. origin/main, HEAD~1)",
            ExitCode.INVALID_CONFIG,
        )
    prefix = _git(root, "rev-parse", "--show-prefix", text=True).stdout.strip()
    archive = _git(root, "archive", "--format=tar", resolved.stdout.strip())
    if archive.returncode != 0:
        raise DrctlError(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / prefix


def posture_in(tree: Path, stack: str) -> dict[str, Any] | None:
    """``drctl posture --json`` for ``stack`` as the code in ``tree`` computes; None if no stack."""
    if not (tree / f"Pulumi.{stack}.yaml").exists():
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    env.pop("DRCTL_PROJECT_DIR", None)  # each side reads its own tree's stack files (cwd)
    result = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "posture", "--stack", stack, "--json"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    # posture exits 1 when a class is not met: that is a posture, not a failure.
    if result.returncode not in (ExitCode.OK, ExitCode.OBJECTIVE_NOT_MET) or not result.stdout:
        # The last line that says something: rich draws boxes around click's usage errors.
        said = [ln.strip(" │╭╮╰╯─") for ln in result.stderr.splitlines()]
        last = ([ln for ln in said if ln] or ["no output"])[-1]
        raise DrctlError(
            f"posture of stack {stack} could not be evaluated in {tree}: {last}",
            ExitCode.PRECONDITION_FAILED,
        )
    document = json.loads(result.stdout)
    # {"stacks": [...]} since one shape serves one stack and several; a single object before
    return document["stacks"][0] if "stacks" in document else document


def _dataset(mechanism: str) -> str:
    return mechanism.split(":", 1)[0]


def _bound_lines(c: dict[str, Any]) -> list[str]:
    """A class's enforced and detected bounds as lines (documents before bounds had none)."""
    return [f"{d}: {b['text']}" for d, bounds in (c.get("bounds") or {}).items() for b in bounds]


def diff_postures(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """What changed per class: verdict, declared/objective RPO, mechanisms, bounds, problems."""
    old_classes = {c["name"]: c for c in (old or {}).get("classes", [])}
    classes = []
    for c in new["classes"]:
        before = old_classes.get(c["name"])
        if before is not None:
            before = {**before, "bound_lines": _bound_lines(before)}
        c = {**c, "bound_lines": _bound_lines(c)}
        entry: dict[str, Any] = {"name": c["name"], "changes": []}
        if before is None:
            entry["changes"].append("new class")
            before = {
                "met": None,
                "rpo_declared_s": None,
                "rpo_objective_s": None,
                "mechanisms": [],
                "problems": [],
                "bound_lines": [],
            }
        for field in ("met", "rpo_declared_s", "rpo_objective_s"):
            entry[field] = {"before": before[field], "after": c[field]}
            if before[field] != c[field]:
                entry["changes"].append(field)
        for field, name in (
            ("mechanisms", "mechanisms"),
            ("problems", "problems"),
            ("bound_lines", "bounds"),
        ):
            removed = [m for m in before[field] if m not in c[field]]
            added = [m for m in c[field] if m not in before[field]]
            entry[name] = {"removed": removed, "added": added}
            if removed or added:
                entry["changes"].append(name)
        classes.append(entry)
    for name in old_classes.keys() - {c["name"] for c in new["classes"]}:
        classes.append({"name": name, "changes": ["class removed"]})
    old_violations = [json.dumps(v, sort_keys=True) for v in (old or {}).get("violations", [])]
    new_violations = [json.dumps(v, sort_keys=True) for v in new["violations"]]
    changed = [c for c in classes if c["changes"]]
    resources_before = old["resources"] if old else 0
    return {
        "stack": new["stack"],
        "stack_is_new": old is None,
        "resources": {
            "before": resources_before,
            "after": new["resources"],
            "delta": new["resources"] - resources_before,
        },
        "met": {"before": old["met"] if old else None, "after": new["met"]},
        "classes": changed,
        "violations": {
            "removed": [json.loads(v) for v in old_violations if v not in new_violations],
            "added": [json.loads(v) for v in new_violations if v not in old_violations],
        },
        "changed": bool(changed)
        or old_violations != new_violations
        or resources_before != new["resources"],
    }


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "**NOT MET**")


def _arrow(before: str, after: str) -> str:
    return after if before == after else f"{before} → {after}"


def render_markdown(diff: dict[str, Any], rev: str) -> str:
    stack, res = diff["stack"], diff["resources"]
    title = f"### Posture of `{stack}`: `{rev}` → {WORKING_TREE}"
    if diff["stack_is_new"]:
        title += f" (stack `{stack}` is new)"
    delta = f"{res['delta']:+d}" if res["delta"] else "±0"
    lines = [title, "", f"Resources: {res['before']} → {res['after']} ({delta})", ""]
    if not diff["changed"]:
        lines.append(
            f"No posture change for `{stack}`: every class keeps its verdict, "
            "mechanisms and declared RPO."
        )
        return "\n".join(lines) + "\n"
    if not diff["classes"]:
        lines.append("No class changed its verdict, mechanisms or declared RPO.")
    else:
        lines += [
            "| class | verdict | worst-case RPO declared | RPO objective | changed |",
            "|---|---|---|---|---|",
        ]
        for c in diff["classes"]:
            if "class removed" in c["changes"]:
                lines.append(f"| {c['name']} | removed | | | class removed |")
                continue
            met, decl, obj = c["met"], c["rpo_declared_s"], c["rpo_objective_s"]
            lines.append(
                f"| {c['name']} | {_arrow(_verdict(met['before']), _verdict(met['after']))} "
                f"| {_arrow(_rpo(decl['before']), _rpo(decl['after']))} "
                f"| {_arrow(_rpo(obj['before']), _rpo(obj['after']))} "
                f"| {', '.join(CHANGE_LABELS.get(x, x) for x in c['changes'])} |"
            )
        for c in diff["classes"]:
            mech, probs = c.get("mechanisms"), c.get("problems")
            bounds = c.get("bounds") or {"removed": [], "added": []}
            if not (
                mech
                and (
                    mech["removed"]
                    or mech["added"]
                    or probs["removed"]
                    or probs["added"]
                    or bounds["removed"]
                    or bounds["added"]
                )
            ):
                continue
            lines += ["", f"**{c['name']}**", ""]
            lines += [f"- mechanism removed: {m}" for m in mech["removed"]]
            lines += [f"- mechanism added: {m}" for m in mech["added"]]
            lines += [f"- bound removed: {b}" for b in bounds["removed"]]
            lines += [f"- bound added: {b}" for b in bounds["added"]]
            lines += [f"- problem fixed: {p}" for p in probs["removed"]]
            lines += [f"- new problem: {p}" for p in probs["added"]]
    violations = diff["violations"]
    if violations["removed"] or violations["added"]:
        lines += ["", "**Secure-default violations**", ""]
        lines += [f"- fixed: {v['rule']} on {v['resource']}" for v in violations["removed"]]
        lines += [
            f"- new: {v['rule']} on {v['resource']}: {v['message']}" for v in violations["added"]
        ]
    return "\n".join(lines) + "\n"


def _rpo(seconds: int | None) -> str:
    return "-" if seconds is None else rules.fmt_s(seconds)


def posture_diff(rev: str, stacks: list[str], project_dir: Path) -> list[dict[str, Any]]:
    diffs = []
    with tempfile.TemporaryDirectory(prefix="drctl-posture-diff-") as tmp:
        progress.print(f"exporting {rev} with git archive ...")
        old_tree = export_revision(project_dir, rev, Path(tmp))
        for stack in stacks:
            progress.print(f"evaluating stack {stack} at {rev} ...")
            old = posture_in(old_tree, stack)
            progress.print(f"evaluating stack {stack} in the {WORKING_TREE} ...")
            new = posture_in(project_dir, stack)
            if new is None:
                raise DrctlError(
                    f"--stack {stack!r}: Pulumi.{stack}.yaml is not in {project_dir}",
                    ExitCode.INVALID_CONFIG,
                )
            diffs.append(diff_postures(old, new))
    return diffs


def run(rev: str, stacks: list[str], json_output: bool, project_dir: Path) -> None:
    """The ``posture --diff`` command body: print, then exit 1 when the new posture is not met."""
    diffs = posture_diff(rev, stacks, project_dir)  # a DrctlError is the CLI's to report
    if json_output:
        print_json({"diff": rev, "stacks": diffs})  # one shape for one stack and several
    else:
        sys.stdout.write("\n".join(render_markdown(d, rev) for d in diffs))
    if not all(d["met"]["after"] for d in diffs):
        raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
