"""The ORT-format (mobile) backend: real ORT-format bytes, the same numbers as ONNX Runtime."""

import json
import os

import numpy as np
import onnx
import pytest
import torch

from conformance.backends import BackendError, load_backend
from conformance.backends.ortformat import OrtFormatBackend, is_ort_format, to_ort_format
from conformance.formats.onnx_export import ExportTarget, export
from conformance.models.superres import SuperResolutionNet


@pytest.fixture(scope="module")
def superres_model() -> onnx.ModelProto:
    torch.manual_seed(0)
    return export(SuperResolutionNet(3), (torch.zeros(1, 1, 16, 16),), ExportTarget("torchscript", 17),
                  dynamic=[(0, 2, 3)])


def test_load_backend_knows_the_name():
    backend = load_backend("onnxruntime-ort")
    assert isinstance(backend, OrtFormatBackend) and backend.name == "onnxruntime-ort"
    assert "ORT" in backend.versions()["format"]


def test_conversion_makes_an_ort_format_flatbuffer(superres_model):
    data = to_ort_format(superres_model)
    assert data[4:8] == b"ORTM" and is_ort_format(data)
    assert not is_ort_format(superres_model.SerializeToString())
    # The weights travel in the file (SuperResolutionNet(3) holds ~60k float32 parameters).
    assert len(data) > 200_000


def test_ort_format_matches_onnxruntime_at_two_sizes(superres_model):
    ort_format, plain = load_backend("onnxruntime-ort"), load_backend("onnxruntime")
    try:
        ort_session, plain_session = ort_format.prepare(superres_model), plain.prepare(superres_model)
        for shape in [(1, 1, 16, 16), (2, 1, 23, 31)]:  # dynamic batch/H/W survive the conversion
            x = np.random.default_rng(0).random(shape, dtype=np.float32)
            (got,), (want,) = ort_session.run([x]), plain_session.run([x])
            assert got.shape == (shape[0], 1, shape[2] * 3, shape[3] * 3)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    finally:
        ort_format.close()


def test_close_removes_the_private_folder(superres_model):
    backend = OrtFormatBackend()
    backend.prepare(superres_model)
    folder = backend._folder
    assert folder and os.listdir(folder) == []  # each converted file is deleted once read
    backend.close()
    assert not os.path.exists(folder)


def test_a_model_onnxruntime_rejects_is_a_backend_error():
    broken = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("NoSuchOp", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    with pytest.raises(BackendError, match="onnxruntime-ort: cannot convert"):
        OrtFormatBackend().prepare(broken)


@pytest.mark.slow
def test_parity_cases_pass_on_the_ort_format_backend(suite, tmp_path):
    result = suite("cases/test_operators.py", "-m", "parity", "-k", "relu", "--backend", "onnxruntime-ort",
                   "--exporter", "torchscript", "--opset", "17")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    cases = json.loads((tmp_path / "reports" / "parity.json").read_text())["cases"]
    relu = [c for c in cases if c["case"] == "relu"]
    assert relu and all(c["backend"] == "onnxruntime-ort" and c["outcome"] == "passed" for c in relu)
    assert all(c["examples"] > 0 for c in relu)
