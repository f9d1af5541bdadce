"""One small spec per operator of the shipped models: Conv2d, ReLU, PixelShuffle.

Each spec draws the operator's structure (the attributes that change the exported graph),
and the case runner draws shapes, weights and inputs for it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn as nn
from hypothesis import strategies as st

from conformance.spec import Case
from conformance.strategies import shapes


class ConvStructure(NamedTuple):
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias: bool

    def min_side(self) -> int:
        """Smallest input side that leaves at least one output pixel on both axes."""
        return max(1, max(d * (k - 1) + 1 - 2 * p for k, p, d in zip(self.kernel, self.padding, self.dilation)))


def _pair(inner):
    return st.one_of(inner.map(lambda v: (v, v)), st.tuples(inner, inner))


@st.composite
def conv_structures(draw):
    groups = draw(st.sampled_from([1, 1, 1, 2, 4]))
    # The model's own channel counts (1, 9, 32, 64) among small ones; in*k*k bounded (strategies.py).
    per_group_in = draw(st.sampled_from([1, 2, 3, 4, 8, 16, 32, 64])) if groups == 1 else draw(st.integers(1, 4))
    per_group_out = draw(st.sampled_from([1, 2, 4, 9, 16, 32, 64])) if groups == 1 else draw(st.integers(1, 4))
    depthwise = groups > 1 and draw(st.booleans())
    if depthwise:
        per_group_in = 1
    kernel = draw(_pair(st.integers(1, 5)))
    padding = draw(_pair(st.integers(0, 2)))
    return ConvStructure(
        in_channels=groups * per_group_in,
        out_channels=groups * per_group_out,
        kernel=kernel,
        stride=draw(_pair(st.integers(1, 3))),
        padding=(min(padding[0], kernel[0] // 2 + 1), min(padding[1], kernel[1] // 2 + 1)),
        dilation=draw(_pair(st.integers(1, 2))),
        groups=groups,
        bias=draw(st.booleans()),
    )


# With the dynamo exporter: the tutorial model's own convolutions plus one of each attribute.
CONV_POOL = (
    ConvStructure(1, 64, (5, 5), (1, 1), (2, 2), (1, 1), 1, True),  # conv1
    ConvStructure(64, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),  # conv3
    ConvStructure(3, 4, (1, 5), (2, 1), (0, 2), (1, 2), 1, False),  # non-square, stride, dilation, no bias
    ConvStructure(4, 8, (3, 2), (1, 3), (1, 0), (2, 1), 2, True),  # groups
    ConvStructure(4, 4, (3, 3), (2, 2), (1, 1), (1, 1), 4, True),  # depthwise
)


def _build_conv(s: ConvStructure) -> nn.Module:
    return nn.Conv2d(s.in_channels, s.out_channels, s.kernel, s.stride, s.padding, s.dilation, s.groups, s.bias)


CONV2D = Case(
    name="conv2d",
    kind="operator",
    covers=frozenset({"Conv"}),
    structures=conv_structures,
    build=_build_conv,
    input_shapes=lambda s: shapes(channels=s.in_channels, min_side=s.min_side()),
    example_shape=lambda s: (2, s.in_channels, s.min_side() + 11, s.min_side() + 14),
    pool=CONV_POOL,
)

RELU = Case(
    name="relu",
    kind="operator",
    covers=frozenset({"Relu"}),
    structures=lambda: st.just(()),
    build=lambda s: nn.ReLU(),
    input_shapes=lambda s: shapes(max_channels=64),
    example_shape=lambda s: (2, 3, 5, 7),
    pool=((),),
    dynamic=(0, 1, 2, 3),
)


class ShuffleStructure(NamedTuple):
    factor: int
    out_channels: int


PIXEL_SHUFFLE = Case(
    name="pixel_shuffle",
    kind="operator",
    # DepthToSpace from opset 11; at opset 9 the exporter writes Reshape/Transpose with
    # Unsqueeze/Squeeze/Constant plumbing: those are this case's operators too.
    covers=frozenset({"DepthToSpace", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Constant"}),
    structures=lambda: st.builds(ShuffleStructure, st.sampled_from([2, 3, 4]), st.sampled_from([1, 2, 3, 5])),
    build=lambda s: nn.PixelShuffle(s.factor),
    input_shapes=lambda s: shapes(channels=s.out_channels * s.factor**2, max_side=80),
    example_shape=lambda s: (2, s.out_channels * s.factor**2, 5, 7),
    pool=(ShuffleStructure(2, 3), ShuffleStructure(3, 1), ShuffleStructure(4, 2)),
)

OPERATORS = (CONV2D, RELU, PIXEL_SHUFFLE)
