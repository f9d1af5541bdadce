"""The one-screen messages of a failing parity case: a mismatch, or an error that ended it."""

from __future__ import annotations

from conformance.backends.base import first_meaningful_line
from conformance.engine.record import CaseRecord


def _where(target) -> str:
    fmt = target.export
    what = f"{fmt.exporter} exporter, opset {fmt.opset}" if fmt.opset else f"{fmt.exporter} format"
    place = getattr(target, "place", "host")
    return what if place == "host" else f"{what}, on {place}"


def failure_message(outcome, nodeid: str, *, localization: str = "") -> str:
    """A parity mismatch: what was drawn, how far off, which side the oracle blames, how to rerun."""
    if getattr(outcome, "quantized", None) is not None:
        from conformance.engine.qmessages import quant_failure_message

        return quant_failure_message(outcome, nodeid, _footer(outcome.reproducer, nodeid))
    c, t, ex, r = outcome.case, outcome.target, outcome.example, outcome.result
    lines = [
        f"{c.name} on {t.backend.name} ({_where(t)}): parity fails at decimal={r.decimal}",
        f"  structure: {c.describe(ex.structure)}",
        f"  input {ex.inputs.shape} at {ex.inputs.scale} scale ({_distribution(ex.inputs)}), "
        f"weights {ex.weights.init} with {ex.weights.zero_fraction:.0%} zeros, fed as {ex.feed}",
        f"  {'static' if ex.deployment.static else 'dynamic'}-shape export; run {outcome.run_index + 1} of "
        f"{ex.deployment.runs} of one prepared session",
        f"  output {tuple(outcome.expected[outcome.worst_output].shape)}: {r.summary()}",
    ]
    if r.oracle is not None:
        lines.append(f"  {r.oracle.describe(r.tolerance)}")
    if localization:
        lines.append(f"  {localization}")
    lines += _footer(outcome.reproducer, nodeid)
    return "\n".join(lines)


def _distribution(recipe) -> str:
    if recipe.distribution == "photo":
        return f"photo: {recipe.photo}"
    if recipe.distribution == "special":
        spread = f"{recipe.special_share:.0%} of elements" if recipe.special_share else "sparse: one of each per item"
        return f"special values {', '.join(recipe.special)}, {spread}"
    return recipe.distribution


def error_message(record: CaseRecord, error: BaseException) -> str:
    """An exporter or runtime error: its type and the runtime's own first line, the example."""
    text = getattr(error, "detail", None) or str(error)
    headline = first_meaningful_line(str(error)) or first_meaningful_line(text)
    lines = [f"{record.case} on {record.backend} ({_labels(record)}): {record.error_type}: {headline}"]
    if record.example:
        lines.append(f"  drawn example: {record.example}")
    lines += _footer(record.reproducer, record.nodeid)
    return "\n".join(lines)


def _labels(record: CaseRecord) -> str:
    what = f"{record.exporter} exporter, opset {record.opset}" if record.opset else f"{record.exporter} format"
    return what if record.place == "host" else f"{what}, on {record.place}"


def _footer(reproducer: str | None, nodeid: str) -> list[str]:
    lines = []
    if reproducer:
        lines.append(f"  reproducer: {reproducer}  (conformance replay DIR)")
    lines.append(f"  rerun: pytest '{nodeid}'  (hypothesis replays the shrunk example from its database)")
    return lines
