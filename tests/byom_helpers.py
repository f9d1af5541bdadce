"""Small ONNX files for the bring-your-own-model and hardening tests (built with onnx.helper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def one_node_model(nodes, x_shape, y_shape, inits=(), opset=17, y_type=TensorProto.FLOAT) -> onnx.ModelProto:
    """A graph of ``nodes`` from float32 input "x" of ``x_shape`` to output "y"."""
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                  [helper.make_tensor_value_info("y", y_type, list(y_shape))], inits, opset)


def onnxruntime_run(model: onnx.ModelProto, *inputs) -> list[np.ndarray]:
    """``model`` on ONNX Runtime's CPU provider, inputs in the graph's order."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs)})


def matmul(n="N", k=8, opset=17) -> onnx.ModelProto:
    """y = tanh(x @ W) with x: float32[n, k] (n symbolic by default)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, 4)).astype(np.float32) / 4, "W")
    return _model([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, k])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, 4])], [w], opset)


def relu(shape=("N", 4), opset=17) -> onnx.ModelProto:
    return _model([helper.make_node("Relu", ["x"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))], opset=opset)


def divide_by_zero() -> onnx.ModelProto:
    """y = x / 0: every output element is Inf or NaN."""
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    return _model([helper.make_node("Div", ["x", "zero"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [zero])


def dangling_input() -> onnx.ModelProto:
    """A Relu reading a tensor nobody produces: onnx.checker refuses it."""
    return _model([helper.make_node("Relu", ["nowhere"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])


def sequence_input() -> onnx.ModelProto:
    seq = helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, [2])
    return _model([helper.make_node("SequenceLength", ["xs"], ["y"])], [seq],
                  [helper.make_tensor_value_info("y", TensorProto.INT64, [])])


def save(model: onnx.ModelProto, path: Path, *, external: bool = False) -> Path:
    """Save ``model`` (its initializers in ``PATH.data`` next to it when ``external``)."""
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path
