"""The int8 verdict: errors in quantization steps of the output's scale, and their bias.

Decimal-3 means nothing for an int8 output: one step of a typical output scale is already
5e-3, and a correct int8 runtime may land one step from the fake-quant reference because it
rounds at other places (requantizing an int32 accumulator instead of quantizing a float sum).
ExecuTorch's own tester allows exactly that (``qtol``). So a quantized output passes when

1. every element is within ``qtol`` steps of the reference (default 1; overrides per runtime
   and operator are data in ``expected_failures.toml``), and
2. the errors are unbiased: correct runtimes' one-step differences come from where rounding
   happens and have either sign, so their mean over ``n`` elements stays within a few
   ``1/sqrt(n)`` of zero (Hoeffding: each error is at most one step, so a mean beyond
   ``4/sqrt(n)`` has probability below 2*exp(-8), 0.07%, even if every element were one step
   off at random). A zero point off by one moves every element one step the same way: it passes
   rule 1 and fails this one. The bound never goes under ``BIAS_FLOOR`` steps.

Where the reference's float32 result sits on a rounding tie, the float64 reference decides:
each element's error is the smaller of its errors against the two (``expected64``).

SQNR against the float32 model is reported beside the verdict as quality, not parity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from conformance.engine.compare import CompareResult, error_histogram

DEFAULT_QTOL = 1
#: The bias bound: ``max(BIAS_FLOOR, BIAS_SIGMAS / sqrt(n))`` steps (see the module docstring).
BIAS_SIGMAS = 4.0
BIAS_FLOOR = 0.1


def bias_bound(n: int) -> float:
    """Largest mean signed error, in steps, that correct rounding reaches over ``n`` elements."""
    return max(BIAS_FLOOR, BIAS_SIGMAS / math.sqrt(max(n, 1)))


def sqnr_db(float_output, quantized_output) -> float:
    """Signal-to-quantization-noise ratio of ``quantized_output`` against the float model's, in dB
    (inf when they are equal)."""
    f = np.asarray(float_output, np.float64)
    noise = float(np.sum((f - np.asarray(quantized_output, np.float64)) ** 2))
    signal = float(np.sum(f ** 2))
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


@dataclass
class QCompareResult(CompareResult):
    """A ``CompareResult`` in steps: ``margin`` is the worst error over ``qtol`` steps."""

    scale: float = 1.0
    zero_point: int = 0
    qtol: int = DEFAULT_QTOL
    max_steps: float = 0.0
    mean_steps: float = 0.0  # signed: runtime minus reference
    bias_limit: float = 0.0
    one_step: int = 0  # elements exactly one step off
    sqnr: float | None = None  # dB, runtime against the float32 model
    failed_rule: str = ""  # "", "qtol", "bias", "qtol+bias"

    @property
    def tolerance(self) -> float:
        return self.qtol * self.scale

    @property
    def margin(self) -> float:
        steps = self.max_steps / self.qtol if self.qtol else math.inf
        return max(steps, abs(self.mean_steps) / self.bias_limit if self.bias_limit else 0.0)

    def summary(self) -> str:
        if self.shape_error:
            return self.shape_error
        text = (f"max error {self.max_steps:.3g} steps ({self.max_abs:.3g}) at {list(self.worst_index)} "
                f"(got {self.actual_at_worst:.7g}, expected {self.expected_at_worst:.7g}; qtol {self.qtol} "
                f"step{'s' if self.qtol != 1 else ''}); {self.one_step} of {self.total} elements one step off, "
                f"{self.mismatches} past qtol; mean signed error {self.mean_steps:+.3g} steps "
                f"(bias bound {self.bias_limit:.3g}); output scale {self.scale:.6g}, zero point {self.zero_point}")
        if self.failed_rule:
            text += f"; fails: {self.failed_rule}"
        if self.sqnr is not None:
            text += f"; SQNR {self.sqnr:.1f} dB vs float32"
        return text


def qcompare(actual, expected, scale: float, zero_point: int = 0, *, qtol: int = DEFAULT_QTOL,
             expected64=None, float_output=None) -> QCompareResult:
    """Judge one quantized output against the fake-quant reference in steps of ``scale``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return QCompareResult(ok=False, decimal=0, max_abs=math.inf, max_rel=math.inf, ulp=0,
                              mismatches=expected.size, total=expected.size, worst_index=(),
                              actual_at_worst=math.nan, expected_at_worst=math.nan, scale=scale,
                              zero_point=zero_point, qtol=qtol, max_steps=math.inf, failed_rule="shape",
                              shape_error=f"shape mismatch: backend gave {actual.shape}, reference is {expected.shape}")
    steps = _signed_steps(actual, expected, scale, expected64)
    magnitude = np.where(np.isfinite(steps), np.abs(steps), np.inf)
    n = int(steps.size)
    flat = int(np.argmax(magnitude)) if n else 0
    max_steps = float(magnitude.flat[flat]) if n else 0.0
    mean = float(np.mean(steps)) if n and np.isfinite(steps).all() else (0.0 if not n else math.inf)
    limit = bias_bound(n)
    # Half a step of slack: float32 arithmetic puts "one step" a hair past 1.0.
    past = magnitude > qtol + 0.5
    rules = [name for name, broken in (("qtol", bool(past.any())), ("bias", abs(mean) > limit)) if broken]
    worst = np.unravel_index(flat, steps.shape) if n else ()
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return QCompareResult(
        ok=not rules, decimal=0, max_abs=max_steps * scale, max_rel=0.0, ulp=0,
        mismatches=int(np.count_nonzero(past)), total=n, worst_index=tuple(int(i) for i in worst),
        actual_at_worst=float(actual[worst]) if n else 0.0, expected_at_worst=float(expected[worst]) if n else 0.0,
        histogram=error_histogram(diff) if rules else None, scale=float(scale), zero_point=int(zero_point),
        qtol=qtol, max_steps=max_steps, mean_steps=mean, bias_limit=limit,
        one_step=int(np.count_nonzero(np.round(magnitude) == 1)),
        sqnr=None if float_output is None else sqnr_db(float_output, actual), failed_rule="+".join(rules),
    )


def _signed_steps(actual, expected, scale: float, expected64) -> np.ndarray:
    """(actual - expected) / scale per element, in float64; with ``expected64``, each element
    against whichever reference it is closer to (float64 decides a float32 tie)."""
    a = actual.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        steps = (a - expected.astype(np.float64)) / scale
        if expected64 is not None and np.shape(expected64) == actual.shape:
            other = (a - np.asarray(expected64, np.float64)) / scale
            steps = np.where(np.abs(other) < np.abs(steps), other, steps)
    return np.where(np.isnan(steps), np.inf, steps)
