"""`drctl backup` and `drctl restore`: database backups and point-in-time restores.

The stack's ``dbBackend`` decides what runs:

- ``self-managed``: pgBackRest with the config components/pgbackrest_config.py renders
  (scripts/dataops/pgbackrest.py). ``backup`` writes to every repository in turn (repo1 in the
  primary region, repo2 in the DR region), like the timers do. ``restore`` restores into a NEW data
  directory, replays to the target and proves recovery reached it.
- ``rds``: ``restore`` is RestoreDBInstanceToPointInTime into a new instance
  (scripts/dataops/rds_restore.py); RDS takes its backups itself, so ``backup`` refuses.
- ``supabase``: hosted PITR is restored from the Supabase dashboard; both commands refuse.
"""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from components.objectives import ConfigError, Objectives, format_duration, parse_objectives
from components.pgbackrest_config import BACKUP_TYPES, CONFIG_PATH, DEFAULT_STANZA
from scripts.common import DrctlError, ExitCode, confirm_execute, fail, out, print_json, progress
from scripts.dataops.long_work import (
    TIMEOUT_FLAG,
    Deadline,
    WorkTimeout,
    backup_deadline,
    can_delta,
    mark_partial,
    parse_timeout,
    partial_record,
    restore_deadline,
)
from scripts.dataops.progress_meter import ProgressReport

SELF_MANAGED = "self-managed"


def stack_objectives(stack: str) -> Objectives:
    """The stack's objectives, validated by the objectives model (no cloud access)."""
    from scripts.local.evaluate import read_stack_config

    try:
        return parse_objectives(read_stack_config(stack), stack)
    except FileNotFoundError as exc:
        raise DrctlError(f"--stack {stack!r}: {exc}", ExitCode.INVALID_CONFIG) from None
    except ConfigError as exc:
        raise DrctlError(str(exc), ExitCode.INVALID_CONFIG) from None


def stack_backend(stack: str) -> str:
    """dbBackend of a stack, validated by the objectives model (no cloud access)."""
    return stack_objectives(stack).db_backend


def parse_target_time(value: str) -> datetime | None:
    """'latest' -> None, else an aware UTC datetime (the same rule as the RDS restore)."""
    from scripts.dataops.rds_restore import parse_target_time as parse

    return parse(value)


# -- backup ----------------------------------------------------------------------------------------


def check_backup_type(backup_type: str) -> None:
    if backup_type not in BACKUP_TYPES:
        raise DrctlError(
            f"--type {backup_type!r} is not valid: one of {', '.join(BACKUP_TYPES)}",
            ExitCode.INVALID_CONFIG,
        )


def run_backup(
    backrest,
    backup_type: str,
    repos: list[int] | None = None,
    *,
    deadline: Deadline | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Back up to each repo in turn; a failed repo (its region is down) does not stop the next.

    ``deadline`` bounds each repo's backup (default: the runner's timeout). Returns (one record
    per repo, all succeeded).
    """
    check_backup_type(backup_type)
    records: list[dict[str, Any]] = []
    ok = True
    for repo in repos or backrest.repo_indexes():
        progress.print(f"{backup_type} backup of stanza {backrest.stanza} to repo{repo}...")
        started = time.monotonic()
        try:
            with ProgressReport() as report:
                each = deadline.fresh() if deadline else None
                meter = report.meter(f"backup repo{repo}", None, "%")
                entry = backrest.backup(backup_type, repo, deadline=each, meter=meter)
        except DrctlError as exc:
            if exc.code == ExitCode.INVALID_CONFIG:
                raise
            ok = False
            records.append({"repo": repo, "status": "failed", "error": str(exc)})
            progress.print(f"[red]repo{repo} failed:[/] {exc}", markup=True)
            continue
        records.append(
            {
                "repo": repo,
                "status": "ok",
                "label": entry["label"],
                # pgBackRest upgrades a diff/incr to full when the repo has no full yet.
                "type": entry["type"],
                "prior": entry.get("prior"),
                "size_bytes": entry.get("info", {}).get("size"),
                "repo_size_bytes": entry.get("info", {}).get("repository", {}).get("delta"),
                "wal_start": entry.get("archive", {}).get("start"),
                "wal_stop": entry.get("archive", {}).get("stop"),
                "duration_s": round(time.monotonic() - started, 2),
            }
        )
    return records, ok


# -- restore ---------------------------------------------------------------------------------------


def resume_command(
    backrest, target_time: datetime | None, to: Path, repo: int, stack: str, timeout: str = ""
) -> str:
    """The exact command that resumes a partial restore (pgBackRest --delta)."""
    argv = [
        "drctl", "restore", "--stack", stack,
        "--target-time", target_time.isoformat() if target_time else "latest",
        "--to", str(to), "--from-repo", str(repo),
        "--config", str(backrest.config_path), "--stanza", backrest.stanza,
        "--resume", *([TIMEOUT_FLAG, timeout] if timeout else []), "--execute", "--yes",
    ]  # fmt: skip
    return shlex.join(argv)


def plan_restore(
    backrest,
    target_time: datetime | None,
    to: Path,
    repo: int,
    *,
    resume: bool = False,
    stack: str = "prod",
) -> dict[str, Any]:
    """Check everything a restore needs before touching anything; the dry-run output."""
    again = resume_command(backrest, target_time, Path(to).resolve(), repo, stack)
    target = backrest.check_restore_target(to, resume=resume, resume_command=again)
    backups = backrest.backups(backrest._check_repo(repo))
    if not backups:
        status = backrest.archive_status().get(repo, {}).get("status") or "no backups"
        other = [r for r in backrest.repo_indexes() if r != repo]
        hint = f"; try --from-repo {other[0]}" if other else ""
        raise DrctlError(
            f"repo{repo} holds no backup of stanza {backrest.stanza} ({status}); nothing to "
            f"restore from{hint}",
            ExitCode.PRECONDITION_FAILED,
        )
    if target_time is not None:
        now = datetime.now(UTC)
        if target_time > now:
            raise DrctlError(
                f"--target-time {target_time.isoformat()} is in the future (now {now.isoformat()})",
                ExitCode.INVALID_CONFIG,
            )
        # pgBackRest stamps whole seconds (truncated): a backup stamped in T's own second may
        # have become consistent after T, so only backups stamped a full second earlier count.
        usable = [b for b in backups if b["timestamp"]["stop"] + 1 <= target_time.timestamp()]
        if not usable:
            earliest = datetime.fromtimestamp(backups[0]["timestamp"]["stop"], UTC)
            raise DrctlError(
                f"--target-time {target_time.isoformat()} is before the oldest restorable point "
                f"in repo{repo} ({earliest.isoformat()}); choose a later time",
                ExitCode.INVALID_CONFIG,
            )
        base = usable[-1]
    else:
        base = backups[-1]
    return {
        "backend": SELF_MANAGED,
        "stanza": backrest.stanza,
        "from_repo": repo,
        "target_time": target_time.isoformat() if target_time else "latest",
        "to": str(target),
        "base_backup": base["label"],
        "base_backup_type": base["type"],
        "base_backup_stop": datetime.fromtimestamp(base["timestamp"]["stop"], UTC).isoformat(),
        "base_backup_bytes": base.get("info", {}).get("size"),
        "resume": _resume_mode(target) if resume else None,
        "status": "planned",
    }


def _resume_mode(target: Path) -> str | None:
    """How --resume continues: pgBackRest --delta, or over an emptied directory."""
    if partial_record(target) is None:
        return None  # nothing to resume: a plain restore
    return "delta" if can_delta(target) else "restart (nothing checkable was restored yet)"


def run_restore(
    backrest,
    target_time: datetime | None,
    to: Path,
    repo: int,
    *,
    execute: bool,
    yes: bool,
    resume: bool = False,
    deadline: Deadline | None = None,
    stack: str = "prod",
) -> dict[str, Any]:
    """Plan; then, behind the --execute/--yes gate, restore, replay and verify.

    ``deadline`` bounds restore and replay together (default: the runner's own timeouts).
    Ctrl-C or the deadline leave the directory marked partial (long_work.py) and end in a
    DrctlError that says how to resume or remove it.
    """
    plan = plan_restore(backrest, target_time, to, repo, resume=resume, stack=stack)
    what = (
        f"restore stanza {plan['stanza']} from repo{repo} to {plan['target_time']} "
        f"into {'partial' if plan['resume'] else 'new'} directory {plan['to']}"
    )
    if not confirm_execute(execute, yes, what):
        return plan
    target = Path(plan["to"])
    started = time.monotonic()
    if deadline is not None:
        deadline.start()  # the budget is for the work, not for the confirmation prompt
    phase = "restore"
    try:
        with ProgressReport() as report:
            verb = "resuming" if plan["resume"] else "restoring"
            progress.print(f"{verb} backup {plan['base_backup']} into {plan['to']}...")
            backrest.restore(
                target,
                target_time,
                repo,
                backup_set=plan["base_backup"],
                resume=resume,
                deadline=deadline,
                meter=report.meter("restore", plan["base_backup_bytes"]),
                total_bytes=plan["base_backup_bytes"],
            )
            plan["restore_s"] = round(time.monotonic() - started, 2)
            phase = "replay"
            progress.print("replaying WAL to the target and verifying...")
            result = backrest.recover(
                target, target_time, deadline=deadline, meter=report.meter("replay")
            )
    except (KeyboardInterrupt, WorkTimeout) as exc:
        raise _stopped(backrest, plan, target_time, stack, phase, exc, deadline) from None
    plan.update(status="restored", recovery=result.to_json())
    plan["total_s"] = round(time.monotonic() - started, 2)
    return plan


def _stopped(
    backrest,
    plan: dict[str, Any],
    target_time: datetime | None,
    stack: str,
    phase: str,
    exc: BaseException,
    deadline: Deadline | None,
) -> DrctlError:
    """Mark the directory partial; the error says what stopped it and how to go on."""
    target, repo = Path(plan["to"]), plan["from_repo"]
    timed_out = isinstance(exc, WorkTimeout)
    longer = ""
    if timed_out and deadline is not None:
        longer = format_duration(max(int(deadline.timeout_s) * 2, 60))
    again = resume_command(backrest, target_time, target, repo, stack, longer)
    if not target.is_dir():
        return DrctlError(str(exc) if timed_out else "interrupted", _code(timed_out))
    marker = mark_partial(
        target,
        phase=phase,
        reason="timeout" if timed_out else "interrupted",
        resume=again,
        details={"stanza": plan["stanza"], "from_repo": repo, "target_time": plan["target_time"],
                 "base_backup": plan["base_backup"]},
    )  # fmt: skip
    cause = f"{exc}" if timed_out else f"interrupted during {phase}"
    return DrctlError(
        f"{cause}. {target} is a partial restore, marked in {marker}; it cannot be started. "
        f"Resume it (files already restored are kept): {again}  -- or remove it: rm -rf {target}",
        _code(timed_out),
    )


def _code(timed_out: bool) -> ExitCode:
    return ExitCode.STEP_FAILED if timed_out else ExitCode.INTERRUPTED


def _backrest(config: Path, stanza: str):
    from scripts.dataops.pgbackrest import PgBackRest, require_binaries

    require_binaries()
    return PgBackRest(config, stanza)


def _self_managed_only(stack: str, command: str) -> None:
    backend = stack_backend(stack)
    if backend != SELF_MANAGED:
        hint = {
            "rds": "RDS takes automated backups and snapshots itself",
            "supabase": "hosted Supabase backs up itself; drctl covers it with logical dumps",
        }.get(backend, "")
        raise DrctlError(
            f"`drctl {command}` runs pgBackRest, for dbBackend self-managed; stack {stack!r} has "
            f"dbBackend {backend!r} ({hint})",
            ExitCode.INVALID_CONFIG,
        )


def register(app: typer.Typer) -> None:
    @app.command()
    def backup(
        backup_type: str = typer.Option(
            ..., "--type", help="full, diff or incr (pgBackRest upgrades to full if none yet)."
        ),
        stack: str = typer.Option("prod", help="Stack whose dbBackend decides what runs."),
        config: Path = typer.Option(Path(CONFIG_PATH), help="The rendered pgbackrest.conf."),
        stanza: str = typer.Option(DEFAULT_STANZA, help="pgBackRest stanza."),
        repo: list[int] = typer.Option(
            None, help="Only this repository (repeatable); default every configured repo."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        timeout: str = typer.Option(
            None,
            TIMEOUT_FLAG,
            help="Longest one repository's backup may run, e.g. 8h; default the type's schedule "
            "interval (full 7d, diff 1d, incr 1h).",
        ),
    ) -> None:
        """Take a pgBackRest backup of the self-managed database into every repository."""
        try:
            check_backup_type(backup_type)  # a bad --type is named before any config is read
            timeout_s = parse_timeout(timeout)
            _self_managed_only(stack, "backup")
            deadline = backup_deadline(stack_objectives(stack), backup_type, timeout_s)
            backrest = _backrest(config, stanza)
            records, ok = run_backup(backrest, backup_type, repo or None, deadline=deadline)
        except DrctlError as exc:
            fail(str(exc), exc.code)
        if as_json:
            print_json({"stanza": stanza, "type": backup_type, "repos": records, "ok": ok})
        else:
            for r in records:
                if r["status"] == "ok":
                    out.print(
                        f"repo{r['repo']}: {r['type']} backup {r['label']} "
                        f"({r['size_bytes']} bytes, {r['duration_s']}s)"
                    )
                else:
                    out.print(f"repo{r['repo']}: FAILED: {r['error']}")
        if not ok:
            raise SystemExit(int(ExitCode.STEP_FAILED))

    @app.command()
    def restore(
        target_time: str = typer.Option(
            ...,
            "--target-time",
            help="ISO 8601 time with offset (e.g. 2026-11-26T18:30:00Z) or latest.",
        ),
        to: str = typer.Option(
            ..., "--to", help="New empty data directory (self-managed) or new instance id (rds)."
        ),
        from_repo: int = typer.Option(
            1, "--from-repo", help="1: primary-region repository; 2: DR-region repository."
        ),
        stack: str = typer.Option("prod", help="Stack whose dbBackend decides what runs."),
        config: Path = typer.Option(Path(CONFIG_PATH), help="The rendered pgbackrest.conf."),
        stanza: str = typer.Option(DEFAULT_STANZA, help="pgBackRest stanza."),
        execute: bool = typer.Option(False, "--execute", help="Act; without it, a dry run."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask (required without a TTY)."),
        accept_data_loss: bool = typer.Option(
            False, "--accept-data-loss", help="rds: allow 'latest' older than the RPO."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the plan/result as JSON."),
        timeout: str = typer.Option(
            None,
            TIMEOUT_FLAG,
            help="Longest restore plus WAL replay may run, e.g. 3h; default twice the critical "
            "RTO.",
        ),
        resume: bool = typer.Option(
            False,
            "--resume",
            help="Continue a partial restore drctl marked in --to (pgBackRest --delta).",
        ),
    ) -> None:
        """Point-in-time restore into a NEW data directory or instance; never over the source.

        Dry run by default. With --execute (self-managed) the copy is restored, replayed to the
        target and verified: recovery that ends before the target is an error, not a result.
        Progress goes to stderr; Ctrl-C leaves the directory marked partial, for --resume.
        """
        try:
            timeout_s = parse_timeout(timeout)
            if from_repo not in (1, 2):
                raise DrctlError(
                    f"--from-repo {from_repo} is not valid: 1 (primary region) or 2 (DR region)",
                    ExitCode.INVALID_CONFIG,
                )
            backend = stack_backend(stack)
            if backend == "rds":
                # Owned by the PostgresBackup (rds) work: a new instance, never the source.
                from scripts.dataops import rds_restore

                rds_restore.run(
                    stack=stack,
                    target_time=target_time,
                    to=to,
                    from_repo=from_repo,
                    execute=execute,
                    yes=yes,
                    as_json=as_json,
                    accept_data_loss=accept_data_loss,
                )
                return
            _self_managed_only(stack, "restore")
            when = parse_target_time(target_time)
            deadline = restore_deadline(stack_objectives(stack), timeout_s)
            backrest = _backrest(config, stanza)
            record = run_restore(
                backrest,
                when,
                Path(to),
                from_repo,
                execute=execute,
                yes=yes,
                resume=resume,
                deadline=deadline,
                stack=stack,
            )
        except DrctlError as exc:
            fail(str(exc), exc.code)
        if as_json:
            print_json(record)
            return
        out.print(
            f"{record['status']}: stanza {record['stanza']} repo{record['from_repo']} backup "
            f"{record['base_backup']} -> {record['to']} at {record['target_time']}"
        )
        if record["status"] == "restored":
            rec = record["recovery"]
            out.print(
                f"recovery reached the target ({rec['stop'] or 'end of archive'}) in "
                f"{rec['recovery_s']}s; start it with: pg_ctl -D {record['to']} start "
                "(archive_mode is off in the copy)"
            )
