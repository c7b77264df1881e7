"""What a stack derives, printed for the docs (no cloud access, no secret values).

    .venv/bin/python -m scripts.describe backup-plan prod   # per class: audit, RTO, validation
    .venv/bin/python -m scripts.describe secrets prod       # app config a stack declares, by region

A command-level module: it reads stack files and evaluates the program under Pulumi's mocks, which
components must not do themselves (imports run one way).
"""

from __future__ import annotations

import sys

from components import backup_plan
from components.objectives import parse_objectives
from scripts.local.evaluate import evaluate_stack, read_stack_config


def backup_plan_table(stack: str) -> str:
    """components/backup_plan.py's derivation table for a stack."""
    return backup_plan.describe(parse_objectives(read_stack_config(stack), stack))


def secrets(stack: str) -> str:
    """What a stack declares for its app config, by evaluating it under mocks (no values)."""
    ev = evaluate_stack(stack)
    lines = [
        f"namespace {ev.outputs['configParameterPrefix']}, regions {ev.outputs['configRegions']}"
    ]
    lines.append(f"{'kind':<10} {'name':<44} {'type / class':<14} where")
    for r in ev.resources:
        if not r.name.startswith("app-config-"):
            continue
        where = f"{r.region} ({'created' if r.custom else 'read'})"
        if r.type == "aws:ssm/parameter:Parameter":
            kind, name = "parameter", r.inputs.get("name", r.import_id)
            detail = r.inputs.get("type", "-")
        elif r.type == "aws:secretsmanager/secret:Secret":
            kind, name = "secret", r.inputs.get("name") or r.import_id.rsplit(":", 1)[-1]
            detail = (r.tags or {}).get("backup-class", "-")
            replicas = [x["region"] for x in r.inputs.get("replicas", [])]
            if replicas:
                where += f", replica {', '.join(replicas)}"
        elif r.type == "aws:secretsmanager/secretRotation:SecretRotation":
            kind, name, detail = "rotation", r.name, "-"
        else:
            continue
        lines.append(f"{kind:<10} {name:<44} {detail:<14} {where}")
    lines.append(f"snapshot buckets: {', '.join(sorted(ev.outputs['configBucketNames']))}")
    return "\n".join(lines)


WHAT = {"backup-plan": backup_plan_table, "secrets": secrets}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in WHAT:
        print(f"usage: python -m scripts.describe {{{'|'.join(WHAT)}}} [STACK]", file=sys.stderr)
        return 2
    print(WHAT[argv[0]](argv[1] if len(argv) > 1 else "prod"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
