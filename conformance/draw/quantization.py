"""What hypothesis draws for a quantized example: the quantization recipe and the edge inputs.

A quantized model is only as good as its calibration, and int8 kernels differ where values sit
on a rounding edge. So beside the structure and weights, hypothesis draws:

- the calibration set (``QuantRecipe``): how many draws (1-16), their range relative to the
  inputs the model will see (a quarter of it up to twice it: a narrow calibration makes later
  inputs saturate), their distribution, and per-tensor or per-channel weight scales;
- the inputs (``QuantInputRecipe``): an ordinary input (``strategies.inputs``) of which a share
  is moved onto an edge once the input's scale and zero point are known: exactly on half steps
  (``(j + 0.5) * scale``: the tie that round-half-to-even decides), or past the calibrated range
  (saturation at -128 or 127).

Everything stays a small, exact, replayable recipe; shrinking goes towards one calibration draw
at the inputs' own range, per-tensor scales, and ordinary inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, NamedTuple

import numpy as np
from hypothesis import strategies as st

from conformance.draw.spec import Case
from conformance.draw.strategies import SCALES, WEIGHT_POOL, InputRecipe, WeightRecipe, inputs, reused, weights

#: The edges a quantized input may be moved onto (``QuantInputRecipe.edge``).
EDGES = ("none", "half-steps", "past-range")
#: Calibration ranges relative to the inputs' own: narrower ones make inputs saturate.
CALIBRATION_RANGES = (1.0, 0.5, 0.25, 2.0)


class QuantRecipe(NamedTuple):
    """How to quantize a model: weight scales per tensor or per output channel, and the
    calibration set (``count`` arrays at ``range`` times the inputs' scale, seeded)."""

    per_channel: bool
    count: int
    range: float
    distribution: str  # "uniform" (non-negative, as images) or "normal" (signed)
    seed: int

    def calibration(self, shape: tuple[int, ...], scale: str) -> list[np.ndarray]:
        """The calibration arrays for inputs of ``shape`` at ``scale`` ("unit" or "pixel")."""
        rng = np.random.default_rng(self.seed)
        top = SCALES[scale] * self.range
        if self.distribution == "normal":
            return [(rng.standard_normal(shape) * top / 4).astype(np.float32) for _ in range(self.count)]
        return [(rng.random(shape) * top).astype(np.float32) for _ in range(self.count)]

    def describe(self) -> str:
        return (f"{'per-channel' if self.per_channel else 'per-tensor'} weights; calibrated on {self.count} "
                f"{self.distribution} draw{'s' if self.count > 1 else ''} at {self.range:g}x the input range "
                f"(seed {self.seed})")


class FolderCalibration(NamedTuple):
    """A user's calibration set: every ``.npy`` file of ``folder`` (sorted by name), each an input
    of the shape quantized."""

    folder: str
    per_channel: bool

    def calibration(self, shape: tuple[int, ...], scale: str) -> list[np.ndarray]:
        from pathlib import Path

        arrays = [np.load(p).astype(np.float32) for p in sorted(Path(self.folder).glob("*.npy"))]
        wrong = [a.shape for a in arrays if tuple(a.shape) != tuple(shape)]
        if not arrays or wrong:
            raise ValueError(f"calibration folder {self.folder}: needs .npy inputs of shape {tuple(shape)}, "
                             f"found {wrong[:3] or 'none'}")
        return arrays

    def describe(self) -> str:
        return f"{'per-channel' if self.per_channel else 'per-tensor'} weights; calibrated on the .npy files of {self.folder}"


class QuantInputRecipe(NamedTuple):
    """An ordinary input recipe, with ``share`` of its elements moved onto ``edge``."""

    base: InputRecipe
    edge: str  # one of EDGES
    share: float  # of the elements moved (1.0: all)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.base.shape

    @property
    def scale(self) -> str:
        return self.base.scale

    def materialize(self, scale: float | None = None, zero_point: int = 0, qmin: int = -128,
                    qmax: int = 127) -> np.ndarray:
        """The array; ``scale`` and ``zero_point`` are the model's input quantization (needed
        for the edges; None leaves the ordinary input)."""
        x = self.base.materialize()
        if self.edge == "none" or scale is None or not x.size:
            return x
        rng = np.random.default_rng(self.base.seed ^ 0x5EED)
        moved = rng.random(x.shape) < self.share
        if self.edge == "half-steps":
            edge = half_steps(x, scale, zero_point, qmin, qmax)
        else:
            edge = past_range(x, scale, zero_point, qmin, qmax, rng)
        return np.where(moved, edge, x).astype(np.float32)

    def describe(self) -> str:
        what = {"none": "", "half-steps": "on half steps", "past-range": "past the calibrated range"}[self.edge]
        return f"{self.base.distribution}" + (f", {self.share:.0%} of elements {what}" if what else "")


def half_steps(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """Each element moved to the half step ``(j + 0.5) * scale`` just above it, ``j`` inside the
    quantized range: where ``x / scale`` is a tie that only the rounding rule decides. Computed in
    float64 and rounded once to float32 (the nearest float32 to the tie)."""
    lo, hi = qmin - zero_point, qmax - zero_point - 1
    j = np.clip(np.floor(x.astype(np.float64) / scale), lo, hi)
    return ((j + 0.5) * float(scale)).astype(np.float32)


def past_range(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int,
               rng: np.random.Generator) -> np.ndarray:
    """Values 1.5-4 times past the quantized range's ends, on the side of each element's sign
    (from the zero point), so they must saturate at ``qmin`` or ``qmax``."""
    top, bottom = (qmax - zero_point) * float(scale), (qmin - zero_point) * float(scale)
    factor = rng.uniform(1.5, 4.0, size=x.shape)
    side = np.where(x >= 0, top if top > 0 else abs(bottom), bottom if bottom < 0 else -abs(top))
    return (side * factor).astype(np.float32)


def quant_recipes() -> st.SearchStrategy[QuantRecipe]:
    """Calibrations: 1-16 draws at a quarter to twice the inputs' range, uniform or normal, and
    per-tensor or per-channel weight scales. Shrinks to one uniform draw at the inputs' range."""
    return st.builds(
        QuantRecipe,
        per_channel=st.booleans(),
        count=st.integers(1, 16),
        range=st.sampled_from(CALIBRATION_RANGES),
        distribution=st.sampled_from(("uniform", "normal")),
        seed=st.integers(0, 2**32 - 1),
    )


#: Where quantizing is dear (PT2E with a dynamo export, ~3 s; an ExecuTorch lowering, ~10 s):
#: recipes come from this pool, one of each scheme, one of them calibrated narrow.
QUANT_POOL = (
    QuantRecipe(per_channel=True, count=8, range=1.0, distribution="uniform", seed=1),
    QuantRecipe(per_channel=False, count=4, range=0.5, distribution="normal", seed=2),
)


@reused
@st.composite
def quant_inputs(draw, shape, *, scales=("unit", "pixel")) -> QuantInputRecipe:
    """An input of ``shape`` (``strategies.inputs``, no photographs: the edges are the point),
    with none, a quarter or all of its elements moved onto a drawn edge."""
    base = draw(inputs(tuple(shape), scales=scales, photos=False))
    edge = draw(st.sampled_from(EDGES))
    share = 0.0 if edge == "none" else draw(st.sampled_from((1.0, 0.25)))
    return QuantInputRecipe(base, edge, share)


@dataclass(frozen=True)
class QuantExample:
    """Everything drawn for one quantized example (printed by hypothesis, enough to replay it)."""

    structure: Hashable
    weights: WeightRecipe
    quant: QuantRecipe
    inputs: QuantInputRecipe


def quant_examples(case: Case, *, pooled: bool, recipes=None) -> st.SearchStrategy[QuantExample]:
    """Quantized examples of ``case``. Each one is quantized at its own input shape (static, as
    mobile int8 models are), so where quantizing is dear (``pooled``) structures, weights and
    recipes come from small pools and the shape is the case's example shape at batch 1: the
    inputs (seeds and edges) are what varies between the examples sharing an artifact."""
    structures = case.structure_strategy("dynamo") if pooled else case.structures()
    weight_recipes = st.sampled_from(WEIGHT_POOL) if pooled else weights()
    own = recipes is not None  # a registered module's calibration (``FolderCalibration``): at its shape
    if not own:
        recipes = st.sampled_from(QUANT_POOL) if pooled else quant_recipes()
    shapes_for = reused(case.input_shapes)

    @st.composite
    def examples(draw):
        structure = draw(structures)
        if own:
            shape = case.example_shape(structure)
        else:
            shape = (1, *case.example_shape(structure)[1:]) if pooled else draw(shapes_for(structure))
        return QuantExample(structure, draw(weight_recipes), draw(recipes),
                            draw(quant_inputs(tuple(shape), scales=case.scales)))

    return examples()
