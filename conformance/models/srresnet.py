"""SRResNet (Ledig et al. 2016, "Photo-Realistic Single Image Super-Resolution Using a GAN").

The generator of SRGAN, trained alone on MSE: a 9x9 conv + PReLU head, ``n_blocks`` residual
blocks (Conv3x3-BN-PReLU-Conv3x3-BN + skip), a Conv3x3-BN closed by a skip from the head, two x2
sub-pixel upsampling blocks (Conv3x3 to 4x channels, PixelShuffle(2), PReLU) and a 9x9 conv to
the output channels. Upscales by 4. Use it in eval mode: BatchNorm then uses its running
statistics, which is what the ONNX exporters fold into the preceding Conv.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=1, padding=kernel // 2)


class ResidualBlock(nn.Module):
    """Conv3x3-BN-PReLU-Conv3x3-BN, added to the block's input."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv(channels, channels, 3)
        self.bn1 = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv(channels, channels, 3)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class UpsampleBlock(nn.Module):
    """Conv3x3 to ``channels * factor**2``, PixelShuffle(factor), PReLU: one x``factor`` step."""

    def __init__(self, channels: int, factor: int = 2):
        super().__init__()
        self.conv = _conv(channels, channels * factor**2, 3)
        self.shuffle = nn.PixelShuffle(factor)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.shuffle(self.conv(x)))


class SRResNet(nn.Module):
    """SRResNet: x4 super-resolution, ``n_blocks`` residual blocks of ``channels`` feature maps.

    The paper uses 16 blocks of 64 channels, per-channel PReLU slopes and RGB in and out.
    """

    upscale_factor = 4

    def __init__(self, n_blocks: int = 16, channels: int = 64, in_channels: int = 3,
                 out_channels: int = 3):
        super().__init__()
        for name, value in (("n_blocks", n_blocks), ("channels", channels),
                            ("in_channels", in_channels), ("out_channels", out_channels)):
            if value < (0 if name == "n_blocks" else 1):
                raise ValueError(f"{name} must be {'>= 0' if name == 'n_blocks' else '>= 1'}, got {value}")
        self.n_blocks, self.channels = n_blocks, channels
        self.head = nn.Sequential(_conv(in_channels, channels, 9), nn.PReLU(channels))
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(n_blocks)))
        self.tail = nn.Sequential(_conv(channels, channels, 3), nn.BatchNorm2d(channels))
        self.upsample = nn.Sequential(UpsampleBlock(channels), UpsampleBlock(channels))
        self.out = _conv(channels, out_channels, 9)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        features = head + self.tail(self.blocks(head))  # the global skip
        return self.out(self.upsample(features))


def batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    """All BatchNorm2d layers of ``model`` (to draw their running statistics)."""
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def prelus(model: nn.Module) -> list[nn.PReLU]:
    """All PReLU layers of ``model`` (to draw their slopes)."""
    return [m for m in model.modules() if isinstance(m, nn.PReLU)]
