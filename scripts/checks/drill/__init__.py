"""`drctl drill --local`: the spec's quarterly DR simulation on an embedded platform (`make demo`).

The drill starts its own platform, breaks it the five ways the spec names (and loses the primary
region for the region rebuild in priority order), recovers it with the code an operator uses, and
measures the result against prod's declared objectives on a stated time scale (every objective and
mechanism interval divided by N), so that an objective can be missed. docs/drill.md explains
every figure. One module per role:

- ``model``: the data model of the evidence (scenario and run records);
- ``datacheck``: the exact data check against a recovery point, and the measured RPO;
- ``timescale``: the time scale and the mechanism intervals read from the evaluated prod stack;
- ``writers``: the continuous writers that run across every failure;
- ``monitor``: health monitor, Route 53's failover answer, the TTL-honouring resolver;
- ``platform``: the drill context and clock, the database site, the WAL observer;
- ``pitr`` (human-error), ``restore`` (database-corruption), ``outage``
  (data-centre-outage, through ``failover_runbook``), ``objects`` (security-breach,
  accidental-file-deletion), ``priority_rebuild`` (priority-rebuild, through `drctl recover`):
  the scenario families;
- ``faults``: what ``--inject`` can break; ``runner``: the scenarios and ``run_drill``;
  ``report``: evidence files and the table; ``command``: the CLI.
"""

from scripts.checks.drill.command import register
from scripts.checks.drill.faults import FAULT_NAMES, FAULTS
from scripts.checks.drill.runner import SCENARIO_NAMES, SCENARIOS, run_drill

__all__ = ["FAULTS", "FAULT_NAMES", "SCENARIOS", "SCENARIO_NAMES", "register", "run_drill"]
