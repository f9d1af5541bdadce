"""Where a case's nodes ran, judged against where they are expected to run.

A runtime's session may say where it ran each node of the outcome a case reports
(``placement() -> {node: where}``: ONNX Runtime's execution provider, ExecuTorch's and LiteRT's
delegate or fallback kernels, OpenVINO's execution precision). An expected placement (the
``--expect-placement BACKEND=WHERE`` option, or a ``[[placement]]`` entry of the expected-failures
file) gives globs of where every node may run. A node anywhere else fails the case, even when its
numbers match: a fallback that happens to be exact today is still not what the app ships.
"""

from __future__ import annotations

import fnmatch

#: Nodes listed by name in a failure message; the rest are counted.
_SHOWN = 10


def tally(nodes: dict[str, str]) -> dict[str, int]:
    """How many nodes ran at each place."""
    counts: dict[str, int] = {}
    for where in nodes.values():
        counts[where] = counts.get(where, 0) + 1
    return counts


def outside(nodes: dict[str, str], on: tuple[str, ...]) -> dict[str, str]:
    """The nodes that ran at none of the places ``on`` (globs), with where they ran."""
    return {node: where for node, where in nodes.items() if not any(fnmatch.fnmatchcase(where, p) for p in on)}


def judge(nodes: dict[str, str] | None, on: tuple[str, ...], source: str, *, error: str = "") -> dict:
    """The expected-placement part of a record: the places allowed, the rule's source, and the
    nodes outside them (``outside``), or why the placement could not be read (``unknown``)."""
    found = {"on": list(on), "source": source}
    if error:
        return {**found, "outside": None, "unknown": f"reading where the nodes ran failed: {error}"}
    if not nodes:
        return {**found, "outside": None, "unknown": "the runtime does not say where it ran each node"}
    return {**found, "outside": outside(nodes, on)}


def violated(expected: dict | None) -> bool:
    """Whether an expected placement (``judge``'s result) fails its case."""
    return expected is not None and (expected.get("unknown") is not None or bool(expected.get("outside")))


def headline(expected: dict, total: int) -> str:
    """One line: how the placement missed what was expected."""
    want = " or ".join(expected["on"])
    if expected.get("unknown"):
        return f"expected placement {want} ({expected['source']}) cannot be checked: {expected['unknown']}"
    n = len(expected["outside"])
    return f"{n} of {total} nodes ran outside the expected placement {want} ({expected['source']})"


def message(label: str, expected: dict, total: int, numbers: str) -> str:
    """The one-screen failure of a case whose numbers matched but whose placement did not."""
    lines = [f"{label}: {headline(expected, total)}"]
    misplaced = list((expected.get("outside") or {}).items())  # in the runtime's order
    lines += [f"  {node}: {where}" for node, where in misplaced[:_SHOWN]]
    if len(misplaced) > _SHOWN:
        lines.append(f"  ... and {len(misplaced) - _SHOWN} more (all in parity.json)")
    if numbers:
        lines.append(f"  the numbers match: {numbers}")
    return "\n".join(lines)
