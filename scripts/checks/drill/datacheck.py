"""The exact data check and the measured RPO. Pure functions: no I/O, no clock.

A scenario first places every write it made against the recovery point its mechanism promises
(the PITR target time, the last WAL position the standby received or repo2 archived, the object
restore's as-of time) and gives each one an expectation:

- ``PROMISED``: acknowledged before the point (or acknowledged by the recovered service after
  it): its content must be back;
- ``AFTER_POINT``: written after the point, so a point-in-time recovery must *not* bring it back
  (an attacker's overwrite is one too);
- ``UNCERTAIN``: in flight at the point or with an unknown outcome: either is fine.

``check_data`` then compares, key by key, what recovery brought back with the newest promised
content of that key. Verified means: every promised key is back with exactly that content (or
with the content of a newer in-flight write), nothing written after the point is back, no older
version stands where a newer one was promised, and no key is back that the drill never wrote.
Any missing promised write fails the check, whatever the RPO.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping

from scripts.checks.drill.model import DataCheck, Write

PROMISED = "promised"
AFTER_POINT = "after-point"
UNCERTAIN = "uncertain"
EXPECTATIONS = (PROMISED, AFTER_POINT, UNCERTAIN)
EXAMPLES = 5  # keys listed per kind of problem


def checksum(items: Mapping[str, str]) -> str:
    """SHA-256 over sorted ``key:content`` lines."""
    digest = hashlib.sha256()
    for key in sorted(items):
        digest.update(f"{key}:{items[key]}\n".encode())
    return digest.hexdigest()


def check_data(
    placed: Iterable[tuple[Write, str]], recovered: Mapping[str, str], point: str
) -> DataCheck:
    """Compare what is back (``recovered``: key -> content) with the placed writes.

    ``placed`` holds (write, expectation) pairs in the order the writes were made; a key written
    twice (an object overwritten) expects the content of its newest promised write.
    """
    by_key: dict[str, list[tuple[Write, str]]] = defaultdict(list)
    for write, expect in placed:
        if expect not in EXPECTATIONS:
            raise ValueError(f"expectation {expect!r}: one of {', '.join(EXPECTATIONS)}")
        by_key[write.key].append((write, expect))
    problems: dict[str, list[str]] = defaultdict(list)
    expected: dict[str, str] = {}
    uncertain = 0
    back = 0
    for key, writes in by_key.items():
        promised = [i for i, (_, e) in enumerate(writes) if e == PROMISED]
        uncertain += sum(1 for _, e in writes if e == UNCERTAIN)
        newest = promised[-1] if promised else None
        if newest is not None:
            expected[key] = writes[newest][0].content
        if key not in recovered:
            if newest is not None:
                problems["missing"].append(key)
            continue
        got = recovered[key]
        if newest is not None and got == expected[key]:
            back += 1
            continue
        matches = [i for i, (w, _) in enumerate(writes) if w.content == got]
        if not matches:
            problems["wrong"].append(key)
            continue
        index = matches[-1]
        kind = writes[index][1]
        if kind == AFTER_POINT:
            problems["after_point"].append(key)
        elif kind == UNCERTAIN and (newest is None or index > newest):
            back += newest is not None  # a newer in-flight write superseded the promised one
        else:
            problems["stale"].append(key)  # an older version than the one promised
    problems["unknown"] = sorted(k for k in recovered if k not in by_key)
    recovered_view = {k: recovered.get(k, "<missing>") for k in expected}
    counts = {kind: len(problems.get(kind, [])) for kind in _PROBLEMS}
    return DataCheck(
        point=point,
        promised=len(expected),
        back=back,
        uncertain=uncertain,
        expected_checksum=checksum(expected),
        recovered_checksum=checksum(recovered_view),
        verified=not any(counts.values()),
        examples={k: sorted(v)[:EXAMPLES] for k, v in problems.items() if v},
        **counts,
    )


_PROBLEMS = ("missing", "stale", "wrong", "after_point", "unknown")


def measure_rpo(
    writes: Iterable[Write], recovered: Mapping[str, str], failure_at: float
) -> float | None:
    """Failure instant minus the acknowledgement time of the newest write acknowledged before the
    failure whose content is back; None when no such write came back (everything was lost)."""
    back = [
        w.acked_at
        for w in writes
        if w.acked_at is not None and w.acked_at <= failure_at and recovered.get(w.key) == w.content
    ]
    return failure_at - max(back) if back else None
