"""One small spec per operator of the shipped models.

SuperResolutionNet: Conv2d, ReLU, PixelShuffle. SRResNet adds BatchNorm2d (standalone, where it
reaches the backend as BatchNormalization, and after a Conv, where the exporter folds it),
PReLU (one slope and per-channel), the residual Add, and PixelShuffle with many channels.

Each spec draws the operator's structure (the attributes that change the exported graph),
and the case runner draws shapes, weights and inputs for it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch.nn as nn
from hypothesis import strategies as st

from conformance.draw.spec import Case
from conformance.draw.strategies import ARITHMETIC_SAFE, SPECIAL_KINDS as SPECIAL_KINDS_ALL, shapes


MAX_FAN_IN = 576


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


@functools.lru_cache(maxsize=None)
def _pair(inner):  # one strategy object per inner one: see strategies.reused
    return st.one_of(inner.map(lambda v: (v, v)), st.tuples(inner, inner))


@st.composite
def conv_structures(draw):
    groups = draw(st.sampled_from((1, 1, 1, 2, 4)))
    # The model's own channel counts (1, 9, 32, 64) among small ones; fan-in bounded below.
    per_group_in = draw(st.sampled_from((1, 2, 3, 4, 8, 16, 32, 64))) if groups == 1 else draw(st.integers(1, 4))
    per_group_out = draw(st.sampled_from((1, 2, 4, 9, 16, 32, 64))) if groups == 1 else draw(st.integers(1, 4))
    depthwise = groups > 1 and draw(st.booleans())
    if depthwise:
        per_group_in = 1
    kernel = draw(_pair(st.integers(1, 5)))
    # Fan-in at most the model's largest (conv2: 64 x 3 x 3 = 576): past it, two correct float32
    # sums of pixel-scale inputs drift apart by ~40% of the decimal-3 tolerance (thorough profile).
    per_group_in = max(1, min(per_group_in, MAX_FAN_IN // (kernel[0] * kernel[1])))
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


# With the dynamo exporter (~1 s per export): the tutorial model's first convolution plus one
# structure for each other attribute.
CONV_POOL = (
    ConvStructure(1, 64, (5, 5), (1, 1), (2, 2), (1, 1), 1, True),  # conv1
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
    # 64 output channels: SRResNet's upsampling blocks (256 -> 64 at factor 2).
    structures=lambda: st.builds(ShuffleStructure, st.sampled_from([2, 3, 4]), st.sampled_from([1, 2, 3, 5, 64])),
    build=lambda s: nn.PixelShuffle(s.factor),
    input_shapes=lambda s: shapes(channels=s.out_channels * s.factor**2, max_side=80),
    example_shape=lambda s: (2, s.out_channels * s.factor**2, 5, 7),
    pool=(ShuffleStructure(3, 1), ShuffleStructure(4, 2), ShuffleStructure(2, 64)),
)

#: Channel counts of the per-channel operators: the models' own (1, 3, 64), SIMD widths (4, 16)
#: and widths with a remainder past them (5, 9, 17, 33), where vectorized loops take a tail path.
CHANNELS = st.sampled_from((1, 3, 4, 5, 9, 16, 17, 33, 64))

BATCHNORM = Case(
    name="batchnorm2d",
    kind="operator",
    covers=frozenset({"BatchNormalization"}),
    structures=lambda: CHANNELS,
    build=lambda c: nn.BatchNorm2d(c).eval(),  # eval: running statistics, as deployed
    input_shapes=lambda c: shapes(channels=c),
    example_shape=lambda c: (2, c, 5, 7),
    pool=(4,),
)


def _build_conv_bn(s: ConvStructure) -> nn.Module:
    return nn.Sequential(_build_conv(s), nn.BatchNorm2d(s.out_channels)).eval()


CONV_BN = Case(
    name="conv_bn",
    kind="operator",
    covers=frozenset({"Conv"}),  # eval-mode export folds the BatchNorm into the Conv
    structures=conv_structures,
    build=_build_conv_bn,
    input_shapes=CONV2D.input_shapes,
    example_shape=CONV2D.example_shape,
    pool=(CONV_POOL[2],),
    bakes_weights=True,
)


class PReLUStructure(NamedTuple):
    channels: int
    per_channel: bool  # one slope per channel (SRResNet) or one shared slope (PyTorch's default)


PRELU = Case(
    name="prelu",
    kind="operator",
    covers=frozenset({"PRelu"}),
    structures=lambda: st.builds(PReLUStructure, CHANNELS, st.booleans()),
    build=lambda s: nn.PReLU(s.channels if s.per_channel else 1),
    input_shapes=lambda s: shapes(channels=s.channels),
    example_shape=lambda s: (2, s.channels, 5, 7),
    pool=(PReLUStructure(4, True), PReLUStructure(4, False)),
    bakes_weights=True,  # exporters rename and reshape the slopes ([C] -> [C,1,1])
)


class Residual(nn.Module):
    """``x + conv1x1(x)``: the skip connection of a residual block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x + self.conv(x)


RESIDUAL_ADD = Case(
    name="residual_add",
    kind="operator",
    covers=frozenset({"Add"}),
    structures=lambda: CHANNELS,
    build=Residual,
    input_shapes=lambda c: shapes(channels=c),
    example_shape=lambda c: (2, c, 5, 7),
    pool=(64,),
)

OPERATORS = (CONV2D, RELU, PIXEL_SHUFFLE, BATCHNORM, CONV_BN, PRELU, RESIDUAL_ADD)

#: The special values each operator's special-values case may hold (``strategies.special_inputs``).
#: Large magnitudes only where nothing accumulates them: max (ReLU), one multiply (PReLU) and
#: data movement (PixelShuffle) are exact in float32. BatchNorm's scale-and-shift can overflow
#: at 1e38 in one order of operations and not in another, so it is left out with the sums.
SPECIAL_KINDS = {
    "relu": SPECIAL_KINDS_ALL,
    "prelu": SPECIAL_KINDS_ALL,
    "pixel_shuffle": SPECIAL_KINDS_ALL,
    "conv2d": ARITHMETIC_SAFE,
    "conv_bn": ARITHMETIC_SAFE,
    "batchnorm2d": ARITHMETIC_SAFE,
    "residual_add": ARITHMETIC_SAFE,
}
