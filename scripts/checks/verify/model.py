"""The shape of a verify check, its three states, and the one registry every check is added to.

A check **proves or fails**: PASS when it measured what the objective asks, FAIL when it measured
something else or a target the program declares is missing, UNKNOWN when there was nothing to
measure (no metric datapoints, no database source). UNKNOWN fails the run unless the operator
passes ``--allow-unknown``. Nothing is skipped silently: a group whose stack output is missing
reports FAIL naming the key.

To add a check, write ``def run(ctx: Context) -> list[Check]`` in the module of its area,
wrap it in a ``CheckGroup`` there, and add that group to ``CHECKS`` in
scripts/checks/verify/__init__.py, the one list of what verify runs, in order::

    SECRET_REPLICAS = CheckGroup("secret-replica", secret_checks, needs=("secretArns",))

``needs`` lists the stack outputs (dotted paths) the group cannot run without; ``applies`` says
when the group is relevant (e.g. one database backend); inside ``run``, ``need(ctx.outputs,
"a", "b")`` reads a nested output or fails the group naming ``a.b``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.objectives import Objectives
from policy.bounds import fmt
from scripts.common import DrctlError

ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass
class Check:
    check: str
    data_class: str
    target: str
    measured: float | str | None
    objective: float | str | None
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is Status.PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "class": self.data_class,
            "target": self.target,
            "measured": self.measured,
            "objective": self.objective,
            "status": str(self.status),
            "ok": self.ok,
            "detail": self.detail,
        }


def passed(ok: bool) -> Status:
    return Status.PASS if ok else Status.FAIL


@dataclass
class Context:
    """What every check may read: the stack, its objectives and outputs, the injected clients."""

    stack: str
    objectives: Objectives
    outputs: Mapping[str, Any]
    clients: ClientFactory
    database: Any = None  # a DatabaseSource (scripts/checks/verify/database.py) or None
    root: Path | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class MissingOutput(KeyError):
    """A stack output a check needs is not there: the check fails naming it."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def need(outputs: Mapping[str, Any], *path: str) -> Any:
    """``outputs[a][b]...``, or MissingOutput naming ``a.b`` when any step is absent or empty."""
    value: Any = outputs
    for depth, key in enumerate(path):
        if not isinstance(value, Mapping) or value.get(key) in (None, "", {}, []):
            raise MissingOutput(".".join(path[: depth + 1]))
        value = value[key]
    return value


@dataclass(frozen=True)
class CheckGroup:
    """One named group of checks. ``run`` returns its checks; an AWS, database or missing-output
    error fails the group as one check, and the other groups still run."""

    name: str
    run: Callable[[Context], list[Check]]
    needs: tuple[str, ...] = ()
    applies: Callable[[Context], bool] = lambda ctx: True
    data_class: str = "all"


def error_detail(err: Exception) -> str:
    if isinstance(err, MissingOutput):
        return (
            f"stack output {err.key!r} is missing: the check cannot run (deploy the stack, or "
            "pass the right --outputs)"
        )
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".strip()
    return f"{type(err).__name__}: {err}"


def run_group(group: CheckGroup, ctx: Context) -> list[Check]:
    try:
        for key in group.needs:
            need(ctx.outputs, *key.split("."))
        return group.run(ctx)
    except (ClientError, BotoCoreError, DrctlError, OSError, KeyError) as err:
        return [
            Check(group.name, group.data_class, "-", None, None, Status.FAIL, error_detail(err))
        ]


def fmt_s(seconds: float | None) -> str:
    return fmt(None if seconds is None else round(seconds))


def _aware(moment: dt.datetime) -> dt.datetime:
    # A naive time from AWS or pgBackRest means UTC; an aware one keeps its own offset.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def age_s(now: dt.datetime, then: dt.datetime) -> float:
    """Seconds from ``then`` to ``now`` (never negative), compared as instants in UTC."""
    return max(0.0, (_aware(now) - _aware(then)).total_seconds())
