"""A deployed stack's outputs: ``pulumi stack output --json`` (secrets masked), or a file of it.

The one outputs reader of the data operations and checks that act on a *deployed* stack
(``drctl verify``, ``drctl render``). Secret outputs arrive as ``"[secret]"``: nothing here asks
the CLI to show them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from scripts.common import DrctlError, ExitCode

SECRET_MASK = "[secret]"


def pulumi_outputs(stack: str) -> dict[str, Any]:
    """The real provider: ``pulumi stack output --json -s STACK`` (secrets stay masked)."""
    if not shutil.which("pulumi"):
        raise DrctlError(
            "the pulumi CLI is not on PATH: install it, or pass --outputs FILE with the JSON "
            f"of `pulumi stack output --json -s {stack}`",
            ExitCode.PRECONDITION_FAILED,
        )
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "-s", stack], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise DrctlError(
            f"pulumi stack output -s {stack} failed: {result.stderr.strip()}",
            ExitCode.PRECONDITION_FAILED,
        )
    return json.loads(result.stdout)


def outputs_file(path: Path) -> dict[str, Any]:
    """Outputs saved with ``pulumi stack output --json -s STACK > FILE``."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DrctlError(f"--outputs {path}: no such file", ExitCode.INVALID_CONFIG) from None
    except (OSError, json.JSONDecodeError) as err:
        raise DrctlError(
            f"--outputs {path}: not the JSON of `pulumi stack output --json` ({err})",
            ExitCode.INVALID_CONFIG,
        ) from None
    if not isinstance(document, dict):
        raise DrctlError(
            f"--outputs {path}: expected a JSON object of stack outputs", ExitCode.INVALID_CONFIG
        )
    return document
