"""``conformance superres``: the cat-image pipeline from the command line, on each backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conformance.cli import main
from conformance.pipeline.superres import images_agree

SMALL = ("--size", "30x20")  # 30x20 -> 90x60: the whole pipeline in well under a second


def superres(tmp_path, *args: str, name: str = "out") -> tuple[int, Path]:
    out = tmp_path / f"{name}.png"
    return main(["superres", *SMALL, "--output", str(out), *args]), out


# "backend_name", not "backend": the suite's plugin parametrizes a fixture named "backend".
@pytest.mark.parametrize("backend_name", ["pytorch", "onnxruntime", "onnxruntime-ort", "onnxruntime.backend"])
def test_every_backend_upscales_the_cat(tmp_path, capsys, backend_name):
    code, out = superres(tmp_path, "--backend", backend_name)
    assert code == 0, capsys.readouterr().err
    assert "30x20 -> 90x60 (x3)" in capsys.readouterr().out
    image = Image.open(out)
    assert image.mode == "RGB" and image.size == (90, 60)


def test_backends_agree_with_pytorch_within_one_level(tmp_path):
    outputs = {}
    for backend in ["pytorch", "onnxruntime-ort"]:
        code, out = superres(tmp_path, "--backend", backend, name=backend)
        assert code == 0
        outputs[backend] = np.asarray(Image.open(out))
    ok, summary = images_agree(outputs["pytorch"], outputs["onnxruntime-ort"])
    assert ok, summary


def test_an_image_file_and_no_resize(tmp_path):
    source = tmp_path / "in.png"
    Image.new("RGB", (17, 11), (200, 30, 90)).save(source)
    code, out = main(["superres", str(source), "--output", str(tmp_path / "o.png")]), tmp_path / "o.png"
    assert code == 0 and Image.open(out).size == (51, 33)


@pytest.mark.parametrize("args, message", [
    (["/no/such/cat.png"], "image file not found: /no/such/cat.png"),
    (["--size", "224by224"], "size must look like WxH"),
    (["--size", "0x10"], "size must look like WxH"),
    (["--weights", "/no/such.pth"], "weights file not found"),
    (["--backend", "no.such.module"], "no module named 'no'"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    code, out = superres(tmp_path, *args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and not out.exists()


def test_a_checkpoint_for_another_architecture_exits_2(tmp_path, capsys):
    import torch

    from conformance.models.superres import SuperResolutionNet

    torch.save(SuperResolutionNet(2).state_dict(), tmp_path / "x2.pth")
    code, _ = superres(tmp_path, "--weights", str(tmp_path / "x2.pth"))
    err = capsys.readouterr().err
    assert code == 2 and "is not a checkpoint for SuperResolutionNet(upscale_factor=3)" in err


def test_a_backend_that_fails_exits_1_without_traceback(tmp_path, capsys):
    code, out = superres(tmp_path, "--backend", "conformance.faults:Raises")
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: conformance.faults.Raises: ") and err.count("\n") == 1
    assert not out.exists()


def test_as_a_user_runs_it(tmp_path):
    """A fresh interpreter, the ORT-format backend, and an error without a traceback."""
    run = lambda *a: subprocess.run([sys.executable, "-m", "conformance", "superres", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    ok = run(*SMALL, "-o", str(tmp_path / "cat.png"), "--backend", "onnxruntime-ort")
    assert ok.returncode == 0, ok.stderr
    assert Image.open(tmp_path / "cat.png").size == (90, 60)
    bad = run("--size", "nope", "-o", str(tmp_path / "x.png"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("error: ")
