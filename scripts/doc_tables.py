"""Tables in docs/ generated from the code, so the docs cannot drift: `make docs` rewrites them
and a test fails when they are stale."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from components.objectives import CONFIG_KEYS

CONFIG_DOC = Path(__file__).resolve().parent.parent / "docs" / "config.md"


def config_keys_table() -> str:
    rows = ["| key (`platform-dr:`) | type | default | meaning |", "|---|---|---|---|"]
    for key in CONFIG_KEYS:
        if key.required:
            default = "required"
        elif key.needed_by:
            backends = "all" if len(key.needed_by) == 3 else ", ".join(key.needed_by)
            rebuild = "; rebuild: from source" if key.from_source_on_rebuild else ""
            default = f"required ({backends}{rebuild})"
        elif key.default == "":
            default = '`""`'
        else:
            default = (
                f"`{str(key.default).lower() if isinstance(key.default, bool) else key.default}`"
            )
        meaning = key.description.replace("|", "\\|")
        rows.append(f"| `{key.name}` | {key.type} | {default} | {meaning} |")
    return "\n".join(rows)


TABLES = {"config-keys": config_keys_table}


def render(text: str) -> str:
    for name, build in TABLES.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m, b=build: m.group(1) + b() + "\n" + m.group(2), text)
    return text


def main() -> int:
    text = CONFIG_DOC.read_text()
    updated = render(text)
    if "--check" in sys.argv:
        return 0 if updated == text else 1
    CONFIG_DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
