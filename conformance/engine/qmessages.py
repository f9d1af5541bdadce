"""The one-screen message of a failing int8 case: errors in steps, scales and zero points."""

from __future__ import annotations


def quant_failure_message(outcome, nodeid: str, footer: list[str]) -> str:
    """What was quantized and how, the input's edge, and the verdict in steps (``QCompareResult``)."""
    c, ex, r, art = outcome.case, outcome.example, outcome.result, outcome.quantized
    iq = art.input_q
    fmt, place = outcome.target.export, outcome.target.place
    where = fmt.exporter + (f", opset {fmt.opset}" if fmt.opset else "") + ("" if place == "host" else f", on {place}")
    quantized_input = (f"input scale {iq.scale:.6g}, zero point {iq.zero_point} (range {iq.qmin}..{iq.qmax})"
                       if iq else "input not quantized")
    lines = [
        f"{c.name} on {outcome.target.backend.name} ({where}): int8 parity fails ({r.failed_rule}: qtol "
        f"{r.qtol} step{'s' if r.qtol != 1 else ''}, bias bound {r.bias_limit:.3g} steps)",
        f"  structure: {c.describe(ex.structure)}; weights {ex.weights.init} with "
        f"{ex.weights.zero_fraction:.0%} zeros (seed {ex.weights.seed})",
        f"  quantized: {ex.quant.describe()}; {quantized_input}",
        f"  input {ex.inputs.shape} at {ex.inputs.scale} scale ({ex.inputs.describe()})",
        f"  output {tuple(outcome.expected[outcome.worst_output].shape)}: {r.summary()}",
        f"  reference: the fake-quant model ({_reference(outcome)})",
    ]
    return "\n".join(lines + footer)


def _reference(outcome) -> str:
    if outcome.quantized.model is not None:
        return "onnx's reference evaluator on the QDQ file, float64 deciding ties"
    return "the converted PT2E module in torch"
