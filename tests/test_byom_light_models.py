"""`conformance check` with its default reference on real models: every light model the onnx
package ships (ImageNet classifiers at opset 9, 224x224) and the operators whose semantics
changed between opsets, against a correct ONNX Runtime (no false alarm) and one whose every
output is off by 2e-3 (caught). Before the float64, opset-aware reference, squeezenet (opset-9
Softmax) and densenet121 (opset-9 BatchNormalization) were false alarms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conformance.cli import main

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
LIGHT = sorted((DATA / "light").glob("*.onnx"))
#: onnx's own old-opset (6) files of ONNX Runtime-supported operators whose semantics changed.
CONVERTED = ["test_Softmax", "test_LogSoftmax", "test_softmax_functional_dim3", "test_log_softmax_dim3"]


def _node_model(op: str, opset: int, **attrs) -> onnx.ModelProto:
    """One ``op`` over float32[2, 5, 3, 4] at ``opset`` (BatchNormalization with its parameters)."""
    inputs, inits = ["x"], []
    if op == "BatchNormalization":
        rng = np.random.default_rng(0)
        for name, value in [("s", rng.random(5) + 0.5), ("b", rng.standard_normal(5)),
                            ("m", rng.standard_normal(5)), ("v", rng.random(5) + 0.1)]:
            inits.append(numpy_helper.from_array(value.astype(np.float32), name))
            inputs.append(name)
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], **attrs)], f"{op.lower()}{opset}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 3, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


NODES = {
    "softmax_opset9": ("Softmax", 9, {}), "softmax_opset11_axis2": ("Softmax", 11, {"axis": 2}),
    "logsoftmax_opset11": ("LogSoftmax", 11, {"axis": 1}), "hardmax_opset11": ("Hardmax", 11, {"axis": 1}),
    "batchnorm_opset7": ("BatchNormalization", 7, {"momentum": 0.9}),
    "batchnorm_opset9": ("BatchNormalization", 9, {"momentum": 0.9}),
    "batchnorm_opset14": ("BatchNormalization", 14, {"momentum": 0.9}),
}


def _check(path: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    code = main(["check", str(path), "--backend", "onnxruntime", "--backend", "conformance.faults:OffBy2e3",
                 "--examples", "2", "--seed", "0", "--reports", str(tmp_path / "reports")])
    out = capsys.readouterr()
    return code, out.out + out.err


def _verdicts(code: int, out: str) -> None:
    assert code == 1, out
    assert "PASS onnxruntime vs conformance.backends.onnx_reference: 2 examples" in out, out  # no false alarm
    assert "FAIL conformance.faults.OffBy2e3" in out and "max abs error 0.002" in out, out  # the offset caught
    assert "uncertain" not in out, out


@pytest.mark.slow
@pytest.mark.parametrize("path", LIGHT, ids=[p.stem for p in LIGHT])
def test_light_model(path, tmp_path, capsys):
    _verdicts(*_check(path, tmp_path, capsys))


@pytest.mark.parametrize("name", CONVERTED)
def test_old_opset_file(name, tmp_path, capsys):
    _verdicts(*_check(DATA / "pytorch-converted" / name / "model.onnx", tmp_path, capsys))


@pytest.mark.parametrize("name", NODES)
def test_semantics_changed_between_opsets(name, tmp_path, capsys):
    op, opset, attrs = NODES[name]
    path = tmp_path / f"{name}.onnx"
    onnx.save(_node_model(op, opset, **attrs), str(path))
    _verdicts(*_check(path, tmp_path, capsys))
