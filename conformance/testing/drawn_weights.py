"""Informative weights for a model whose shipped weights are placeholders.

The light models the onnx package ships (``onnx/backend/test/data/light``) are real ImageNet
architectures whose every weight is the constant 0.02 (made by ``ConstantOfShape``): each of the
1,000 classes then gets the same score, whatever the input, and a check of their outputs says
little about the layers before. ``with_drawn_weights`` redraws every float weight by the role
its consumer gives it (He-normal Conv/Gemm/MatMul weights, BatchNormalization statistics near
1 and 0, biases near 0), seeded, so activations stay near unit scale and the outputs depend on
the input: the same architecture, now a test of every layer.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Nodes a weight passes through unchanged in meaning on its way to the node that uses it.
_PLUMBING = frozenset({"Unsqueeze", "Reshape", "Identity", "Flatten", "Squeeze", "Cast"})
_FLOATS = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)


def with_drawn_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """A copy of ``model`` with every float initializer and float ``ConstantOfShape`` output
    redrawn (seeded by ``seed``), same names and shapes; the graph is otherwise unchanged."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph, rng = out.graph, np.random.default_rng(seed)
    consumers = _consumers(graph)
    for index, init in enumerate(graph.initializer):
        if init.data_type in _FLOATS and init.dims:
            array = _draw(rng, tuple(init.dims), _role(init.name, consumers, graph))
            graph.initializer[index].CopyFrom(numpy_helper.from_array(
                array.astype(numpy_helper.to_array(init).dtype), init.name))
    _replace_constant_of_shape(out, rng, consumers)
    return out


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    found: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            found.setdefault(name, []).append((node, i))
    return found


def _role(name: str, consumers, graph) -> tuple[str, int, onnx.NodeProto | None]:
    """(op type, input index, node) of the first node that uses ``name`` for its value."""
    for _ in range(8):
        users = consumers.get(name, [])
        if not users:
            return "", 0, None
        node, index = users[0]
        if node.op_type not in _PLUMBING or index != 0:
            return node.op_type, index, node
        name = node.output[0]
    return "", 0, None


def _draw(rng: np.random.Generator, shape: tuple[int, ...], role) -> np.ndarray:
    op, index, node = role
    if op in ("Conv", "ConvTranspose", "Gemm", "MatMul") and index == 1:
        return rng.standard_normal(shape) * math.sqrt(2.0 / max(_fan_in(op, shape, node), 1))
    if op == "BatchNormalization" and index in (1, 4):  # scale, variance
        return rng.uniform(0.5, 1.5, shape)
    if op == "Mul":
        return rng.uniform(0.5, 1.5, shape)
    return rng.standard_normal(shape) * 0.1  # biases, means, shifts


def _fan_in(op: str, shape: tuple[int, ...], node) -> int:
    """Products summed into each output element by the weight of this shape."""
    if op == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return shape[1] if trans_b else shape[0]
    if op == "MatMul":
        return shape[-2] if len(shape) > 1 else shape[0]
    if op == "ConvTranspose":
        return shape[0] * math.prod(shape[2:])
    return math.prod(shape[1:])


def _replace_constant_of_shape(model: onnx.ModelProto, rng, consumers) -> None:
    """Each float ``ConstantOfShape`` whose shape is a constant becomes an initializer of drawn
    values (also a graph input below IR 4, where initializers must be inputs)."""
    graph = model.graph
    shapes = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.data_type == TensorProto.INT64}
    kept = []
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if (node.op_type != "ConstantOfShape" or node.input[0] not in shapes
                or (value is not None and value.data_type not in _FLOATS)):
            kept.append(node)
            continue
        shape = tuple(int(d) for d in shapes[node.input[0]])
        dtype = np.float32 if value is None else numpy_helper.to_array(value).dtype
        name = node.output[0]
        graph.initializer.append(numpy_helper.from_array(
            _draw(rng, shape, _role(name, consumers, graph)).astype(dtype), name))
        if model.ir_version < 4:
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
            graph.input.append(helper.make_tensor_value_info(name, elem, list(shape)))
    del graph.node[:]
    graph.node.extend(kept)


#: Operators that commute with a positive scale (f(s x) = s f(x)): a scale of the weights before
#: them reaches the logits unchanged.
_HOMOGENEOUS = frozenset({"Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Reshape",
                          "Flatten", "Dropout", "Identity", "Squeeze", "Unsqueeze"})


def calibrated(model: onnx.ModelProto, feeds: dict[str, np.ndarray], spread: float = 2.0) -> onnx.ModelProto:
    """``model`` with the weights and bias of its last linear layer scaled so that its logits
    (the first output, or the input of the Softmax that makes it) have standard deviation
    ``spread`` on ``feeds`` (ONNX Runtime measures them): deep random networks give logits in the
    hundreds, a one-hot Softmax that hides every layer before it. Unchanged when the logits are
    not a Conv, Gemm or MatMul through layers that commute with a positive scale."""
    import onnxruntime

    producers = {o: n for n in model.graph.node for o in n.output}
    logits = model.graph.output[0].name
    if logits in producers and producers[logits].op_type == "Softmax":
        logits = producers[logits].input[0]
    node = producers.get(logits)
    while node is not None and node.op_type in _HOMOGENEOUS:
        node = producers.get(node.input[0])
    if node is None or node.op_type not in ("Conv", "Gemm", "MatMul"):
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.ValueInfoProto(name=logits))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    std = float(np.std(session.run([logits], feeds)[0]))
    if not std > 0:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    weights = {_source(name, producers) for name in node.input[1:]}
    for index, init in enumerate(out.graph.initializer):
        if init.name in weights:
            scaled = numpy_helper.to_array(init) * (spread / std)
            out.graph.initializer[index].CopyFrom(numpy_helper.from_array(scaled.astype(scaled.dtype), init.name))
    return out


def _source(name: str, producers) -> str:
    """The initializer a weight input comes from through plumbing (a Reshape of it)."""
    while name in producers and producers[name].op_type in _PLUMBING:
        name = producers[name].input[0]
    return name
