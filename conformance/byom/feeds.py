"""Hypothesis strategies for a model's inputs, read from the model itself.

As in ``conformance.draw.strategies``, hypothesis draws what matters (the size of each symbolic
dimension, a distribution, a scale, a seed per input) and numpy fills the arrays from the
seed, so examples stay small to print, exact to replay, and shrink towards the smallest sizes.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np
from hypothesis import strategies as st

from conformance.byom.onnx_inputs import InputSpec

#: Float distributions: ``unit`` [0, 1), ``normal`` N(0, 1), ``wide`` uniform (-100, 100).
FLOAT_DISTRIBUTIONS = ("unit", "normal", "wide")
#: Integer inputs are often indices or counts: small non-negative values stay valid for both.
INT_RANGE = (0, 4)


class ArrayRecipe(NamedTuple):
    """How to make one input array."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    distribution: str
    seed: int

    def materialize(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        dtype = np.dtype(self.dtype)
        if dtype.kind == "b":
            return rng.random(self.shape) < 0.5
        if dtype.kind in "iu":
            return rng.integers(INT_RANGE[0], INT_RANGE[1], size=self.shape).astype(dtype)
        if self.distribution == "normal":
            x = rng.standard_normal(self.shape)
        elif self.distribution == "wide":
            x = rng.uniform(-100.0, 100.0, self.shape)
        else:
            x = rng.random(self.shape)
        return x.astype(dtype)


class FeedRecipe(NamedTuple):
    """One example: a size for every symbolic dimension and a recipe per input."""

    sizes: tuple[tuple[str, int], ...]
    arrays: tuple[ArrayRecipe, ...]

    def materialize(self) -> list[np.ndarray]:
        """The input arrays in model-input order."""
        return [a.materialize() for a in self.arrays]

    def describe(self) -> str:
        dims = ", ".join(f"{n}={v}" for n, v in self.sizes) or "all static"
        arrays = "; ".join(f"{a.name} {a.dtype}{list(a.shape)} {a.distribution} seed {a.seed}" for a in self.arrays)
        return f"dims {dims}; {arrays}"


@st.composite
def feeds(draw, specs: list[InputSpec], ranges: Mapping[str, tuple[int, int]],
          *, distributions=FLOAT_DISTRIBUTIONS) -> FeedRecipe:
    """A ``FeedRecipe`` for ``specs``: each symbolic dimension drawn once from its range."""
    sizes = {name: draw(st.integers(lo, hi), label=name) for name, (lo, hi) in ranges.items()}
    distribution = draw(st.sampled_from(distributions), label="distribution")
    arrays = tuple(
        ArrayRecipe(s.name, s.shape(sizes), s.dtype.name, distribution,
                    draw(st.integers(0, 2**32 - 1), label=f"seed of {s.name}"))
        for s in specs
    )
    return FeedRecipe(tuple(sizes.items()), arrays)
