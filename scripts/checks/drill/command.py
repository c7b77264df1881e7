"""`drctl drill`: the CLI over ``run_drill``; progress on stderr, the table or JSON on stdout."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import typer

from scripts.checks.drill.faults import FAULTS, check_faults
from scripts.checks.drill.report import (
    EVIDENCE_ROOT,
    check_out_dir,
    new_evidence_dir,
    print_table,
    write_evidence,
)
from scripts.checks.drill.runner import SCENARIO_NAMES, run_drill
from scripts.checks.drill.timescale import DEFAULT_TIME_SCALE, check_time_scale
from scripts.common import DrctlError, ExitCode, fail, out, print_json, progress

_SCENARIO_HELP = f"Run only these (repeatable): {', '.join(SCENARIO_NAMES)}."
_INJECT_HELP = "Inject a fault into the scenario it targets (repeatable); see --list-faults."


def _install_sigterm() -> Callable[[], None]:
    """SIGTERM unwinds like Ctrl-C, so every server and moto still get stopped."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _discard_if_empty(out_dir: Path, created: bool) -> None:
    """A run that wrote no evidence leaves no empty evidence directory of its own making."""
    if created:
        with contextlib.suppress(OSError):
            out_dir.rmdir()


def _list_faults(as_json: bool) -> None:
    if as_json:
        print_json({"faults": [f.to_record() for f in FAULTS]})
        return
    for f in FAULTS:
        out.print(f"[bold]{f.name}[/] -> {f.scenario}", markup=True, highlight=False)
        out.print(f"    changes: {f.changes}", markup=False, highlight=False)
        out.print(f"    caught by: {f.caught_by}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command()
    def drill(
        local: bool = typer.Option(
            False, "--local", help="Run on embedded defaults (local PostgreSQL, moto)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        out_dir: Path = typer.Option(
            None, "--out", help="Evidence directory (default: evidence/drill-<UTC timestamp>)."
        ),
        scenario: list[str] = typer.Option(None, "--scenario", help=_SCENARIO_HELP),
        time_scale: float = typer.Option(
            DEFAULT_TIME_SCALE,
            "--time-scale",
            help="Divide every objective and mechanism interval by this factor.",
        ),
        inject: list[str] = typer.Option(None, "--inject", help=_INJECT_HELP),
        list_faults: bool = typer.Option(
            False, "--list-faults", help="List the faults --inject takes, and exit."
        ),
        keep: bool = typer.Option(False, "--keep", help="Keep the drill's files for post-mortem."),
    ) -> None:
        """The quarterly DR simulation: break, recover, measure RPO/RTO against the objectives."""
        if list_faults:
            _list_faults(as_json)
            return
        if not local:
            fail(
                "--local is required: the drill runs on embedded defaults only (use "
                "`drctl verify` against a live stack)",
                ExitCode.INVALID_CONFIG,
            )
        names = list(scenario or SCENARIO_NAMES)
        for name in names:
            if name not in SCENARIO_NAMES:
                fail(
                    f"--scenario {name!r} is not valid: one of {', '.join(SCENARIO_NAMES)}",
                    ExitCode.INVALID_CONFIG,
                )
        check_time_scale(time_scale)  # every argument is checked before --out is created
        check_faults(inject or (), names)
        # Checked (and claimed) before anything starts: a drill's evidence is never lost at the end.
        named = out_dir
        try:
            if out_dir is None:
                out_dir = new_evidence_dir()
                check_out_dir(out_dir)
                created = True
            else:
                created = check_out_dir(out_dir)
        except DrctlError as exc:
            fail(str(exc), exc.code)
        except OSError as exc:
            fail(
                f"--out {str(named or EVIDENCE_ROOT)!r} is not a writable directory "
                f"({exc.strerror or exc}); nothing was started",
                ExitCode.INVALID_CONFIG,
            )
        restore = _install_sigterm()
        try:
            report = run_drill(names, time_scale=time_scale, faults=inject or (), keep=keep)
        except DrctlError as exc:
            _discard_if_empty(out_dir, created)
            fail(str(exc), exc.code)
        except KeyboardInterrupt:
            _discard_if_empty(out_dir, created)
            progress.print("interrupted: the embedded platform was torn down; no evidence written")
            raise SystemExit(int(ExitCode.INTERRUPTED)) from None
        finally:
            restore()
        paths = write_evidence(report, out_dir)
        progress.print(
            f"drill took {report.drill_s:.1f} s at time scale {report.time_scale:g} (set-up "
            f"{report.setup_s:.1f} s, teardown {report.teardown_s:.1f} s); evidence: "
            f"{paths['markdown']}, {paths['json']}, {paths['html']}"
        )
        if as_json:
            record = report.to_record()
            record["evidence"] = {k: str(v) for k, v in paths.items()}
            print_json(record)
        else:
            print_table(report)
        if not report.all_met:
            raise SystemExit(int(ExitCode.OBJECTIVE_NOT_MET))
