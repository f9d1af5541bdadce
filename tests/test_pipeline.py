"""The cat-image pipeline on a real photograph: shapes, dtypes, runner agreement, the gallery."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conformance.pipeline.superres import (ImageError, images_agree, level_diff, load_image, parse_size,
                                  rep_runner, save_gallery, superres, torch_runner)


def repeat3(y: np.ndarray) -> np.ndarray:
    """A cheap stand-in model: nearest-neighbour x3 upscale."""
    return y.repeat(3, axis=2).repeat(3, axis=3)


@pytest.fixture(scope="module")
def model_runner():
    from conformance.models.weights import load_model

    return torch_runner(load_model())


def test_default_image_is_the_cat():
    import skimage.data

    cat = load_image()
    assert cat.mode == "RGB" and cat.size == (451, 300)
    assert np.array_equal(np.asarray(cat), skimage.data.chelsea())


def test_trained_model_on_the_cat(model_runner, tmp_path):
    out = tmp_path / "cat.png"
    result = superres(model_runner, size="96x64", output=out)
    assert result.factor == 3 and result.input.size == (96, 64)
    assert result.output.size == result.bicubic.size == (288, 192)
    saved = np.asarray(Image.open(out))
    assert saved.dtype == np.uint8 and saved.shape == (192, 288, 3)
    assert np.array_equal(saved, np.asarray(result.output))
    # The network only sharpens: it must stay close to bicubic, not invent a different picture.
    assert level_diff(result.output, result.bicubic).mean() < 6


def test_runner_gets_float32_y_in_unit_range():
    seen = []

    def spy(y):
        seen.append(y)
        return repeat3(y)

    superres(spy, np.zeros((10, 20, 3), np.uint8) + 200)
    (y,) = seen
    assert y.dtype == np.float32 and y.shape == (1, 1, 10, 20) and 0.0 <= y.min() <= y.max() <= 1.0


def test_identical_runners_agree_exactly(model_runner):
    from conformance.models.weights import load_model

    other = torch_runner(load_model())  # a second, independently loaded model
    a = superres(model_runner, size=(48, 32)).output
    b = superres(other, size=(48, 32)).output
    ok, summary = images_agree(a, b, levels=0)
    assert ok and summary.startswith("max difference 0 level(s)")


def test_tiny_numeric_noise_stays_within_one_level():
    rng = np.random.default_rng(0)
    def noisy(y):
        out = repeat3(y)
        return out + rng.uniform(-2e-4, 2e-4, out.shape).astype(np.float32)

    assert images_agree(superres(repeat3, size="60x40").output, superres(noisy, size="60x40").output)[0]


def test_perturbed_runner_is_detected():
    def perturbed(y):
        out = repeat3(y)
        out[..., 30:33, 60:63] += 3 / 255  # a 3-level bump on a 3x3 patch
        return out

    ok, summary = images_agree(superres(repeat3, size="60x40").output,
                               superres(perturbed, size="60x40").output)
    assert not ok and "differ by more than 1" in summary
    assert 30 <= int(summary.split("(row, col) (")[1].split(",")[0]) <= 32


def test_rep_runner_uses_the_backend_api():
    class Rep:
        def run(self, inputs):
            assert isinstance(inputs, list) and inputs[0].dtype == np.float32
            return [repeat3(inputs[0])]

    assert superres(rep_runner(Rep()), size="12x9").output.size == (36, 27)


def test_gallery(tmp_path):
    result = superres(repeat3, size="60x40")
    other = superres(lambda y: repeat3(y) * 0.98, size="60x40").output
    saved = save_gallery(tmp_path / "g", result, {"torch": result.output, "onnxruntime[ort]": other})
    names = sorted(p.name for p in saved)
    assert names == sorted(["input.png", "bicubic.png", "output_torch.png", "output_onnxruntime-ort.png",
                            "diff_torch_vs_bicubic.png", "diff_onnxruntime-ort_vs_torch.png"])
    assert all(p.is_file() and p.stat().st_size > 0 for p in saved)


@pytest.mark.parametrize("text", ["224", "0x10", "axb", "10x-1"])
def test_bad_size(text):
    with pytest.raises(ImageError, match="WxH"):
        parse_size(text)


def test_bad_image_path(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(ImageError, match="cannot read image"):
        load_image(tmp_path / "x.png")


def test_runner_with_wrong_output_shape():
    with pytest.raises(ImageError, match="integer upscale"):
        superres(lambda y: np.zeros((1, 1, 31, 60), np.float32), size="20x10")


def test_command_line(tmp_path, capsys):
    from conformance.pipeline.superres import main

    out = tmp_path / "cat.png"
    assert main(["--size", "30x20", "-o", str(out), "--gallery", str(tmp_path / "g")]) == 0
    assert Image.open(out).size == (90, 60) and "wrote" in capsys.readouterr().out
    assert (tmp_path / "g" / "diff_pytorch_vs_bicubic.png").is_file()
    assert main([str(tmp_path / "missing.png"), "-o", str(out)]) == 2
    assert main(["--weights", str(tmp_path / "none.pth"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.count("error:") == 2
