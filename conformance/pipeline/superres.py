"""The tutorial's cat-image pipeline, with the network run by any backend.

    image -> [resize to WxH] -> YCbCr -> run_y(Y) -> 8-bit Y' ; Cb, Cr bicubic-upscaled -> RGB

``run_y`` takes the Y channel as float32 ``[1, 1, H, W]`` in [0, 1] and returns ``[1, 1, rH, rW]``;
plug in PyTorch (:func:`torch_runner`), an ONNX backend rep (:func:`rep_runner`) or anything else.
Backends are compared on the final 8-bit RGB images (:func:`level_diff`); :func:`save_gallery`
writes the input, bicubic, each backend's output and difference heat maps for a person to look at.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

Runner = Callable[[np.ndarray], np.ndarray]


class ImageError(ValueError):
    """An input image or size that the pipeline cannot use."""


class SuperResResult(NamedTuple):
    """What one pipeline run produced (all 8-bit RGB PIL images)."""

    input: Image.Image    # the (resized) low-res input
    bicubic: Image.Image  # the input bicubic-upscaled to the output size: the baseline
    output: Image.Image   # the network's Y merged with bicubic Cb/Cr
    factor: int


#: PIL modes that ``Image.convert("RGB")`` maps correctly (8 bits per channel, palettes, alpha
#: dropped, CMYK and YCbCr converted). Wider modes are scaled to 8 bits here first: PIL itself
#: clips a 16-bit value to 255, so a 16-bit photo would come out all white.
EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBA", "RGBX", "LA", "La", "PA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")


def load_image(image: str | os.PathLike | np.ndarray | Image.Image | None = None) -> Image.Image:
    """An RGB PIL image from a path, an array or an image; None gives skimage.data.chelsea() (a cat).

    16-bit images (PIL modes ``I;16*``, ``I`` with values up to 65535, uint16 arrays) are scaled
    to 8 bits (65535 -> 255); float images (mode ``F``) must hold values in [0, 1]. Anything
    else that cannot be made 8-bit RGB faithfully is an ImageError naming the mode.
    """
    if image is None:
        import skimage.data

        image = skimage.data.chelsea()
    if isinstance(image, np.ndarray):
        image = _from_array(image)
    if not isinstance(image, Image.Image):
        try:
            with Image.open(Path(image).expanduser()) as opened:
                image = opened.copy()
        except FileNotFoundError:
            raise ImageError(f"image file not found: {image}") from None
        except IsADirectoryError:
            raise ImageError(f"{image} is a folder, not an image file") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageError(f"cannot read image {image}: {exc}") from None
    return to_rgb(image)


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or array.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"expected a uint8 or uint16 HxW or HxWxC array, got {array.dtype} {array.shape}")
    if array.dtype == np.uint16:
        array = _to_8bit(array, 65535)
    return Image.fromarray(array)


def _to_8bit(values: np.ndarray, full_scale: float) -> np.ndarray:
    return np.rint(values.astype(np.float64) * (255.0 / full_scale)).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, scaling 16-bit and float modes instead of clipping them."""
    mode = image.mode
    if mode in EIGHT_BIT_MODES:
        return image.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageError(f"a {mode} image with values {values.min()}..{values.max()}: only 0..65535 "
                             f"(16-bit) integer images are understood; convert it to 8 or 16 bits first")
        return Image.fromarray(_to_8bit(values, 65535), "L").convert("RGB")
    if mode == "F":
        values = np.asarray(image)
        if values.size and not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
            raise ImageError("a floating-point (mode F) image must hold values in [0, 1]; "
                             "convert it to 8 or 16 bits first")
        return Image.fromarray(_to_8bit(values, 1.0), "L").convert("RGB")
    raise ImageError(f"image mode {mode!r} is not supported; use an 8-bit or 16-bit grey or colour image")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"WxH"`` (e.g. ``"224x224"``, the tutorial's size) -> (W, H); None or "" -> None."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or 0 in (w := int(match[1]), h := int(match[2])):
        raise ImageError(f"size must look like WxH with positive integers (e.g. 224x224), got {text!r}")
    return w, h


def superres(run_y: Runner, image=None, *, size: tuple[int, int] | str | None = None,
             output: str | os.PathLike | None = None) -> SuperResResult:
    """Run the tutorial's pipeline on ``image`` (see :func:`load_image`) and optionally save a PNG.

    ``size`` (W, H) or ``"WxH"`` resizes the input first (bicubic), as the tutorial's 224x224 does;
    by default the image keeps its size.
    """
    rgb = load_image(image)
    if isinstance(size, str):
        size = parse_size(size)
    if size is not None:
        rgb = rgb.resize(size, Image.BICUBIC)
    y, cb, cr = rgb.convert("YCbCr").split()
    x = np.asarray(y, dtype=np.float32)[None, None] / 255.0
    y_out = _checked_output(run_y(x), x.shape)
    factor = y_out.shape[-1] // x.shape[-1]
    # The tutorial truncates with np.uint8(); rounding is unbiased and keeps backends that agree
    # to well under half a level from landing on different sides of a level.
    y_img = Image.fromarray(np.rint(np.clip(y_out[0, 0], 0.0, 1.0) * 255.0).astype(np.uint8), "L")
    upscale = lambda channel: channel.resize(y_img.size, Image.BICUBIC)  # noqa: E731
    out = Image.merge("YCbCr", [y_img, upscale(cb), upscale(cr)]).convert("RGB")
    result = SuperResResult(rgb, rgb.resize(y_img.size, Image.BICUBIC), out, factor)
    if output is not None:
        out.save(Path(output), format="PNG")
    return result


def _checked_output(y_out, in_shape) -> np.ndarray:
    """The runner's output as float32 [1, 1, rH, rW] with one integer factor r, or ImageError."""
    y_out = np.asarray(y_out[0] if isinstance(y_out, (list, tuple)) else y_out)
    if y_out.ndim != 4 or y_out.shape[:2] != (1, 1):
        raise ImageError(f"the model must return [1, 1, H', W'] for input {list(in_shape)}, "
                         f"got {list(y_out.shape)}")
    h, w = in_shape[-2:]
    factor = y_out.shape[2] // h
    if factor < 1 or y_out.shape[2:] != (h * factor, w * factor):
        raise ImageError(f"the model output {list(y_out.shape)} is not an integer upscale of "
                         f"the input {list(in_shape)} along both axes")
    return y_out.astype(np.float32, copy=False)


def torch_runner(model) -> Runner:
    """A runner for a torch module (eval mode, no grad) on CPU float32."""
    import torch

    model.eval()

    def run(y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(y))).numpy()

    return run


def rep_runner(rep) -> Runner:
    """A runner for an ONNX backend rep (``backend.prepare(model).run([x]) -> [y]``)."""
    return lambda y: np.asarray(rep.run([np.ascontiguousarray(y, dtype=np.float32)])[0])


def level_diff(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> np.ndarray:
    """Per-pixel absolute difference in 8-bit levels (int16, max over channels)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ImageError(f"images differ in shape: {a.shape} vs {b.shape}")
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return diff.max(axis=-1) if diff.ndim == 3 else diff


def images_agree(a, b, levels: int = 1) -> tuple[bool, str]:
    """Whether two 8-bit images agree to within ``levels``, and a one-line summary."""
    diff = level_diff(a, b)
    worst = int(diff.max())
    over = int((diff > levels).sum())
    where = np.unravel_index(int(diff.argmax()), diff.shape)
    return over == 0, (f"max difference {worst} level(s) at (row, col) {tuple(map(int, where))}; "
                       f"{over} of {diff.size} pixels differ by more than {levels}")


def save_gallery(folder: str | os.PathLike, result: SuperResResult,
                 outputs: dict[str, Image.Image]) -> list[Path]:
    """Save input, bicubic, each backend's output and difference heat maps under ``folder``.

    Heat maps compare each backend with the first one in ``outputs`` (the reference); the first
    one is also compared with bicubic, which shows where the network changed the image.
    """
    from conformance.report.heatmap import save_heatmap

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []

    def save(image: Image.Image, name: str) -> None:
        saved.append(folder / f"{_safe(name)}.png")
        image.save(saved[-1], format="PNG", compress_level=1)  # ~5x faster than 6, files ~20% larger

    save(result.input, "input")
    save(result.bicubic, "bicubic")
    names = list(outputs)
    for name in names:
        save(outputs[name], f"output_{name}")
    if names:
        ref = names[0]
        pairs = [(ref, "bicubic", outputs[ref], result.bicubic)]
        pairs += [(name, ref, outputs[name], outputs[ref]) for name in names[1:]]
        for a, b, img_a, img_b in pairs:
            path = folder / f"diff_{_safe(a)}_vs_{_safe(b)}.png"
            save_heatmap(level_diff(img_a, img_b), path, title=f"|{a} - {b}| (8-bit levels)")
            saved.append(path)
    return saved


def _safe(name: str) -> str:
    """A file-name-safe version of a backend name (e.g. 'onnxruntime[ort-format]')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "backend"


def add_arguments(parser) -> None:
    """The ``superres`` command's options, for ``python -m conformance.pipeline.superres`` and the main CLI."""
    parser.add_argument("image", nargs="?", default=None,
                        help="input image (default: skimage.data.chelsea(), the tutorial's cat)")
    parser.add_argument("--output", "-o", default="superres.png", help="output PNG (default: superres.png)")
    parser.add_argument("--size", default=None, metavar="WxH",
                        help="resize the input first, e.g. 224x224 as the tutorial (default: keep size)")
    parser.add_argument("--weights", default=None, metavar="URL|PATH",
                        help="SuperResolutionNet(3) checkpoint (default: the shipped superres_x3.pth)")
    parser.add_argument("--gallery", default=None, metavar="DIR",
                        help="also save input, bicubic, output and a heat map under DIR (default: no)")


def run_command(args, make_runner: Callable[[object], Runner] | None = None) -> int:
    """Run the ``superres`` command for parsed ``args`` (see :func:`add_arguments`); 0 or 2.

    ``make_runner(model)`` turns the loaded SuperResolutionNet into the runner of the selected
    backend (export it to ONNX and ``prepare`` it, say); the default runs PyTorch eager.
    User errors (bad image, size, weights) print one ``error:`` line instead of a traceback.
    """
    import sys
    import time

    from conformance.models.weights import WeightsError, load_model

    backend = getattr(args, "backend", None) or "pytorch"
    started = time.perf_counter()
    try:
        model = load_model(args.weights)
        runner, seconds = _timed((make_runner or torch_runner)(model))
        result = superres(runner, args.image, size=args.size, output=args.output)
        if args.gallery:
            save_gallery(args.gallery, result, {backend: result.output})
    except (ImageError, WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{backend}: {result.input.size[0]}x{result.input.size[1]} -> {result.output.size[0]}x"
          f"{result.output.size[1]} (x{result.factor}) in {time.perf_counter() - started:.2f} s "
          f"(network {sum(seconds):.3f} s): wrote {args.output}"
          + (f"; gallery in {args.gallery}" if args.gallery else ""))
    return 0


def _timed(run_y: Runner) -> tuple[Runner, list[float]]:
    """``run_y`` noting the seconds of each call (the network's own time, not export or I/O)."""
    import time

    seconds: list[float] = []

    def run(y: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        try:
            return run_y(y)
        finally:
            seconds.append(time.perf_counter() - start)

    return run, seconds


def main(argv=None) -> int:
    """``python -m conformance.pipeline.superres [IMAGE] -o OUT.png``: the pipeline with PyTorch eager."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m conformance.pipeline.superres", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
