"""Production-size frames: camera frames a share of the model examples draws (``test_model_frames``).

Camera frames are 640x480 to 1920x1080, while ordinary draws stop at 96x96 (the tutorial's input
at 224x224): kernels tile, block and index otherwise past 256x256, and a bug there is out of
reach of every ordinary draw. A frame is one image (batch 1) of the case's own channels.

Why decimal-3 holds at frame sizes with the same margin as at 96x96: each output element depends
on a fixed window of the input (the model's receptive field), so the float32 error of one element
is the same as at a small size; a frame only holds more elements, and the largest of more
samples of the same error grows slowly (measured on SuperResolutionNet(3) at pixel scale,
ONNX Runtime vs torch: 1.4e-4 at 224x224, 1.5e-4 at 640x480, 1.7e-4 at 1279x721, 1.8e-4 at
1920x1080: 9-12% of the tolerance).

What a frame costs is why only a few examples per runtime draw one
(``conformance.draw.profiles.frame_examples``) and why float64 work is bounded
(``FLOAT64_MAX_PIXELS``): see the README, "Deployment variants".
"""

from __future__ import annotations

#: Camera frames (W, H): VGA, 720p, 1080p, and odd sizes next to each (no multiple of any tile
#: or vector width). Shrinking goes towards the first (the smallest).
FRAMES = ((640, 480), (641, 479), (1280, 720), (1279, 721), (1920, 1080), (1921, 1079))
#: The float64 oracle and the per-layer localization run on a frame up to this many pixels (the
#: VGA frames): float64 convolutions unfold the whole image (no fast float64 kernels), measured
#: 14 GB for SuperResolutionNet(3) at 1920x1080, and SRResNet's 9x9 convolution at 4x the
#: resolution of a VGA frame would unfold ~50 GB (estimated from its im2col size).
FLOAT64_MAX_PIXELS = 641 * 480


def frame_of(shape) -> tuple[int, int] | None:
    """(W, H) when ``shape`` is a single image (batch 1) of one of ``FRAMES``, else None."""
    shape = tuple(shape)
    if len(shape) != 4 or shape[0] != 1:
        return None
    size = (shape[3], shape[2])
    return size if size in FRAMES else None


def describe_frame(shape) -> str:
    """' (a WxH frame)' for a frame's shape, '' for any other."""
    size = frame_of(shape)
    return f" (a {size[0]}x{size[1]} frame)" if size else ""


def float64_fits(shape) -> bool:
    """False for images (the last two axes) of more than ``FLOAT64_MAX_PIXELS`` pixels: their
    float64 oracle would not fit here."""
    shape = tuple(shape)
    return len(shape) < 2 or shape[-1] * shape[-2] <= FLOAT64_MAX_PIXELS


def check_frames(sizes) -> tuple[tuple[int, int], ...]:
    """``sizes`` as a tuple, when a non-empty subset of ``FRAMES`` (else ValueError)."""
    sizes = tuple(sizes)
    if not sizes or set(sizes) - set(FRAMES):
        raise ValueError(f"frames must be a non-empty subset of {FRAMES}, got {sizes}")
    return sizes


def frame_shape(channels: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The NCHW shape of one (W, H) frame of ``channels``."""
    return (1, channels, size[1], size[0])
