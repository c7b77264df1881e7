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


def oneshot_service(description: str, script: str, env_file: str | None = None) -> str:
    """A systemd oneshot service running the bash ``script`` with pipefail, as postgres."""
    return "\n".join(
        [
            "[Unit]",
            f"Description={description}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            "User=postgres",
            *([f"EnvironmentFile={env_file}"] if env_file else []),
            # pipefail: a failed first command must fail the unit even if the last one succeeded.
            f"ExecStart=/bin/bash -o pipefail -c {systemd_exec_arg(script)}",
            "",
        ]
    )


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
