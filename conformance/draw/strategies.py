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

Deployment variants, and why each range is safe in float32:

- Batch 8 and 16 (SIMD and tile widths) are drawn rarely beside 1-4. Batch does not enter any
  sum (each item is computed on its own), so it changes code paths, not rounding: the error per
  element stays the ~1e-4 above. A per-case element cap, a quarter of it for large batches,
  keeps the time per example where it was.
- ``photo`` inputs are crops of real photographs (``models.photos.INPUT_PHOTOS``), 0-255 or
  0-1: the same range as the synthetic pixel and unit scales, so the same error bound holds;
  they differ in being smooth, correlated and saturated (long runs of 255), which random arrays
  never are.
- ``special_inputs`` (a case family of its own: ordinary cases keep finite inputs) scatters
  NaN, +-Inf, -0.0, subnormals and large magnitudes over an otherwise unit-scale input. IEEE
  propagation of NaN and Inf does not depend on summation order (a NaN term, or +Inf with -Inf,
  or Inf * 0 gives NaN; otherwise an Inf term gives an Inf of its sign), and the finite values
  stay at unit scale so no finite partial sum overflows: torch's NaN/Inf positions and signs
  are the only right answer. -0.0 and subnormals (< 1.2e-38) are far under the tolerance, so a
  runtime that flushes them to zero still passes unless it turns them into NaN or Inf. Large
  magnitudes (1e4 to 1e38, under float32's 3.4e38) are only safe where no arithmetic
  accumulates them (ReLU, PReLU, data movement: exact in float32); in a sum, one rounding step
  of 1e38 is ~1e31 and overflow depends on the order, so cases with arithmetic leave them out
  (``ARITHMETIC_SAFE``).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
from hypothesis import strategies as st

#: Largest number of elements of one drawn input (bounds memory and time per example).
MAX_INPUT_ELEMENTS = 1 << 18

SCALES = {"unit": 1.0, "pixel": 255.0}


def reused(factory):
    """One strategy object per distinct arguments (when they are hashable).

    A case draws its shapes and inputs from strategies made with the drawn structure's values;
    hypothesis validates a new strategy object on its first draw, which cost about as much as
    drawing from it: with the objects reused, an example's draws take about half the time.
    """
    cached = functools.lru_cache(maxsize=4096)(factory)

    @functools.wraps(factory)
    def get(*args, **kwargs):
        try:
            return cached(*args, **kwargs)
        except TypeError:  # an unhashable argument (a list): a fresh object, as before
            return factory(*args, **kwargs)

    return get


def _check_range(name: str, lo: int, hi: int) -> None:
    if lo < 1 or hi < lo:
        raise ValueError(f"{name}: need 1 <= min <= max, got min={lo}, max={hi}")


@reused
@st.composite
def spatial_sizes(draw, *, min_size: int = 1, max_size: int = 96):
    """A height or width: half the time small (1-24, odd and even), else between 25 and 64
    (rows of 32 plus a tail, the width SIMD kernels switch at) or past 64 (the tiling edge)."""
    _check_range("spatial_sizes", min_size, max_size)
    small = st.integers(min_size, max(min_size, min(max_size, 24)))
    bands = [small, small]
    if max(min_size, 25) <= min(max_size, 64):
        bands.append(st.integers(max(min_size, 25), min(max_size, 64)))
    if max_size > 64:
        bands.append(st.integers(max(min_size, 65), max_size))
    return draw(st.one_of(*bands)) if len(bands) > 2 else draw(small)


#: Batch sizes at common SIMD and tile widths, drawn rarely beside ``min_batch..max_batch``.
LARGE_BATCHES = (8, 16)
#: A large-batch draw holds at most the element cap divided by this, so that one costs about
#: as much as an average ordinary draw and the default run's time stays where it was.
LARGE_BATCH_CAP_DIVISOR = 4


def batch_sizes(*, min_batch: int = 1, max_batch: int = 4, large=None):
    """Mostly ``min_batch..max_batch``; one draw in eight a batch from ``large`` (default
    ``LARGE_BATCHES``, read at each call; ``()`` for none).

    The choice shrinks towards the ordinary batches, so a failure needing batch 16 keeps it and
    any other failure shrinks to the smallest batch.
    """
    large = LARGE_BATCHES if large is None else large
    return _batch_sizes(min_batch, max_batch, tuple(sorted(large)))


@reused
@st.composite
def _batch_sizes(draw, min_batch: int, max_batch: int, large: tuple[int, ...]):
    _check_range("shapes(batch)", min_batch, max_batch)
    if large and draw(st.integers(0, 7)) == 7:
        return draw(st.sampled_from(large))
    return draw(st.integers(min_batch, max_batch))


@reused
@st.composite
def shapes(draw, *, channels: int | None = None, min_side: int = 1, max_side: int = 96,
           min_batch: int = 1, max_batch: int = 4, max_channels: int = 16,
           large_batches=None, max_elements: int = MAX_INPUT_ELEMENTS):
    """NCHW shapes: batch 1-4 (8 or 16 now and then), ``channels`` fixed or drawn, odd/even/
    small/large sides, at most ``max_elements`` elements (a per-case cap on time per example).

    Over the cap, an ordinary batch is dropped first and a large batch last (its sides are
    halved first: the large batch is what the draw is for), so the strategy never rejects. A
    large batch gets a quarter of the cap (``LARGE_BATCH_CAP_DIVISOR``).
    """
    n = draw(batch_sizes(min_batch=min_batch, max_batch=max_batch, large=large_batches))
    c = channels if channels is not None else draw(st.integers(1, max_channels))
    h = draw(spatial_sizes(min_size=min_side, max_size=max_side))
    w = draw(spatial_sizes(min_size=min_side, max_size=max_side))
    cap = min(max_elements, MAX_INPUT_ELEMENTS)
    if n > max_batch:  # a quarter of the cap: a large-batch example costs about an average one
        cap = min(cap, max(cap // LARGE_BATCH_CAP_DIVISOR, n * c * min_side * min_side))
    else:
        while n > min_batch and n * c * h * w > cap:
            n -= 1
    while n * c * h * w > cap and max(h, w) > min_side:
        h, w = max(min_side, h // 2), max(min_side, w // 2)
    while n > min_batch and n * c * h * w > cap:
        n -= 1
    return (n, c, h, w)


#: Special values a ``special`` input holds (``special_inputs``).
SPECIAL_KINDS = ("nan", "inf", "-inf", "-0.0", "subnormal", "large")
#: The kinds safe under arithmetic that accumulates (see the module docstring): all but "large".
ARITHMETIC_SAFE = ("nan", "inf", "-inf", "-0.0", "subnormal")
#: Shares of a special input's elements replaced by special values: 0 is sparse (one element of
#: each kind per batch item, so a convolution's output stays mostly finite and its finite part is
#: compared too); 1/8 is dense (every SIMD vector holds some).
SPECIAL_SHARES = (0.0, 1 / 8)


def _special_values(rng: np.random.Generator, kind: str, count: int) -> np.ndarray:
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    if kind == "nan":
        return np.full(count, np.nan)
    if kind in ("inf", "-inf"):
        return np.full(count, np.inf if kind == "inf" else -np.inf)
    if kind == "-0.0":
        return np.full(count, -0.0)
    if kind == "subnormal":  # k * 2**-149 for k in [1, 2**23): every float32 subnormal
        return sign * rng.integers(1, 2**23, size=count) * 2.0**-149
    if kind == "large":
        return sign * 10.0 ** rng.uniform(4, 38, size=count)
    raise ValueError(f"unknown special value kind {kind!r}; valid: {', '.join(SPECIAL_KINDS)}")


def _fill_special(rng: np.random.Generator, shape, kinds, scale: float, share: float) -> np.ndarray:
    """Unit-scale uniform values with ``share`` of the elements (0: one per kind and batch item)
    replaced by special values of ``kinds``, in turn."""
    x = (rng.random(shape) * scale).astype(np.float32)
    flat = x.reshape(-1)
    if not kinds or flat.size == 0:
        return x
    items = shape[0] if len(shape) > 1 else 1
    count = min(flat.size, max(len(kinds) * items, int(flat.size * share)))
    where = rng.choice(flat.size, size=count, replace=False)
    for i, kind in enumerate(kinds):
        spots = where[i::len(kinds)]
        flat[spots] = _special_values(rng, kind, spots.size).astype(np.float32)
    return x


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
    distribution: str  # uniform, normal, integers, photo, special
    seed: int
    zero_rows: int  # leading rows set to exact zero (padding-like borders, dead pixels)
    photo: str = ""  # distribution "photo": which photograph (models.photos.INPUT_PHOTOS)
    special: tuple[str, ...] = ()  # distribution "special": which SPECIAL_KINDS it holds
    special_share: float = 0.0  # distribution "special": one of SPECIAL_SHARES

    def materialize(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        if self.distribution == "photo":
            from conformance.models.photos import photo_crops

            x = photo_crops(self.photo, self.shape, self.seed)
            if self.scale == "unit":
                x /= np.float32(255.0)
        elif self.distribution == "special":
            x = _fill_special(rng, self.shape, self.special, SCALES[self.scale], self.special_share)
        else:
            x = _fill(rng, self.shape, self.distribution, SCALES[self.scale])
        x[..., : self.zero_rows, :] = 0
        return x


@functools.lru_cache(maxsize=None)
def _zero_rows(height: int) -> st.SearchStrategy[int]:
    return st.one_of(st.just(0), st.integers(0, height))


DISTRIBUTIONS = {"unit": ("uniform", "normal", "photo"), "pixel": ("integers", "uniform", "photo")}


@reused
@st.composite
def inputs(draw, shape, *, scales=("unit", "pixel"), photos: bool = True) -> InputRecipe:
    """A float32 input of ``shape`` at unit scale ([0,1), N(0,1/16)) or pixel scale (0-255),
    synthetic or (with ``photos``) cropped from a real photograph at that scale."""
    from conformance.models.photos import INPUT_PHOTOS

    scale = draw(st.sampled_from(tuple(scales)))
    choices = tuple(d for d in DISTRIBUTIONS[scale] if photos or d != "photo")
    distribution = draw(st.sampled_from(choices))
    photo = draw(st.sampled_from(tuple(INPUT_PHOTOS))) if distribution == "photo" else ""
    seed = draw(st.integers(0, 2**32 - 1))
    zero_rows = draw(_zero_rows(shape[-2]))
    return InputRecipe(tuple(shape), scale, distribution, seed, zero_rows, photo)


def special_inputs(shape, *, kinds=SPECIAL_KINDS) -> st.SearchStrategy[InputRecipe]:
    """A unit-scale input of ``shape`` holding a drawn non-empty subset of ``kinds`` (NaN, +-Inf,
    -0.0, subnormals, large magnitudes), sparse or at 1/8 of its elements; shrinks to one kind,
    the first of ``kinds`` (NaN), sparse. ``kinds`` is checked here, before any draw."""
    kinds = tuple(kinds)
    if not kinds or set(kinds) - set(SPECIAL_KINDS):
        raise ValueError(f"special_inputs: kinds must be a non-empty subset of {SPECIAL_KINDS}, got {kinds}")
    chosen = st.lists(st.sampled_from(kinds), min_size=1, max_size=len(kinds), unique=True)
    return st.builds(
        lambda picked, share, seed: InputRecipe(tuple(shape), "unit", "special", seed, 0, "",
                                                tuple(sorted(picked, key=kinds.index)), share),
        chosen, st.sampled_from(SPECIAL_SHARES), st.integers(0, 2**32 - 1),
    )


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


class Deployment(NamedTuple):
    """How the example is deployed: the export's shapes, how often its session runs, how the
    input's memory is laid out, and how many callers run it at once."""

    static: bool  # exported with every dim fixed at the drawn shape (the mobile/tutorial export)
    runs: int  # inputs of the same shape run through one prepared session, in turn
    layout: str = "contiguous"  # or "strided": the input handed over as a non-contiguous view
    callers: int = 1  # then this many threads run it at once, each on its own input (1: none)
    sessions: int = 1  # the sessions those callers share: 1, or 2 prepared from the same model

    def inputs(self, recipe: InputRecipe) -> list[InputRecipe]:
        """``runs`` recipes: ``recipe`` first, then the same shape and kind with other seeds."""
        return [recipe] + [recipe._replace(seed=(recipe.seed + k) % 2**32) for k in range(1, self.runs)]

    def overlap_inputs(self, recipe: InputRecipe) -> list[InputRecipe]:
        """One recipe per caller running at once (none when ``callers`` is 1): other seeds again."""
        if self.callers < 2:
            return []
        return [recipe._replace(seed=(recipe.seed + self.runs + k) % 2**32) for k in range(self.callers)]

    def lay_out(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """``arrays`` as handed to the runtime: the first (the data input) as a non-contiguous
        view under the strided layout, the rest (weights fed as inputs) as they are."""
        if self.layout == "contiguous" or not arrays:
            return list(arrays)
        return [strided_view(arrays[0])] + list(arrays[1:])


def strided_view(x: np.ndarray) -> np.ndarray:
    """``x``'s values in non-contiguous memory, as callers hand them over: a 4-D array as a
    channels-last (NHWC) buffer seen as NCHW (an image pipeline's transposed frame); any other
    as every other element of a buffer twice as long on its last axis (a crop of a wider row).
    One channel in NHWC is NCHW's own order, so such inputs take the second form."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] > 1:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if x.ndim == 0 or x.shape[-1] == 0:
        return x.copy()
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    wide[..., ::2] = x
    return wide[..., ::2]


#: How an input's memory may be handed over (``Deployment.layout``).
LAYOUTS = ("contiguous", "strided")
#: (callers at once, sessions they share) of ``deployments(overlap=True)``.
OVERLAPS = ((1, 1), (3, 1), (3, 2))


def deployments(*, static: bool = True, max_runs: int = 3, overlap: bool = True) -> st.SearchStrategy[Deployment]:
    """Static or dynamic export (``static=False`` where an export per shape is too dear, as with
    dynamo at ~1-7 s each), 2..``max_runs`` runs of one session, as deployed sessions run many
    times, the input's memory layout, and (``overlap``) 3 callers at once on one or two sessions.
    Shrinks to a dynamic export run twice, contiguous, one caller."""
    if max_runs < 2:
        raise ValueError(f"deployments: max_runs must be >= 2 (a session runs more than once), got {max_runs}")
    return st.builds(lambda static_, runs, layout, callers: Deployment(static_, runs, layout, *callers),
                     st.booleans() if static else st.just(False), st.integers(2, max_runs),
                     st.sampled_from(LAYOUTS), st.sampled_from(OVERLAPS if overlap else OVERLAPS[:1]))
