"""Real photographs shipped by scikit-image, their Y channel, bicubic resampling and PSNR.

Shared by training (``train.py``), evaluation and the cat-image pipeline, so that the low-res
images the network learns from are made exactly the way the pipeline and the PSNR table make them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Held apart: the network never sees these during training. chelsea is the tutorial's cat
# (skimage.data.cat() is the same photograph), so the pipeline's default image is a test image.
TEST_IMAGES = ("chelsea", "coffee", "rocket")
# Everything else that scikit-image ships inside its wheel (no download) and is a photograph
# of a natural scene or texture. Scans, drawings and synthetic images are left out.
TRAIN_IMAGES = (
    "astronaut", "camera", "coins", "brick", "grass", "gravel", "moon", "clock",
    "hubble_deep_field", "immunohistochemistry", "stereo_motorcycle", "cell",
)


def photo(name: str) -> np.ndarray:
    """Return ``skimage.data.<name>()`` as uint8 HxW or HxWx3 (stereo pairs give the left view)."""
    import skimage.data

    try:
        image = getattr(skimage.data, name)()
    except AttributeError:
        raise ValueError(f"skimage.data has no image called {name!r}") from None
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    return np.asarray(image, dtype=np.uint8)


def luma(image: np.ndarray) -> np.ndarray:
    """The Y channel (uint8 HxW) of an RGB or grey uint8 image, via PIL's YCbCr like the tutorial."""
    if image.ndim == 2:
        return image  # PIL's YCbCr has Y == grey for a grey image
    return np.asarray(Image.fromarray(image[..., :3]).convert("YCbCr"))[..., 0]


def modcrop(image: np.ndarray, factor: int) -> np.ndarray:
    """Crop the bottom/right edges so that height and width are multiples of ``factor``."""
    h, w = image.shape[:2]
    return image[: h - h % factor, : w - w % factor]


def downscale(y: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic downscale of a uint8 HxW image by an integer factor, kept 8-bit like a real photo."""
    h, w = y.shape
    small = Image.fromarray(y).resize((w // factor, h // factor), Image.BICUBIC)
    return np.asarray(small)


def bicubic_upscale(y: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upscale of a uint8 HxW image to float32 in [0, 1] (no 8-bit rounding: fair to bicubic)."""
    h, w = y.shape
    big = Image.fromarray(y.astype(np.float32) / 255.0, mode="F")
    big = big.resize((w * factor, h * factor), Image.BICUBIC)
    return np.clip(np.asarray(big), 0.0, 1.0)


def psnr(estimate: np.ndarray, truth: np.ndarray, shave: int = 0) -> float:
    """PSNR in dB of two float images in [0, 1], ignoring ``shave`` pixels at each border."""
    if estimate.shape != truth.shape:
        raise ValueError(f"shape mismatch: {estimate.shape} vs {truth.shape}")
    if shave:
        estimate = estimate[shave:-shave, shave:-shave]
        truth = truth[shave:-shave, shave:-shave]
    mse = float(np.mean((estimate.astype(np.float64) - truth.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
