"""systemd unit text shared by every rendered host job (dumps, monitors, guards, timers).

Pure: no I/O, no Pulumi. systemd expands ``$VAR`` and ``%`` specifiers in ExecStart itself, so
every command goes through ``systemd_exec_arg``; the integration tests undo that quoting the way
systemd does before they run a rendered command.
"""

from __future__ import annotations


def systemd_exec_arg(script: str) -> str:
    """``script`` as one double-quoted ExecStart word: systemd reads %% as % and $$ as $."""
    escaped = script.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def service_unit(
    description: str,
    exec_start: str,
    *,
    kind: str = "oneshot",
    env_file: str | None = None,
    unit_extra: tuple[str, ...] = (),
    service_extra: tuple[str, ...] = (),
    wanted_by: str | None = None,
) -> str:
    """A service run as postgres once the network is up: the one layout every rendered unit
    shares. ``exec_start`` is the ExecStart value, already quoted for systemd."""
    lines = [
        "[Unit]",
        f"Description={description}",
        "After=network-online.target",
        "Wants=network-online.target",
        *unit_extra,
        "",
        "[Service]",
        f"Type={kind}",
        "User=postgres",
        *([f"EnvironmentFile={env_file}"] if env_file else []),
        f"ExecStart={exec_start}",
        *service_extra,
        "",
    ]
    if wanted_by:
        lines += ["[Install]", f"WantedBy={wanted_by}", ""]
    return "\n".join(lines)


def oneshot_service(description: str, script: str, env_file: str | None = None, **extra) -> str:
    """A systemd oneshot service running the bash ``script`` with pipefail, as postgres."""
    # pipefail: a failed first command must fail the unit even if the last one succeeded.
    command = f"/bin/bash -o pipefail -c {systemd_exec_arg(script)}"
    return service_unit(description, command, env_file=env_file, **extra)


def timer(description: str, on_calendar: str, *extra: str) -> str:
    return "\n".join(
        [
            "[Unit]",
            f"Description={description}",
            "",
            "[Timer]",
            f"OnCalendar={on_calendar}",
            *extra,
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


def interval_timer(description: str, interval_s: float) -> str:
    """A timer that fires ``interval_s`` after boot and after each run (sub-minute capable)."""
    return "\n".join(
        [
            "[Unit]",
            f"Description={description}",
            "",
            "[Timer]",
            f"OnBootSec={interval_s:g}s",
            f"OnUnitActiveSec={interval_s:g}s",
            "AccuracySec=1s",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
