"""Re-arm protection on the promoted DR primary: it must not run a day without backups.

After a failover the promoted server archives with the config it had as a standby, which names
repo1 in the lost region; pgBackRest 2.45's archive-push fails while any configured repository is
unreachable, so ``pg_wal`` would fill and nothing would be backed up. This step, on the DR host:

1. installs the rendered re-arm config (``rearm/pgbackrest/pgbackrest.conf``, built by
   components/pgbackrest_config.rearm_settings: the DR repository as repo1, plus a repository in
   a newly configured region as repo2 when the stack declares one);
2. ``pgbackrest start`` (in case a guard stopped it), ``stanza-create`` (creates the stanza in a
   new repository, checks the existing one), ``check`` (a WAL switch archived end to end);
3. an immediate full backup to every repository in the new config;
4. installs the rendered backup timers (``rearm/systemd/``) and enables them.

Its duration is the step's ``duration_s`` in the runbook report; the runbook's RTO stops before
it (service is back at validate), the drill reads both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from components.pgbackrest_schedule import REARM_DIR
from scripts.common import DrctlError, ExitCode
from scripts.dataops.hosts import DbNode, write_text
from scripts.dataops.reseed import pgbackrest_start

CONFIG_ARTEFACT = f"{REARM_DIR}/pgbackrest/pgbackrest.conf"
UNITS_PREFIX = f"{REARM_DIR}/systemd/"


def rearm(node: DbNode, artefacts: Mapping[str, str]) -> dict[str, Any]:
    artefacts = node.artefacts if node.artefacts is not None else artefacts
    conf = artefacts.get(CONFIG_ARTEFACT)
    if not conf:
        raise DrctlError(
            f"the stack outputs carry no {CONFIG_ARTEFACT} (databaseArtefacts): deploy this "
            "version (pulumi up) so the re-arm config is rendered, then rerun to resume",
            ExitCode.PRECONDITION_FAILED,
        )
    repos = sorted({int(m) for m in re.findall(r"^repo(\d+)-type=", conf, flags=re.M)})
    write_text(node.host, node.pgbackrest_config, conf, mode="0640")
    run = node.host.run
    result: dict[str, Any] = {
        "host": node.host.name,
        "config": node.pgbackrest_config,
        "repos": repos,
        "pgbackrest_start": pgbackrest_start(node),
    }
    run([*node.pgbackrest, "stanza-create"], timeout=600)
    run([*node.pgbackrest, "check"], timeout=600)
    result["check"] = "archive-push and the stanza verified"
    backups = []
    for repo in repos:
        run([*node.pgbackrest, "--type=full", f"--repo={repo}", "backup"], timeout=6 * 3600)
        backups.append(f"repo{repo}: full")
    result["backups"] = backups
    units = {
        path[len(UNITS_PREFIX) :]: text
        for path, text in artefacts.items()
        if path.startswith(UNITS_PREFIX)
    }
    for name, text in sorted(units.items()):
        write_text(node.host, f"{node.unit_dir.rstrip('/')}/{name}", text, mode="0644")
    timers = sorted(name for name in units if name.endswith(".timer"))
    if node.systemd:
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "enable", "--now", *timers])
        result["timers"] = {"enabled": timers}
    else:
        result["timers"] = {
            "installed": timers,
            "enable_with": "systemctl enable --now " + " ".join(timers),
        }
    return result


def disarm(node: DbNode, artefacts: Mapping[str, str]) -> dict[str, Any]:
    """Failback: the DR host is a standby again. Its regular config returns (repo2 is what its
    restore_command reads) and the backup timers re-arm enabled there go off."""
    artefacts = node.artefacts if node.artefacts is not None else artefacts
    conf = artefacts.get("pgbackrest/pgbackrest.conf")
    if not conf:
        raise DrctlError(
            "the stack outputs carry no pgbackrest/pgbackrest.conf (databaseArtefacts)",
            ExitCode.PRECONDITION_FAILED,
        )
    write_text(node.host, node.pgbackrest_config, conf, mode="0640")
    timers = sorted(
        path[len(UNITS_PREFIX) :]
        for path in artefacts
        if path.startswith(UNITS_PREFIX) and path.endswith(".timer")
    )
    if node.systemd:
        node.host.run(["systemctl", "disable", "--now", *timers])
        return {"config": node.pgbackrest_config, "timers": {"disabled": timers}}
    return {
        "config": node.pgbackrest_config,
        "timers": {
            "to_disable": timers,
            "disable_with": "systemctl disable --now " + " ".join(timers),
        },
    }
