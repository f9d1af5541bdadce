"""SuperResolutionNet exactly as in the PyTorch "super-resolution with ONNX" tutorial."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.init as init


class SuperResolutionNet(nn.Module):
    """conv1 1->64 5x5, conv2 64->64 3x3, conv3 64->32 3x3, conv4 32->r^2 3x3, PixelShuffle(r).

    ReLU follows the first three convolutions; weights get orthogonal init with the ReLU gain
    (the last conv plain orthogonal), as the tutorial does.
    """

    def __init__(self, upscale_factor: int, inplace: bool = False):
        super().__init__()
        if upscale_factor < 1:
            raise ValueError(f"upscale_factor must be >= 1, got {upscale_factor}")
        self.upscale_factor = upscale_factor
        self.relu = nn.ReLU(inplace=inplace)
        self.conv1 = nn.Conv2d(1, 64, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(64, 64, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(64, 32, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(32, upscale_factor**2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)
        self._initialize_weights()

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        return self.pixel_shuffle(self.conv4(x))

    def _initialize_weights(self):
        gain = init.calculate_gain("relu")
        init.orthogonal_(self.conv1.weight, gain)
        init.orthogonal_(self.conv2.weight, gain)
        init.orthogonal_(self.conv3.weight, gain)
        init.orthogonal_(self.conv4.weight)
