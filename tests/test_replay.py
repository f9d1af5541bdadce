"""``conformance replay``: reproducers and ONNX's own test-data folders, on any backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conformance.cli import main
from conformance.engine.reproducer import write_reproducer

ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def relu_model() -> onnx.ModelProto:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def reproducer(tmp_path):
    x = np.array([[-1.0, 0.5, 2.0], [3.0, -4.0, 0.25]], np.float32)
    return write_reproducer(tmp_path / "relu_case", relu_model(), [x], [np.maximum(x, 0)])


def test_reproducer_passes_on_onnxruntime(reproducer, capsys):
    assert main(["replay", str(reproducer)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "[onnxruntime]" in out and "replayed 1: 1 passed" in out


def test_parity_failure_exits_non_zero(reproducer, capsys):
    assert main(["replay", str(reproducer), "--backend", "tests.slow_backend:OffBackend"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "max abs error 0.002" in out and "6 of 6 elements off" in out


def test_folder_of_reproducers_and_several_backends(reproducer, capsys):
    assert main(["replay", str(reproducer.parent), "--backend", "onnxruntime",
                 "--backend", "onnxruntime.backend", "-q"]) == 0
    assert "replayed 2: 2 passed" in capsys.readouterr().out


@pytest.mark.skipif(not (ONNX_DATA / "pytorch-operator").is_dir(), reason="this onnx wheel ships no test data")
def test_onnx_shipped_test_data(capsys):
    folders = [str(ONNX_DATA / "pytorch-operator" / name) for name in ("test_operator_conv", "test_operator_maxpool")]
    assert main(["replay", *folders]) == 0
    assert "replayed 2: 2 passed" in capsys.readouterr().out


@pytest.mark.skipif(not (ONNX_DATA / "node" / "test_relu").is_dir(), reason="no node/ test data in this onnx wheel")
def test_onnx_node_test_data():
    assert main(["replay", str(ONNX_DATA / "node" / "test_relu")]) == 0


def test_not_a_test_data_folder(tmp_path, capsys):
    assert main(["replay", str(tmp_path)]) == 2
    assert "holds no model.onnx" in capsys.readouterr().err


def test_unknown_backend_is_a_one_line_error(reproducer, capsys):
    assert main(["replay", str(reproducer), "--backend", "no_such_backend_mod"]) == 2
    assert "no module named 'no_such_backend_mod'" in capsys.readouterr().err


def test_backend_error_is_reported_and_fails(reproducer, capsys):
    model = relu_model()
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save(model, str(reproducer / "model.onnx"))
    assert main(["replay", str(reproducer)]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "NoSuchOp" in out and "1 errors" in out


def test_nothing_replayable_fails(reproducer, capsys):
    (reproducer / "model.onnx").write_bytes(b"not a model")
    assert main(["replay", str(reproducer)]) == 1
    assert "SKIP" in capsys.readouterr().out


def _qdq_reproducer(folder: Path) -> Path:
    """An int8 case's reproducer: x -> QuantizeLinear -> DequantizeLinear (scale 0.1, zero point
    -3), its stored output the spec's."""
    from onnx import numpy_helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])],
                              [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                               numpy_helper.from_array(np.array(-3, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    x = np.linspace(-9, 9, 64, dtype=np.float32)
    y = ((np.clip(np.round(x / np.float32(0.1)) - 3, -128, 127) + 3) * np.float32(0.1)).astype(np.float32)
    return write_reproducer(folder, model, [x], [y])


def test_an_int8_reproducer_is_judged_in_steps_of_its_outputs_scale(tmp_path, capsys):
    """A quantized model's reproducer is judged as its case was: in steps of the int8 output's
    scale. 2e-3 off is 0.02 of a step there (a pass, where decimal 3 would fail it); every element
    one step off the same way fails the bias rule."""
    folder = _qdq_reproducer(tmp_path / "qdq_case")
    assert main(["replay", str(folder), "--backend", "conformance.faults:OffBy2e3"]) == 0, capsys.readouterr().out
    assert main(["replay", str(folder), "--backend", "conformance.faults:ZeroPointPlusOne"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "steps" in out and "fails: bias" in out, out


def test_qtol_must_not_be_negative(reproducer, capsys):
    assert main(["replay", str(reproducer), "--qtol", "-1"]) == 2
    assert "--qtol -1 is negative" in capsys.readouterr().err
