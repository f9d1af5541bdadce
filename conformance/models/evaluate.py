"""PSNR of SuperResolutionNet(3) against bicubic upscaling on held-apart photographs.

    python -m conformance.models.evaluate [--weights URL|PATH] [--images chelsea,coffee,...]

Each photograph's Y channel (cropped to a multiple of 3) is bicubic-downscaled by 3 and brought
back up both by bicubic interpolation and by the network; PSNR is measured against the original
Y channel in [0, 1], ignoring a 3-pixel border (the usual convention: borders are padding noise).
"""

from __future__ import annotations

import argparse
import sys
from typing import NamedTuple

import numpy as np
import torch

from conformance.models.photos import (TEST_IMAGES, bicubic_upscale, downscale, luma, modcrop,
                                       photo, psnr)

FACTOR = 3
SHAVE = 3


class Row(NamedTuple):
    """One line of the PSNR table."""

    image: str
    shape: tuple[int, int]
    bicubic_db: float
    model_db: float

    @property
    def gain_db(self) -> float:
        return self.model_db - self.bicubic_db


def evaluate(model: torch.nn.Module, names=TEST_IMAGES) -> list[Row]:
    """PSNR (dB, Y channel) of bicubic and of ``model`` on each of ``names`` (skimage.data)."""
    model.eval()
    rows = []
    for name in names:
        hr = modcrop(luma(photo(name)), FACTOR)
        lr = downscale(hr, FACTOR)
        truth = hr.astype(np.float32) / 255.0
        with torch.no_grad():
            x = torch.from_numpy(lr.astype(np.float32)[None, None] / 255.0)
            out = model(x)[0, 0].clamp(0.0, 1.0).numpy()
        rows.append(Row(name, hr.shape, psnr(bicubic_upscale(lr, FACTOR), truth, SHAVE),
                        psnr(out, truth, SHAVE)))
    return rows


def format_table(rows: list[Row]) -> str:
    """A Markdown table of the rows plus their mean."""
    lines = ["| image | size (HxW) | bicubic PSNR (dB) | model PSNR (dB) | gain (dB) |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.image} | {r.shape[0]}x{r.shape[1]} | {r.bicubic_db:.2f} | "
                     f"{r.model_db:.2f} | {r.gain_db:+.2f} |")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    lines.append(f"| **mean** | | {mean([r.bicubic_db for r in rows]):.2f} | "
                 f"{mean([r.model_db for r in rows]):.2f} | {mean([r.gain_db for r in rows]):+.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.models.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None,
                        help="checkpoint URL or path (default: the shipped superres_x3.pth)")
    parser.add_argument("--images", default=",".join(TEST_IMAGES),
                        help=f"comma-separated skimage.data names (default: {','.join(TEST_IMAGES)})")
    args = parser.parse_args(argv)
    from conformance.models.superres import SuperResolutionNet
    from conformance.models.weights import WeightsError, load_weights

    torch.set_num_threads(1)
    model = SuperResolutionNet(upscale_factor=FACTOR)
    try:
        model.load_state_dict(load_weights(args.weights, model=model))
        print(format_table(evaluate(model, [n for n in args.images.split(",") if n])))
    except (WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
