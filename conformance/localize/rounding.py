"""How far float32 rounding alone can take one node's output from its float64 value.

A node run alone on a runtime is judged against the float64 oracle of the same node on the same
(float32) inputs, not against another float32 implementation: two correct float32 kernels that
sum in different orders differ by their rounding (a Conv over 2,304 products of magnitude 10^4
by 10^-3), and neither is at fault. An element is wrong only when it is off by more than the
tolerance plus what rounding explains:

* a sum of products (Conv, ConvTranspose, MatMul, Gemm) of length ``n``: the classic a-priori
  bound ``n * u * (|A| |B| + |C|)``, element by element, with ``u`` the unit roundoff of the
  declared type (2^-24 for float32) and ``|A| |B|`` the same operator on absolute values;
* any other operator: ``(k + 4) * u * S``, with ``S`` the largest magnitude among its float
  inputs and outputs and ``k`` the number of input elements per output element (the length of
  a reduction; 1 for an elementwise operator).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

_PRODUCTS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


def unit_roundoff(dtype) -> float:
    """Half the machine epsilon of ``dtype`` (float32 for anything that is not a float)."""
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype if dtype.kind == "f" else np.float32).eps) / 2


def allowance(alone: onnx.ModelProto, feeds: list[np.ndarray], oracle: list[np.ndarray],
              declared, evaluate) -> list[np.ndarray]:
    """Per output of the node in ``alone``: the rounding error float32 explains, element-wise
    (broadcastable to the output). ``evaluate(model, feeds)`` runs the float64 oracle."""
    node = alone.graph.node[0]
    u = unit_roundoff(declared)
    if node.op_type in _PRODUCTS:
        n = _reduction_length(node, alone, feeds)
        magnitude = evaluate(_absolute(alone), [np.abs(f) for f in feeds])
        return [n * u * np.abs(np.asarray(m, np.float64)) + u * np.abs(o) for m, o in zip(magnitude, oracle)]
    inputs = [np.asarray(f) for f in feeds] + [numpy_helper.to_array(i) for i in alone.graph.initializer]
    floats = [x for x in inputs + [np.asarray(o) for o in oracle] if x.dtype.kind == "f" and x.size]
    scale = max((float(np.max(np.abs(x))) for x in floats if np.isfinite(x).all()), default=0.0)
    largest_in = max((x.size for x in inputs if x.dtype.kind == "f"), default=1)
    allowed = []
    for out in oracle:
        per_output = max(1.0, largest_in / max(np.asarray(out).size, 1))
        allowed.append(np.asarray((per_output + 4) * u * scale))
    return allowed


def _reduction_length(node: onnx.NodeProto, alone: onnx.ModelProto, feeds: list[np.ndarray]) -> int:
    """Products summed into each output element."""
    shapes = _input_shapes(alone, feeds)
    first, second = shapes[0], shapes[1] if len(shapes) > 1 else ()
    if node.op_type in ("Conv", "ConvTranspose"):
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        channels = second[1] if node.op_type == "Conv" else first[1] // group
        return int(channels * math.prod(second[2:]))
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return int(first[0] if trans_a else first[-1])
    return int(first[-1]) if first else 1  # MatMul


def _input_shapes(alone: onnx.ModelProto, feeds: list[np.ndarray]) -> list[tuple[int, ...]]:
    fed = {i.name: np.shape(f) for i, f in zip(alone.graph.input, feeds)}
    fed.update({i.name: tuple(i.dims) for i in alone.graph.initializer})
    return [tuple(fed.get(name, ())) for name in alone.graph.node[0].input if name]


def _absolute(alone: onnx.ModelProto) -> onnx.ModelProto:
    """The same node on absolute values: float initializers and Gemm's alpha and beta made
    non-negative, so it computes ``|A| |B| + |C|``."""
    copy = onnx.ModelProto()
    copy.CopyFrom(alone)
    for i, init in enumerate(copy.graph.initializer):
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            copy.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.abs(numpy_helper.to_array(init)), init.name))
    for attr in copy.graph.node[0].attribute:
        if attr.name in ("alpha", "beta"):
            attr.CopyFrom(helper.make_attribute(attr.name, abs(attr.f)))
    return copy
