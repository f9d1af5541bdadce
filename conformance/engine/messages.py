"""The one-screen messages of a failing parity case: a mismatch, or an error that ended it."""

from __future__ import annotations

from conformance.backends.base import first_meaningful_line
from conformance.draw.frames import describe_frame, float64_fits
from conformance.engine.record import CaseRecord


def _where(target) -> str:
    fmt = target.export
    what = f"{fmt.exporter} exporter, opset {fmt.opset}" if fmt.opset else f"{fmt.exporter} format"
    place = getattr(target, "place", "host")
    return what if place == "host" else f"{what}, on {place}"


def failure_message(outcome, nodeid: str, *, localization: str = "", diagnosis=None) -> str:
    """A parity mismatch: what was drawn, how far off, which side the oracle blames, how to rerun;
    with a diagnosis, its trials and, last, the ``cause:`` line."""
    if getattr(outcome, "quantized", None) is not None:
        from conformance.engine.qmessages import quant_failure_message

        return quant_failure_message(outcome, nodeid, _footer(outcome.reproducer, nodeid))
    c, t, ex, r = outcome.case, outcome.target, outcome.example, outcome.result
    lines = [
        f"{c.name} on {t.backend.name} ({_where(t)}): parity fails at decimal={r.decimal}",
        f"  structure: {c.describe(ex.structure)}",
        f"  input {ex.inputs.shape}{describe_frame(ex.inputs.shape)} at {ex.inputs.scale} scale "
        f"({_distribution(ex.inputs)}), "
        f"weights {ex.weights.init} with {ex.weights.zero_fraction:.0%} zeros, fed as {ex.feed}",
        f"  {_deployment(outcome)}",
    ]
    if outcome.wrote_inputs:
        i = outcome.wrote_inputs[0]
        lines.append(f"  the run wrote into its input {i} (after the run vs before): {r.summary()}")
    else:
        lines.append(f"  output {tuple(outcome.expected[outcome.worst_output].shape)}: {r.summary()}")
    if r.oracle is not None and not outcome.wrote_inputs:
        lines.append(f"  {r.oracle.describe(r.tolerance)}")
    elif not float64_fits(ex.inputs.shape):
        lines.append("  float64 oracle: not run on an image past 641x480 pixels (float64 convolutions would not "
                     "fit in memory here)")
    if localization:
        lines.append(f"  {localization}")
    if diagnosis is not None:
        lines += [f"  {line}" for line in diagnosis.lines()]
    lines += _footer(outcome.reproducer, nodeid)
    if diagnosis is not None and diagnosis.cause:
        lines.append(f"  cause: {diagnosis.cause}")
    return "\n".join(lines)


def _deployment(outcome) -> str:
    ex = outcome.example
    d = ex.deployment
    text = f"{'static' if d.static else 'dynamic'}-shape export"
    if d.layout != "contiguous":
        text += f", the input handed over as a {d.layout} (non-contiguous) view"
    if outcome.overlap:
        return f"{text}; after {d.runs} run{'s' if d.runs != 1 else ''} in turn, {outcome.overlap}"
    return f"{text}; run {outcome.run_index + 1} of {d.runs} of one prepared session"


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
