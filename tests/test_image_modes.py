"""``conformance superres`` on images that are not 8-bit RGB: 16-bit grey (``I;16``), 32-bit
integer, float, palette and alpha images come out right or are refused naming the mode; the
command says which backend ran and how long it took; the gallery names files by backend."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from conformance.cli import main
from conformance.pipeline.superres import ImageError, load_image

RAMP8 = np.tile(np.linspace(0, 255, 24).round().astype(np.uint8), (16, 1))  # a grey ramp, dark to light


def _grey_levels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L")).astype(int)


@pytest.mark.parametrize("make", [
    lambda: Image.fromarray(RAMP8.astype(np.uint16) * 257),                 # a 16-bit PNG's mode
    lambda: Image.fromarray(RAMP8.astype(np.int32) * 257),                     # 16-bit data in mode I
    lambda: Image.fromarray(RAMP8.astype(np.float32) / 255),                   # float in [0, 1]
    lambda: Image.fromarray(RAMP8, "L").convert("P"),                               # palette
    lambda: Image.fromarray(np.dstack([RAMP8] * 3 + [np.full_like(RAMP8, 128)]), "RGBA"),
])
def test_wide_and_indexed_modes_keep_their_levels(make):
    rgb = load_image(make())
    assert rgb.mode == "RGB"
    assert np.abs(_grey_levels(rgb) - RAMP8).max() <= 1  # not clipped to white


def test_uint16_array_is_scaled():
    assert np.abs(_grey_levels(load_image(RAMP8.astype(np.uint16) * 257)) - RAMP8).max() <= 1


@pytest.mark.parametrize("image, message", [
    (Image.fromarray(np.full((4, 4), 70000, np.int32)), "only 0..65535 (16-bit) integer images"),
    (Image.fromarray(np.full((4, 4), 3.5, np.float32)), "must hold values in [0, 1]"),
])
def test_modes_that_cannot_be_read_faithfully_are_refused(image, message):
    with pytest.raises(ImageError, match=re.escape(message)):
        load_image(image)


def test_sixteen_bit_png_through_the_command(tmp_path, capsys):
    source = tmp_path / "camera16.png"
    Image.fromarray(RAMP8.astype(np.uint16) * 257).save(source)
    assert Image.open(source).mode.startswith("I")  # it really is a 16-bit file
    out = tmp_path / "out.png"
    assert main(["superres", str(source), "--output", str(out), "--gallery", str(tmp_path / "g")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("pytorch: 24x16 -> 72x48 (x3) in ") and "(network " in printed
    levels = _grey_levels(Image.open(out))
    assert levels.min() < 40 and levels.max() > 215  # dark to light, as the input: not all white
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        "bicubic.png", "diff_pytorch_vs_bicubic.png", "input.png", "output_pytorch.png"]


def test_a_folder_is_one_line(tmp_path, capsys):
    assert main(["superres", str(tmp_path), "--output", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path} is a folder, not an image file\n"
