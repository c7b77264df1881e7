"""`drctl supabase check`: is hosted Supabase's point-in-time recovery actually on?

The PITR add-on can only be enabled by the operator (dashboard, Project Settings > Add-ons), so
code cannot declare it; this check reads it back through the Supabase Management API,
``GET /v1/projects/{ref}/database/backups``, whose answer carries ``pitr_enabled``,
``walg_enabled``, ``region`` and ``physical_backup_data`` (earliest/latest restorable point, unix
seconds). The token comes from ``SUPABASE_ACCESS_TOKEN`` and is never printed or logged.

HTTP goes through an injected transport (``urllib`` by default) so tests point it at a local
server.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from scripts.common import DrctlError, ExitCode, progress

API_URL = "https://api.supabase.com"
TOKEN_ENV = "SUPABASE_ACCESS_TOKEN"
API_URL_ENV = "SUPABASE_API_URL"
_REF = re.compile(r"^[a-z]{20}$")

# (method, url, headers, timeout) -> (HTTP status, body)
Transport = Callable[[str, str, dict[str, str], float], tuple[int, bytes]]


def urllib_transport(
    method: str, url: str, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DrctlError(
            f"cannot reach the Supabase Management API at {url.split('/v1/')[0]}: {reason}",
            ExitCode.PRECONDITION_FAILED,
        ) from None


@dataclass
class PitrStatus:
    project_ref: str
    region: str
    pitr_enabled: bool
    walg_enabled: bool
    earliest: str | None
    latest: str | None
    required_window_days: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(float(unix), UTC).isoformat().replace("+00:00", "Z")


def check_project_ref(ref: str) -> str:
    if not _REF.match(ref or ""):
        raise DrctlError(
            f"--project-ref {ref!r} is not valid: a Supabase project ref, 20 lowercase letters "
            "(the subdomain of <ref>.supabase.co)",
            ExitCode.INVALID_CONFIG,
        )
    return ref


def fetch_backups(
    ref: str, token: str, transport: Transport = urllib_transport, api_url: str = API_URL
) -> dict:
    url = f"{api_url.rstrip('/')}/v1/projects/{ref}/database/backups"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    status, body = transport("GET", url, headers, 15.0)
    if status in (401, 403):
        raise DrctlError(
            f"the Supabase Management API refused the token in {TOKEN_ENV} (HTTP {status}); "
            "create a personal access token with access to the project",
            ExitCode.PRECONDITION_FAILED,
        )
    if status == 404:
        raise DrctlError(
            f"Supabase project {ref!r} not found (HTTP 404)", ExitCode.PRECONDITION_FAILED
        )
    if status != 200:
        raise DrctlError(
            f"the Supabase Management API answered HTTP {status} for {ref!r}",
            ExitCode.STEP_FAILED,
        )
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or "pitr_enabled" not in data:
        raise DrctlError(
            "unexpected answer from the Supabase Management API: no 'pitr_enabled' field",
            ExitCode.STEP_FAILED,
        )
    return data


def evaluate_backups(
    ref: str,
    data: dict,
    *,
    pitr_window_days: int,
    critical_rpo_s: int,
    now: datetime | None = None,
) -> PitrStatus:
    """Turn the API answer into problems, each saying what to do."""
    now = now or datetime.now(UTC)
    physical = data.get("physical_backup_data") or {}
    earliest = physical.get("earliest_physical_backup_date_unix")
    latest = physical.get("latest_physical_backup_date_unix")
    status = PitrStatus(
        project_ref=ref,
        region=str(data.get("region") or ""),
        pitr_enabled=bool(data.get("pitr_enabled")),
        walg_enabled=bool(data.get("walg_enabled")),
        earliest=_iso(earliest),
        latest=_iso(latest),
        required_window_days=pitr_window_days,
    )
    if not status.pitr_enabled:
        status.problems.append(
            "the PITR add-on is off: daily backups alone can lose up to 24 h. Enable it in the "
            "dashboard (Project Settings > Add-ons > Point in time recovery), with a retention of "
            f"at least {pitr_window_days} days"
        )
        return status
    if not status.walg_enabled:
        status.problems.append("WAL archiving (walg_enabled) is off although PITR is on")
    if earliest is None or latest is None:
        status.problems.append("no physical backup yet: nothing can be restored to a point in time")
        return status
    reach_days = (now.timestamp() - float(earliest)) / 86400
    if reach_days < pitr_window_days:
        status.problems.append(
            f"PITR reaches back {reach_days:.1f} days, the objective is {pitr_window_days} days "
            "(a newly enabled add-on fills its window over time; otherwise raise its retention)"
        )
    age = now.timestamp() - float(latest)
    if age > critical_rpo_s:
        status.problems.append(
            f"the latest restorable point is {int(age)} s old, beyond the critical RPO of "
            f"{critical_rpo_s} s"
        )
    return status


def check(
    ref: str,
    *,
    pitr_window_days: int,
    critical_rpo_s: int,
    token: str | None = None,
    transport: Transport = urllib_transport,
    api_url: str | None = None,
    now: datetime | None = None,
) -> PitrStatus:
    check_project_ref(ref)
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token:
        raise DrctlError(
            f"{TOKEN_ENV} is not set: a Supabase personal access token is needed to read the "
            "project's backup settings",
            ExitCode.PRECONDITION_FAILED,
        )
    api_url = api_url or os.environ.get(API_URL_ENV) or API_URL
    progress.print(f"reading backup settings of Supabase project {ref}")
    data = fetch_backups(ref, token, transport, api_url)
    return evaluate_backups(
        ref, data, pitr_window_days=pitr_window_days, critical_rpo_s=critical_rpo_s, now=now
    )


def register(app) -> None:
    import typer

    from components.database_settings import parse_database_settings
    from components.objectives import parse_objectives
    from scripts.common import fail, out, print_json
    from scripts.local.evaluate import read_stack_config

    supabase_app = typer.Typer(
        help="Hosted Supabase checks (the PITR add-on).", no_args_is_help=True
    )

    @supabase_app.command("check")
    def check_command(
        stack: str = typer.Option("prod", help="Stack whose objectives the project must meet."),
        project_ref: str = typer.Option(
            "", help="Supabase project ref; default the stack's supabaseProjectRef."
        ),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """Check that the PITR add-on is on and covers the stack's PITR window and RPO."""
        try:
            raw = read_stack_config(stack)
            objectives = parse_objectives(raw, stack)
            ref = (
                project_ref
                or parse_database_settings(
                    {k.split(":", 1)[-1]: v for k, v in raw.items()}
                ).supabase_project_ref
            )
            if not ref:
                raise DrctlError(
                    f"no project ref: pass --project-ref or set platform-dr:supabaseProjectRef "
                    f"in Pulumi.{stack}.yaml",
                    ExitCode.INVALID_CONFIG,
                )
            if not project_ref and objectives.example:
                raise DrctlError(
                    f"stack {stack} is an example (platform-dr:example): its supabaseProjectRef "
                    "is a placeholder; pass --project-ref for a real project",
                    ExitCode.INVALID_CONFIG,
                )
            status = check(
                ref,
                pitr_window_days=objectives.pitr_window_days,
                critical_rpo_s=objectives.of("critical").rpo_s,
            )
        except DrctlError as err:
            fail(str(err), err.code)
        except (ValueError, FileNotFoundError) as err:  # ConfigError is a ValueError
            fail(str(err), ExitCode.INVALID_CONFIG)
        if as_json:
            print_json(status.to_json())
        else:
            verdict = "ok" if status.ok else "NOT MET"
            out.print(
                f"supabase {status.project_ref} ({status.region}): PITR {verdict}; "
                f"restorable {status.earliest} .. {status.latest}"
            )
            for problem in status.problems:
                out.print(f"  - {problem}")
        raise typer.Exit(int(ExitCode.OK if status.ok else ExitCode.OBJECTIVE_NOT_MET))

    app.add_typer(supabase_app, name="supabase")
