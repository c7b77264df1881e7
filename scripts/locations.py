"""Where drctl reads the project and writes its own state: the one module that knows both.

- **Project directory** (``--project-dir``, env ``DRCTL_PROJECT_DIR``, default the current
  directory): ``Pulumi.yaml``, ``Pulumi.<stack>.yaml`` and the program ``__main__.py``, exactly as
  ``pulumi`` itself finds them. Never the directory drctl is installed in: an operator's checkout
  must not be silently ignored because the tool was installed from another copy.
- **State directory** (``--state-dir``, env ``DRCTL_STATE_DIR``, default
  ``$XDG_STATE_HOME/drctl``, else ``~/.local/state/drctl``): local runbook journals and the local
  audit engine's cache. The failover runbooks keep their journal in the DR-region control bucket
  when the stack has one (scripts/runbooks/journal.py, ``S3Journal``), so every operator resumes
  the same run; the state directory only holds the local fallback.

Stack files are read here, once: a YAML syntax error, a missing stack or a ``secure:`` value becomes
one clear ``DrctlError`` that names the file, never a traceback. ``secure:`` values (what
``pulumi config set --secret`` writes) stay opaque ``SecureValue`` objects: drctl never decrypts
them and never prints their ciphertext.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.objectives import PROJECT
from scripts.common import DrctlError, ExitCode

_project_dir: Path | None = None
_state_dir: Path | None = None


def set_project_dir(path: str | Path | None) -> None:
    """``--project-dir`` of the root command; None: the environment or the current directory."""
    global _project_dir
    _project_dir = None if path is None else Path(path)


def set_state_dir(path: str | Path | None) -> None:
    global _state_dir
    _state_dir = None if path is None else Path(path)


def project_dir() -> Path:
    """The Pulumi project drctl acts on (checked: it must hold Pulumi.yaml)."""
    chosen = _project_dir or Path(os.environ.get("DRCTL_PROJECT_DIR") or Path.cwd())
    if not chosen.is_dir():
        raise DrctlError(
            f"--project-dir {str(chosen)!r} is not a directory", ExitCode.INVALID_CONFIG
        )
    if not (chosen / "Pulumi.yaml").is_file():
        raise DrctlError(
            f"{chosen} is not a Pulumi project (no Pulumi.yaml): run drctl from the project "
            "directory or pass --project-dir",
            ExitCode.INVALID_CONFIG,
        )
    return chosen


def state_dir() -> Path:
    """Where local state goes (created on first write, by the writer)."""
    if _state_dir is not None:
        return _state_dir
    if os.environ.get("DRCTL_STATE_DIR"):
        return Path(os.environ["DRCTL_STATE_DIR"])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "drctl"


def journal_dir() -> Path:
    """Local runbook journals (the shared S3 journal, when a stack has one, is not here)."""
    return state_dir() / "journal"


def inventory_cache_dir() -> Path:
    """The local audit engine's copy of S3 Inventory reports."""
    return state_dir() / "inventory"


class SecureValue:
    """A ``secure:`` config value: ciphertext only the Pulumi CLI can decrypt. Opaque on purpose."""

    __slots__ = ("_ciphertext",)

    def __init__(self, ciphertext: str):
        self._ciphertext = ciphertext

    def __repr__(self) -> str:
        return "[secret]"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecureValue) and other._ciphertext == self._ciphertext

    def __hash__(self) -> int:
        return hash(self._ciphertext)


def is_secure(value: Any) -> bool:
    return isinstance(value, SecureValue)


def _opaque(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            return SecureValue(value["secure"])
        return {k: _opaque(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_opaque(v) for v in value]
    return value


def stack_names(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def stack_file(stack: str, root: Path | None = None) -> Path:
    """``Pulumi.<stack>.yaml`` in the project; an unknown stack is a one-line INVALID_CONFIG."""
    root = project_dir() if root is None else Path(root)
    if not stack or "/" in stack or stack.startswith("."):
        raise DrctlError(f"--stack {stack!r} is not a stack name", ExitCode.INVALID_CONFIG)
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise DrctlError(
            f"--stack {stack!r}: no stack {stack!r} in {root} ({path.name} not found; stacks "
            f"there: {', '.join(stack_names(root)) or 'none'}); run drctl from the project "
            "directory or pass --project-dir",
            ExitCode.INVALID_CONFIG,
        )
    return path


def load_yaml(path: Path, what: str = "") -> Any:
    """A YAML file, or one INVALID_CONFIG line naming the file, line and problem."""
    try:
        text = path.read_text()
    except OSError as err:
        raise DrctlError(
            f"{what or path}: cannot read {path}: {err.strerror}", ExitCode.INVALID_CONFIG
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise DrctlError(
            f"{path}:{where} is not valid YAML: {problem}", ExitCode.INVALID_CONFIG
        ) from None


def read_stack_config(stack: str, root: Path | None = None) -> dict[str, Any]:
    """The ``config:`` block of Pulumi.<stack>.yaml, keys as written (``platform-dr:x``).

    ``secure:`` values come back as ``SecureValue``; callers that need a value in plain text
    refuse it. Keys of this project (``platform-dr:``) are settings, never secrets, so a
    ``secure:`` one is refused here, naming the key.
    """
    path = stack_file(stack, root)
    document = load_yaml(path) or {}
    if not isinstance(document, Mapping):
        raise DrctlError(
            f"{path}: expected a mapping with a config: block", ExitCode.INVALID_CONFIG
        )
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise DrctlError(f"{path}: config: must be a mapping of keys", ExitCode.INVALID_CONFIG)
    values = {str(k): _opaque(v) for k, v in config.items()}
    for key, value in values.items():
        if key.startswith(f"{PROJECT}:") and is_secure(value):
            raise DrctlError(
                f"{key} in {path.name} is a secret (secure:), but {PROJECT}: keys are settings "
                "drctl must read offline, and it never decrypts stack files; set it in plain "
                f"text (secret values belong under {PROJECT}-secrets: or {PROJECT}-db:)",
                ExitCode.INVALID_CONFIG,
            )
    return values


def writable_output(path: Path, what: str = "--out", directory: bool = True) -> Path:
    """Check an output path before any long work starts: INVALID_CONFIG naming it when unusable.

    Nothing is created: the nearest existing ancestor must be a writable directory (and the path
    itself, when it exists, a directory for ``directory`` outputs or a writable file otherwise).
    """
    path = Path(path)
    kind = "a writable directory" if directory else "a writable file"

    def refuse(why: str) -> DrctlError:
        return DrctlError(
            f"{what} {str(path)!r} is not {kind} ({why}); nothing was started",
            ExitCode.INVALID_CONFIG,
        )

    if path.exists():
        if directory and not path.is_dir():
            raise refuse("it is a file")
        if not directory and path.is_dir():
            raise refuse("it is a directory")
        if not os.access(path, os.W_OK | (os.X_OK if directory else 0)):
            raise refuse("permission denied")
        return path
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise refuse(f"{parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise refuse(f"{parent} is not writable")
    return path
