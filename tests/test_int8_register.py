"""A registered PyTorch module that asks to be quantized runs as int8 cases, calibrated on drawn
data or on the user's folder of ``.npy`` inputs."""

import textwrap

import numpy as np
import pytest

from conformance.byom import register


def test_quantize_needs_true_or_a_folder_of_npy(tmp_path):
    import torch

    with pytest.raises(ValueError, match="a folder of .npy calibration inputs"):
        register.register_module("q_bad", lambda: torch.nn.Conv2d(1, 2, 1), (1, 1, 4, 4), quantize=tmp_path)
    register.unregister("q_bad")


def test_folder_calibration_checks_shapes(tmp_path):
    from conformance.draw.quantization import FolderCalibration

    np.save(tmp_path / "a.npy", np.zeros((1, 2, 3), np.float32))
    recipe = FolderCalibration(str(tmp_path), True)
    assert len(recipe.calibration((1, 2, 3), "unit")) == 1
    with pytest.raises(ValueError, match=r"needs .npy inputs of shape \(1, 2, 4\)"):
        recipe.calibration((1, 2, 4), "unit")


@pytest.mark.slow
@pytest.mark.parametrize("calibration", ["drawn", "folder"])
def test_registered_module_runs_quantized(suite, tmp_path, calibration):
    folder = tmp_path / "calibration"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"{i}.npy", np.random.default_rng(i).random((1, 3, 8, 8)).astype(np.float32))
    quantize = "True" if calibration == "drawn" else repr(str(folder))
    models = tmp_path / "my_int8_models.py"
    models.write_text(textwrap.dedent(f"""
        import torch, conformance

        def tiny():
            return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1))

        conformance.register_module("tiny_int8", tiny, (1, 3, 8, 8), quantize={quantize})
    """))
    result = suite("cases/test_quantized.py", "-m", "parity", "-k", "tiny_int8 and int8-ort",
                   "--register", str(models), "--backend", "onnxruntime")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "test_quantized_model[onnxruntime-int8-ort-opset21-tiny_int8] PASSED" in result.stdout \
        or "1 passed" in result.stdout.strip().splitlines()[-1], result.stdout[-2000:]
