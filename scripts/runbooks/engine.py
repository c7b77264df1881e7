"""A small journaled step engine: what `drctl failover`, `failback` and `rebuild` share.

A runbook is an ordered list of steps. Each step is printed as it starts and finishes (stderr),
timed, and recorded in a JSON journal as soon as it completes, so that:

- a rerun after a failure or an interruption resumes after the last completed step, with the
  results earlier steps recorded (a measured lag, a previous DNS value) available again;
- rerunning a finished runbook changes nothing: it reports the journal and exits 0;
- ``--json`` can report each step's timing and the total time to recovery (RTO).

Without ``--execute`` nothing changes: steps marked ``dry_run`` (read-only checks such as an
assessment) still run, the others print what they would do, and the journal is not written.

Steps should still be idempotent on their own: a crash can land between a step's action and its
journal record, so a step may see its own work already done when it is retried.

The journal lives behind the ``JournalStore`` interface (journal.py): a local file, or an S3
object in the DR region that any operator on any machine resumes. Each run has a ``run_id``
(kept across resumes) that steps record where they act, so a resumed run can recognise its own
earlier work (a standby it already promoted, a lease it already took).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts import locations
from scripts.common import DrctlError, ExitCode, confirm_execute, print_json, progress
from scripts.runbooks.journal import JOURNAL_VERSION, JournalStore, LocalJournal


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _seconds_between(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


@dataclass
class RunContext:
    """What a step sees: earlier steps' results (also from earlier runs) and the options."""

    execute: bool
    options: Mapping[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: str | None = None  # the run's id; in a dry run, the unfinished run's, if any

    def note(self, message: str) -> None:
        progress.print(f"    {message}", highlight=False, markup=False)


@dataclass(frozen=True)
class Step:
    """One step. ``action`` returns a JSON-able dict recorded in the journal (never secrets).

    name: stable id, used in the journal; title: what the operator reads; plan: one line that
    says what the step would do, shown in a dry run; dry_run: run it in a dry run too (read-only
    checks only); restores_service: False for steps after the service is back (re-arming
    backups): the run's RTO ends with the last step that has it True.
    """

    name: str
    title: str
    action: Callable[[RunContext], Mapping[str, Any] | None]
    plan: str = ""
    dry_run: bool = False
    restores_service: bool = True


@dataclass
class RunReport:
    command: str
    stack: str
    status: str  # completed | already-completed | dry-run
    journal: str
    steps: list[dict[str, Any]]
    rto_s: float | None
    executed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "stack": self.stack,
            "status": self.status,
            "executed": self.executed,
            "rto_s": None if self.rto_s is None else round(self.rto_s, 3),
            "journal": self.journal,
            "steps": self.steps,
        }


def journal_path(command: str, stack: str, override: str | Path | None = None) -> Path:
    if override:
        return Path(override)
    return locations.journal_dir() / f"{stack}-{command}.json"


def as_store(journal: str | Path | JournalStore | None, command: str, stack: str) -> JournalStore:
    """A journal store from an explicit store, a file path, or the default local file."""
    if journal is not None and not isinstance(journal, str | Path):
        return journal
    return LocalJournal(journal_path(command, stack, journal))


class Runbook:
    """Ordered steps with a journal. ``run`` is the only entry point."""

    def __init__(
        self,
        command: str,
        stack: str,
        steps: list[Step],
        *,
        journal: str | Path | JournalStore | None = None,
    ):
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique: {names}")
        self.command, self.stack, self.steps = command, stack, steps
        self.journal = as_store(journal, command, stack)

    # -- the run -----------------------------------------------------------------------------

    def run(
        self,
        *,
        execute: bool,
        yes: bool,
        options: Mapping[str, Any] | None = None,
        fresh: bool = False,
        what: str | None = None,
    ) -> RunReport:
        options = dict(options or {})
        progress.print(f"[bold]{self.command}[/] {self.stack}: {len(self.steps)} steps")
        if not confirm_execute(execute, yes, what or f"{self.command} {self.stack}"):
            return self._dry_run(options)
        with self.journal.locked():
            return self._execute(options, fresh)

    def _dry_run(self, options: dict[str, Any]) -> RunReport:
        ctx = RunContext(execute=False, options=options)
        previous = self.journal.load()
        if previous:
            # A dry run of an unfinished run sees its run id: its read-only checks can then
            # recognise what that run already did (a standby it promoted).
            if previous["status"] != "completed":
                ctx.run_id = previous.get("run_id")
            done = [s["name"] for s in previous["steps"] if s["status"] == "completed"]
            progress.print(
                f"journal {self.journal.where}: {previous['status']}, completed: "
                f"{', '.join(done) or 'none'}"
            )
        rows = []
        for index, step in enumerate(self.steps, 1):
            header = f"[{index}/{len(self.steps)}] {step.title}"
            if step.dry_run:
                progress.print(f"{header}: checking (read-only)")
                started = time.monotonic()
                result = dict(step.action(ctx) or {})
                ctx.results[step.name] = result
                rows.append(
                    _row(step, "checked", round(time.monotonic() - started, 3), result=result)
                )
            else:
                progress.print(f"{header}: would {step.plan or step.title.lower()}")
                rows.append(_row(step, "planned", None))
        return RunReport(self.command, self.stack, "dry-run", self.journal.where, rows, None, False)

    def _execute(self, options: dict[str, Any], fresh: bool) -> RunReport:
        doc = self.journal.load()
        if doc and fresh:
            if doc["status"] != "completed":
                raise DrctlError(
                    f"--fresh refused: the run in {self.journal.where} is {doc['status']}, not "
                    "completed; rerun without --fresh to resume it",
                    ExitCode.REFUSED,
                )
            progress.print(f"previous run archived to {self.journal.archive()}")
            doc = None
        if doc and doc["status"] == "completed":
            progress.print(
                f"already completed at {doc['finished_at']} (journal {self.journal.where}); "
                "nothing to do. A new run needs --fresh."
            )
            rows = [{**s, "status": "done-earlier"} for s in doc["steps"]]
            return RunReport(
                self.command,
                self.stack,
                "already-completed",
                self.journal.where,
                rows,
                doc.get("rto_s"),
                True,
            )
        if doc is None:
            doc = {
                "version": JOURNAL_VERSION,
                "run_id": uuid.uuid4().hex,
                "command": self.command,
                "stack": self.stack,
                "status": "running",
                "started_at": now_iso(),
                "finished_at": None,
                "rto_s": None,
                "runs": 0,
                "steps": [],
            }
        else:
            known = {s.name for s in self.steps}
            unknown = [s["name"] for s in doc["steps"] if s["name"] not in known]
            if unknown:
                raise DrctlError(
                    f"journal {self.journal.where} records steps this runbook does not have "
                    f"({', '.join(unknown)}); it belongs to another version or command",
                    ExitCode.PRECONDITION_FAILED,
                )
            progress.print(
                f"resuming run {doc.get('run_id', '?')} from journal {self.journal.where}"
            )
        doc["runs"] = doc.get("runs", 0) + 1
        doc["status"] = "running"
        records = {s["name"]: s for s in doc["steps"]}
        # A version-1 journal has no run id: it gets one now, kept for the rest of that run.
        doc.setdefault("run_id", uuid.uuid4().hex)
        ctx = RunContext(execute=True, options=options, run_id=doc["run_id"])
        for rec in doc["steps"]:
            if rec["status"] == "completed":
                ctx.results[rec["name"]] = rec.get("result") or {}
        rows: list[dict[str, Any]] = []
        total = len(self.steps)
        for index, step in enumerate(self.steps, 1):
            header = f"[{index}/{total}] {step.title}"
            rec = records.get(step.name)
            if rec and rec["status"] == "completed":
                progress.print(f"{header}: done in an earlier run ({rec['duration_s']:.2f}s)")
                rows.append({**rec, "status": "done-earlier"})
                continue
            progress.print(f"{header} ...")
            rec = {
                "name": step.name,
                "title": step.title,
                "status": "running",
                "started_at": now_iso(),
                "finished_at": None,
                "duration_s": None,
                "attempts": (rec or {}).get("attempts", 0) + 1,
                "result": None,
                "error": None,
            }
            records[step.name] = rec
            doc["steps"] = [records[s.name] for s in self.steps if s.name in records]
            self.journal.save(doc)
            started = time.monotonic()
            try:
                result = dict(step.action(ctx) or {})
            except BaseException as exc:
                rec.update(
                    status="failed",
                    finished_at=now_iso(),
                    duration_s=round(time.monotonic() - started, 3),
                    error=_describe(exc),
                )
                doc["status"] = "failed"
                self.journal.save(doc)
                progress.print(f"{header}: [red]failed[/] after {rec['duration_s']:.2f}s")
                if isinstance(exc, DrctlError):
                    raise DrctlError(
                        f"{step.title}: {exc}. Journal: {self.journal.where}", exc.code
                    ) from exc
                if not isinstance(exc, Exception):
                    raise
                raise DrctlError(
                    f"{step.title} failed: {_describe(exc)}. Progress is in the journal "
                    f"{self.journal.where}; fix the cause and rerun the same command to resume",
                    ExitCode.STEP_FAILED,
                ) from exc
            rec.update(
                status="completed",
                finished_at=now_iso(),
                duration_s=round(time.monotonic() - started, 3),
                result=result,
            )
            ctx.results[step.name] = result
            self.journal.save(doc)
            progress.print(f"{header}: [green]done[/] in {rec['duration_s']:.2f}s")
            rows.append(dict(rec))
        doc["status"] = "completed"
        doc["finished_at"] = now_iso()
        # Wall time from the first step to the last one that restores service, across
        # interrupted runs: that is how long the service was in recovery.
        service_back = [
            records[s.name]["finished_at"] for s in self.steps if s.restores_service
        ] or [doc["finished_at"]]
        doc["rto_s"] = round(_seconds_between(doc["started_at"], max(service_back)), 3)
        self.journal.save(doc)
        progress.print(f"{self.command} completed; time to recovery {doc['rto_s']:.2f}s")
        return RunReport(
            self.command, self.stack, "completed", self.journal.where, rows, doc["rto_s"], True
        )


def _row(step: Step, status: str, duration: float | None, result: Any = None) -> dict[str, Any]:
    return {
        "name": step.name,
        "title": step.title,
        "status": status,
        "duration_s": duration,
        "result": result,
    }


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    head = text[0] if text else ""
    if isinstance(exc, DrctlError):
        return head
    return f"{type(exc).__name__}: {head}" if head else type(exc).__name__


def emit(report: RunReport, as_json: bool) -> None:
    """The result on stdout: JSON for machines, a short table for people."""
    if as_json:
        print_json(report.to_json())
        return
    from scripts.common import out

    out.print(f"{report.command} {report.stack}: {report.status}")
    for row in report.steps:
        duration = "" if row.get("duration_s") is None else f"{row['duration_s']:.2f}s"
        out.print(f"  {row['status']:<13} {duration:>9}  {row['title']}")
    if report.rto_s is not None:
        out.print(f"time to recovery (RTO): {report.rto_s:.2f}s   journal: {report.journal}")


def run_command(build: Callable[[], Any], as_json: bool) -> None:
    """Run ``build()`` (which returns a RunReport) and turn DrctlError into its exit code."""
    from scripts.common import fail

    try:
        report = build()
    except DrctlError as err:
        fail(str(err), err.code)  # the CLI adds {"error": ...} under --json (cli_errors.py)
        return
    emit(report, as_json)
