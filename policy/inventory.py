"""What audits each inventoried dataset's copies: a line in posture, detection only.

Registered in ``rules.MECHANISM_EXTRACTORS`` when imported (rules.py imports it at its end). The
daily S3 Inventory of every copy and ``drctl audit replication`` find a version missing or different
in a copy within a day of the next report (the first report can take 48 hours): that bounds no
loss, so the mechanism carries no bound and does not cover region loss. Whether the inventories are
declared on every copy, in the right region, readable by the audit, and deliverable is checked by
the AWS-semantics rules (``aws_semantics.inventory``, ``aws_semantics.delivery``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

if __package__:
    from . import rules
    from .aws_semantics.inventory import OBJECT_INVENTORY_TYPE
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    import rules  # type: ignore[no-redef]
    from aws_semantics.inventory import OBJECT_INVENTORY_TYPE  # type: ignore[no-redef]


def inventory_mechanisms(resources: Sequence[rules.Resource], objectives: Mapping) -> list:
    found = []
    for component in (r for r in resources if r.type == OBJECT_INVENTORY_TYPE):
        props = component.props
        engines = "/".join(sorted(props.get("queryRegions") or [])) or "no region"
        for dataset, entry in sorted((props.get("datasets") or {}).items()):
            copies = rules._as_list(entry.get("copies"))
            description = (
                f"{dataset}: audited from a daily S3 Inventory of its {len(copies)} copies "
                f"(Parquet, all versions) with drctl audit replication, locally or with Athena in "
                f"{engines}; detects, within a day of the next report, versions missing or "
                "different in a copy (not a bound on loss)"
            )
            found.append(
                rules.Mechanism(
                    dataset,
                    entry.get("dataClass", "critical"),
                    description,
                    None,
                    covers_region_loss=False,
                )
            )
    return found


rules.MECHANISM_EXTRACTORS.append(inventory_mechanisms)
