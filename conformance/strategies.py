"""Hypothesis strategies for shapes, weights and inputs.

Arrays are large (up to ~10^5-10^6 elements), far past what drawing element by element can
afford, so hypothesis draws what matters for parity (shape, scale, distribution, exact zeros,
sign, a seed) and numpy fills the array from the seed. Failing examples still shrink: to the
smallest shape, unit scale, seed 0.

Magnitudes are kept where float32 rounding stays well under the decimal-3 tolerance (1.5e-3).
Two correct float32 implementations of a K-term dot product differ by about
eps32 * sqrt(K) * |partial sums| (eps32 = 6e-8). Weights stay at init scale (PyTorch's default
uniform(+-1/sqrt(fan_in)), or orthogonal rows of norm sqrt(2) as the super-resolution model
uses), K <= 576 (the model's largest fan-in, ops.MAX_FAN_IN) and inputs at most 255 (pixel
scale), so outputs stay in the hundreds and the two sides differ by ~1e-4. Measured over full
runs here: the closest pass used 16-36% of the tolerance (pixel-scale Conv2d and
SuperResolutionNet), most cases under 10%; the thorough profile's 35-41%.
Deeper models (SRResNet) take unit-scale inputs, as they do in practice.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from hypothesis import strategies as st

#: Largest number of elements of one drawn input (bounds memory and time per example).
MAX_INPUT_ELEMENTS = 1 << 18

SCALES = {"unit": 1.0, "pixel": 255.0}


def _check_range(name: str, lo: int, hi: int) -> None:
    if lo < 1 or hi < lo:
        raise ValueError(f"{name}: need 1 <= min <= max, got min={lo}, max={hi}")


@st.composite
def spatial_sizes(draw, *, min_size: int = 1, max_size: int = 96):
    """A height or width: mostly small (odd and even), sometimes past 64 (the tiling edge)."""
    _check_range("spatial_sizes", min_size, max_size)
    small = st.integers(min_size, max(min_size, min(max_size, 24)))
    if max_size <= 64:
        return draw(small)
    large = st.integers(max(min_size, 65), max_size)
    return draw(st.one_of(small, small, large))


@st.composite
def shapes(draw, *, channels: int | None = None, min_side: int = 1, max_side: int = 96,
           min_batch: int = 1, max_batch: int = 4, max_channels: int = 16):
    """NCHW shapes: batch 1-4, ``channels`` fixed or drawn, odd/even/small/large sides.

    Shapes over ``MAX_INPUT_ELEMENTS`` are shrunk by dropping the batch first, so the strategy
    never rejects.
    """
    _check_range("shapes(batch)", min_batch, max_batch)
    n = draw(st.integers(min_batch, max_batch))
    c = channels if channels is not None else draw(st.integers(1, max_channels))
    h = draw(spatial_sizes(min_size=min_side, max_size=max_side))
    w = draw(spatial_sizes(min_size=min_side, max_size=max_side))
    while n > 1 and n * c * h * w > MAX_INPUT_ELEMENTS:
        n -= 1
    while n * c * h * w > MAX_INPUT_ELEMENTS and max(h, w) > min_side:
        h, w = max(min_side, h // 2), max(min_side, w // 2)
    return (n, c, h, w)


def _fill(rng: np.random.Generator, shape, distribution: str, scale: float) -> np.ndarray:
    if distribution == "uniform":
        x = rng.random(shape) * scale
    elif distribution == "normal":  # negatives too; unit scale only makes sense here
        x = rng.standard_normal(shape) * (scale / 4)
    elif distribution == "integers":  # what an 8-bit image really holds
        x = rng.integers(0, int(scale) + 1, size=shape).astype(np.float64)
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    return x.astype(np.float32)


class InputRecipe(NamedTuple):
    """How to make one input array; small to print, exact to replay."""

    shape: tuple[int, ...]
    scale: str
    distribution: str
    seed: int
    zero_rows: int  # leading rows set to exact zero (padding-like borders, dead pixels)

    def materialize(self) -> np.ndarray:
        x = _fill(np.random.default_rng(self.seed), self.shape, self.distribution, SCALES[self.scale])
        x[..., : self.zero_rows, :] = 0
        return x


@st.composite
def inputs(draw, shape, *, scales=("unit", "pixel")) -> InputRecipe:
    """A float32 input of ``shape`` at unit scale ([0,1), N(0,1/16)) or pixel scale (0-255)."""
    scale = draw(st.sampled_from(scales))
    distribution = draw(st.sampled_from(
        ["uniform", "normal"] if scale == "unit" else ["integers", "uniform"]
    ))
    seed = draw(st.integers(0, 2**32 - 1))
    zero_rows = draw(st.one_of(st.just(0), st.integers(0, shape[-2])))
    return InputRecipe(tuple(shape), scale, distribution, seed, zero_rows)


def _orthogonal_relu(shape, rng: np.random.Generator) -> np.ndarray:
    """What ``torch.nn.init.orthogonal_(w, gain=calculate_gain("relu"))`` makes, seeded.

    numpy's QR: torch's is ~30x slower on these small matrices here.
    """
    rows, cols = shape[0], int(np.prod(shape[1:]))
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diagonal(r))
    if rows < cols:
        q = q.T
    return (q.reshape(shape) * math.sqrt(2.0)).astype(np.float32)


def _param(rng, name: str, shape, init: str, zero_fraction: float) -> np.ndarray:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 0
    if name.endswith("running_var"):  # BatchNorm statistics: variances are positive
        return rng.uniform(0.25, 2.0, size=shape).astype(np.float32)
    if name.endswith("running_mean"):
        return rng.normal(0.0, 0.5, size=shape).astype(np.float32)
    if name.endswith("weight") and len(shape) >= 2 and init == "orthogonal-relu":
        value = _orthogonal_relu(shape, rng)
    else:  # PyTorch's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
        bound = 1.0 / math.sqrt(max(fan_in, 1)) if fan_in else 0.5
        value = rng.uniform(-bound, bound, size=shape)
    value = np.asarray(value, np.float32)
    if zero_fraction:
        value[rng.random(shape) < zero_fraction] = 0.0
    return value


class WeightRecipe(NamedTuple):
    """How to make every floating tensor of a module's state dict (parameters, BN statistics)."""

    init: str  # "pytorch-default" or "orthogonal-relu" (the super-resolution model's own)
    zero_fraction: float
    seed: int

    def materialize(self, module: torch.nn.Module) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return {
            name: _param(rng, name, tuple(t.shape), self.init, self.zero_fraction)
            for name, t in module.state_dict().items()
            if t.is_floating_point()
        }


#: With an expensive exporter and a case that bakes weights into each export, weights come from
#: this pool (one of each init, the second with exact zeros) so exports stay few.
WEIGHT_POOL = (
    WeightRecipe("orthogonal-relu", 0.0, 1),
    WeightRecipe("pytorch-default", 0.3, 2),
)


def weights() -> st.SearchStrategy[WeightRecipe]:
    """Weights at realistic init scales: PyTorch's default uniform, or orthogonal with the
    ReLU gain as the super-resolution model does; with a fraction of exact zeros (all-zero too)."""
    return st.builds(
        WeightRecipe,
        init=st.sampled_from(["pytorch-default", "orthogonal-relu"]),
        zero_fraction=st.sampled_from([0.0, 0.0, 0.3, 1.0]),
        seed=st.integers(0, 2**32 - 1),
    )
