"""Which int8 cases run: targets (runtime x int8 format), the default share, example budgets.

``pytest -m parity --quantized`` runs every operator and model quantized both ways (PT2E with
ExecuTorch's ``XNNPACKQuantizer``, and ONNX Runtime's ``quantize_static``) on every runtime that
takes the format: an ONNX runtime gets both QDQ files, a runtime that takes a torch program
gets PT2E's program where it has an int8 path (ExecuTorch), else the case is skipped saying so.
Without ``--quantized`` a small share runs: cheap ``quantize_static`` cases of Conv2d, the
residual Add and SuperResolutionNet, and PT2E's Conv2d, so the default run keeps its budget.
"""

from __future__ import annotations

from hypothesis import settings

from conformance.backends.base import ProgramBackend
from conformance.engine.harness import Target
from conformance.formats.quantize import ORT_STATIC, PT2E, QuantFormat

#: (case, format) pairs of the default run's int8 share.
DEFAULT_SHARE = frozenset({("conv2d", ORT_STATIC), ("residual_add", ORT_STATIC), ("superres", ORT_STATIC),
                           ("conv2d", PT2E)})
#: Examples per int8 case: (operator, model), for formats quantized per example (cheap) and for
#: pooled ones (PT2E and its dynamo export, 2-15 s per artifact; ExecuTorch's lowering ~10 s more).
EXAMPLES = {"cheap": (12, 3), "pooled": (4, 2)}
DEFAULT_EXAMPLES = {"cheap": (8, 2), "pooled": (2, 1)}


def quant_targets(backends) -> list[Target]:
    """Every (runtime, int8 format): ONNX runtimes take both QDQ files (at the QDQ opset), a
    program runtime takes PT2E's converted module (``int8-pt2e``, no opset)."""
    targets = []
    for backend in backends:
        if isinstance(backend, ProgramBackend):
            targets.append(Target(backend, QuantFormat(PT2E, 0)))
        else:
            targets += [Target(backend, QuantFormat(PT2E)), Target(backend, QuantFormat(ORT_STATIC))]
    return targets


def selected(case_name: str, target: Target, everything: bool) -> bool:
    """Whether the (case, target) pair runs: all with ``--quantized``, else the default share
    (on this host's runtimes only: a device's share is its float cases)."""
    if everything:
        return True
    return (case_name, target.export.exporter) in DEFAULT_SHARE and target.place == "host" \
        and not isinstance(target.backend, ProgramBackend)


def pooled(target: Target) -> bool:
    """PT2E artifacts are dear (and ExecuTorch's more): their draws come from pools."""
    return target.export.exporter == PT2E or isinstance(target.backend, ProgramBackend)


def examples(kind: str, target: Target, everything: bool) -> int:
    """Examples for one int8 case, never more than the hypothesis profile's own budget."""
    table = EXAMPLES if everything else DEFAULT_EXAMPLES
    operator, model = table["pooled" if pooled(target) else "cheap"]
    return max(1, min(operator if kind == "operator" else model, settings.default.max_examples))


def quantized_summary(records) -> list[str]:
    """One line on the int8 cases, if any ran: their count, largest error in steps, lowest SQNR."""
    judged = [r.worst for r in records if r.worst is not None and hasattr(r.worst, "qtol")]
    if not judged:
        return []
    import math

    judged = [w for w in judged if math.isfinite(w.max_steps)]  # a shape mismatch has no error in steps
    if not judged:
        return []
    sqnr = [w.sqnr for w in judged if w.sqnr is not None]
    return [f"int8: {len(judged)} cases judged in quantization steps; largest error "
            f"{max(w.max_steps for w in judged):.3g} steps, largest mean signed error "
            f"{max((abs(w.mean_steps) for w in judged if math.isfinite(w.mean_steps)), default=0.0):.3g} steps"
            + (f"; lowest SQNR {min(sqnr):.1f} dB vs float32" if sqnr else "")]
