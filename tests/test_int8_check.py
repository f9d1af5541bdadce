"""``conformance check`` on your own quantized ONNX file (QDQ or QOperator): int8 outputs are
judged in quantization steps against onnx's reference evaluator."""

import numpy as np
import onnx
import pytest
import torch

from conformance.formats import quantize as q
from conformance.formats.onnx_export import ExportTarget, export
from test_hardening import check  # noqa: F401  (the fixture: exit code, stdout + stderr)


def _quantized(tmp_path, fmt: str):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    float_path, path = tmp_path / "float.onnx", tmp_path / f"{fmt}.onnx"
    onnx.save(export(module, (torch.zeros(1, 3, 8, 8),), ExportTarget("torchscript", 21), dynamic=[()]), float_path)
    arrays = iter([np.random.default_rng(i).random((1, 3, 8, 8)).astype(np.float32) for i in range(4)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            array = next(arrays, None)
            return None if array is None else {"input": array}

    quantize_static(str(float_path), str(path), Reader(), activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator)
    return path


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_quantized_file_is_judged_in_steps(check, tmp_path, fmt):
    path = _quantized(tmp_path, fmt)
    assert q.quantized_outputs(onnx.load(path))  # the output's scale is found
    code, out = check(path, "--backend", "onnxruntime")
    assert code == 0, out
    assert "int8 outputs judged in quantization steps: output scale" in out
    code, out = check(path, "--backend", "conformance.faults:ZeroPointPlusOne")
    assert code == 1, out
    assert "int8 parity fails (bias, in steps of the output's scale)" in out and "mean signed error -1 steps" in out


def test_float_model_keeps_decimal_parity(check, tmp_path):
    module = torch.nn.Conv2d(3, 4, 1).eval()
    path = tmp_path / "float.onnx"
    onnx.save(export(module, (torch.zeros(1, 3, 4, 4),), ExportTarget("torchscript", 17), dynamic=[()]), path)
    assert q.quantized_outputs(onnx.load(path)) == {}
    code, out = check(path, "--backend", "onnxruntime")
    assert code == 0 and "quantization steps" not in out, out
