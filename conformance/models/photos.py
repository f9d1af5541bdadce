"""Real photographs shipped by scikit-image, their Y channel, bicubic resampling and PSNR.

Shared by training (``train.py``), evaluation and the cat-image pipeline, so that the low-res
images the network learns from are made exactly the way the pipeline and the PSNR table make them;
and by the ``photo`` input distribution of the parity cases (``photo_crops``).
"""

from __future__ import annotations

import functools

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


# --- The ``photo`` input distribution (conformance.draw.strategies) -------------------------------

#: Photographs the ``photo`` input distribution crops, all shipped inside the installed wheels
#: (scikit-image's ``skimage.data`` and matplotlib's sample data): nothing is downloaded.
#: Colour and grey, smooth (coffee, moon), saturated (rocket's sky, astronaut's suit) and
#: textured (brick). The tutorial's cat first: hypothesis shrinks towards it.
INPUT_PHOTOS = (
    "chelsea", "astronaut", "coffee", "camera", "grace_hopper", "rocket", "coins", "moon",
    "immunohistochemistry", "brick",
)
MATPLOTLIB_PHOTOS = {"grace_hopper": "grace_hopper.jpg"}


@functools.lru_cache(maxsize=None)
def planes(name: str) -> np.ndarray:
    """The photo as uint8 planes (P, H, W): R, G, B, Y for a colour photo, Y alone for a grey one.

    Cached (read-only): every drawn example crops from the same few decoded images.
    """
    if name in MATPLOTLIB_PHOTOS:
        from matplotlib import cbook

        path = cbook.get_sample_data(MATPLOTLIB_PHOTOS[name], asfileobj=False)
        image = np.asarray(Image.open(path).convert("RGB"))
    else:
        image = photo(name)
    if image.ndim == 2:
        stack = image[None]
    else:
        rgb = image[..., :3]
        stack = np.concatenate([np.moveaxis(rgb, -1, 0), luma(rgb)[None]])
    stack = np.ascontiguousarray(stack)
    stack.setflags(write=False)
    return stack


def _channel_planes(stack: np.ndarray, channels: int) -> list[tuple[int, int]]:
    """(crop, plane) feeding each channel: 1 -> grey, 3 -> RGB (a grey photo's Y thrice, as a
    grey-to-RGB conversion makes it), otherwise every plane in turn (R, G, B, Y, R, ...), each
    round of planes from a crop of its own."""
    count = stack.shape[0]
    if channels == 1:
        return [(0, count - 1)]  # Y is the last plane of both kinds
    if channels == 3:
        return [(0, p) for p in ((0, 1, 2) if count == 4 else (0, 0, 0))]
    return [(c // count, c % count) for c in range(channels)]


def _crop(stack: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random h x w window of every plane; mirrored (tiled) when the photo is smaller."""
    _, height, width = stack.shape
    if h > height or w > width:
        stack = np.pad(stack, ((0, 0), (0, max(0, h - height)), (0, max(0, w - width))), mode="symmetric")
        height, width = stack.shape[1:]
    y0 = int(rng.integers(0, height - h + 1))
    x0 = int(rng.integers(0, width - w + 1))
    return stack[:, y0:y0 + h, x0:x0 + w]


def photo_crops(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """float32 crops of photo ``name`` at pixel scale (0-255), shaped ``shape`` (NCHW, or any
    rank >= 2: leading dims before the last two count as channels of one image).

    Each batch item is its own crop (offsets from ``seed``); channels past one crop's planes
    come from further crops of the same photo.
    """
    if len(shape) < 2:
        raise ValueError(f"a photo crop needs at least 2 dims (H, W), got shape {shape}")
    h, w = shape[-2:]
    n, c = (shape[0], shape[1]) if len(shape) == 4 else (1, int(np.prod(shape[:-2], dtype=np.int64)))
    stack = planes(name)
    rng = np.random.default_rng(seed)
    which = _channel_planes(stack, c)
    out = np.empty((n, c, h, w), np.float32)
    for i in range(n):
        crops = [_crop(stack, h, w, rng) for _ in range(which[-1][0] + 1)]
        for ch, (k, plane) in enumerate(which):
            out[i, ch] = crops[k][plane]
    return out.reshape(shape)
