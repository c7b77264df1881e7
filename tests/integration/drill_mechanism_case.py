"""A drill run whose mechanism cannot meet its objective (tests/integration/test_drill.py).

prod is evaluated as usual, then the rendered postgresql.conf fragment the database hosts receive
is changed to ``archive_timeout = '1h'`` (a config fault: four times the 15 min critical RPO), and
the database-corruption scenario runs with the mechanisms read from that artefact. Prints the
report as JSON; exits 1 when an objective is not met, like ``drctl drill``.

    python -m tests.integration.drill_mechanism_case
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

from scripts.checks.drill.runner import run_drill
from scripts.checks.drill.timescale import POSTGRES_CONF, mechanisms_from_evaluation
from scripts.local.evaluate import evaluate_stack


def main() -> int:
    evaluation = evaluate_stack("prod")
    artefacts = dict(evaluation.outputs["databaseArtefacts"])
    rendered = artefacts[POSTGRES_CONF]
    if "archive_timeout = '300s'" not in rendered:
        raise SystemExit(f"unexpected rendered {POSTGRES_CONF}:\n{rendered}")
    artefacts[POSTGRES_CONF] = rendered.replace(
        "archive_timeout = '300s'", "archive_timeout = '1h'"
    )
    patched = replace(evaluation, outputs={**evaluation.outputs, "databaseArtefacts": artefacts})
    report = run_drill(["database-corruption"], mechanisms=mechanisms_from_evaluation(patched))
    json.dump(report.to_record(), sys.stdout, indent=2, default=str)
    return 0 if report.all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
