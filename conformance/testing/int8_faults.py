"""Seeded int8 faults: ONNX Runtime running a QDQ model with one int8 kernel bug planted.

Each class follows the ONNX backend API (``conformance.faults:NAME`` as a ``--backend``) and
rewrites the QDQ graph before ONNX Runtime runs it, so the fault sits where an int8 kernel would
have it; everything else is ONNX Runtime's:

- ``RoundHalfAwayFromZero``: every ``QuantizeLinear`` rounds ties away from zero (the spec, and
  torch, round half to even). Seen only where values sit on half steps.
- ``ZeroPointPlusOne``: the output's ``DequantizeLinear`` uses its zero point plus one: every
  element one step low. Within one step everywhere, so only the bias rule catches it.
- ``NoSaturation``: ``QuantizeLinear`` wraps around (int8 modulo 256) instead of clamping to
  -128..127. Seen where values pass the calibrated range.
- ``PerChannelScalesReversed``: per-channel weight scales applied in reverse channel order.
- ``Requant16``: the requantization multiplier of each Conv (input scale x weight scale /
  output scale) held as a 16-bit fixed-point fraction (``round(M * 2**16) / 2**16``, no
  exponent), as a kernel with too few multiplier bits would; small multipliers lose most of
  their precision.

A clean ``onnxruntime`` passes the same examples (``tests/test_int8_faults.py``).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

from conformance.testing.fault_base import Fault as _Fault

_INT_RANGE = {onnx.TensorProto.INT8: (-128, 127), onnx.TensorProto.UINT8: (0, 255)}


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    found = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found


def _array(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    tensor = _constants(model).get(name)
    return None if tensor is None else onnx.numpy_helper.to_array(tensor)


def _add_constant(model: onnx.ModelProto, name: str, value: np.ndarray) -> str:
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), name))
    return name


def _replace_quantize(model: onnx.ModelProto, rounding: str, saturate: bool) -> onnx.ModelProto:
    """Every per-tensor ``QuantizeLinear`` rebuilt from float ops with another rounding or
    without the clamp (a wrap-around cast instead)."""
    nodes = []
    for index, node in enumerate(model.graph.node):
        zp = _array(model, node.input[2]) if node.op_type == "QuantizeLinear" and len(node.input) > 2 else None
        if zp is None or zp.size != 1:
            nodes.append(node)
            continue
        dtype = onnx.helper.np_dtype_to_tensor_dtype(zp.dtype)
        lo, hi = _INT_RANGE.get(dtype, (-128, 127))
        p = f"int8_fault_{index}_"
        c = {k: _add_constant(model, p + k, np.asarray(v, np.float32)) for k, v in
             {"zp": float(zp.ravel()[0]), "half": 0.5, "lo": lo, "hi": hi, "span": hi - lo + 1, "low": -lo}.items()}
        x, scale, y = node.input[0], node.input[1], node.output[0]
        new = [helper.make_node("Div", [x, scale], [p + "ratio"])]
        if rounding == "away":  # sign(r) * floor(|r| + 0.5)
            new += [helper.make_node("Abs", [p + "ratio"], [p + "abs"]),
                    helper.make_node("Add", [p + "abs", c["half"]], [p + "shifted"]),
                    helper.make_node("Floor", [p + "shifted"], [p + "floor"]),
                    helper.make_node("Sign", [p + "ratio"], [p + "sign"]),
                    helper.make_node("Mul", [p + "sign", p + "floor"], [p + "rounded"])]
        else:  # Round is half to even, as QuantizeLinear's spec
            new += [helper.make_node("Round", [p + "ratio"], [p + "rounded"])]
        new += [helper.make_node("Add", [p + "rounded", c["zp"]], [p + "q"])]
        if saturate:
            new += [helper.make_node("Clip", [p + "q", c["lo"], c["hi"]], [p + "final"])]
        else:  # two's complement wrap-around: ((q - lo) mod span) + lo
            new += [helper.make_node("Add", [p + "q", c["low"]], [p + "up"]),
                    helper.make_node("Mod", [p + "up", c["span"]], [p + "mod"], fmod=1),
                    helper.make_node("Add", [p + "mod", c["span"]], [p + "pos"]),
                    helper.make_node("Mod", [p + "pos", c["span"]], [p + "wrapped"], fmod=1),
                    helper.make_node("Sub", [p + "wrapped", c["low"]], [p + "final"])]
        new += [helper.make_node("Cast", [p + "final"], [y], to=dtype)]
        nodes += new
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


class RoundHalfAwayFromZero(_Fault):
    """``QuantizeLinear`` rounds ties away from zero instead of to even."""

    @classmethod
    def mutate(cls, model):
        return _replace_quantize(model, "away", saturate=True)


class NoSaturation(_Fault):
    """``QuantizeLinear`` wraps around past the int8 range instead of clamping."""

    @classmethod
    def mutate(cls, model):
        return _replace_quantize(model, "even", saturate=False)


def _output_dequantize(model: onnx.ModelProto):
    """The ``DequantizeLinear`` nodes the graph outputs come from (through data movement)."""
    from conformance.formats.quantize import DATA_MOVEMENT

    producer = {out: node for node in model.graph.node for out in node.output}
    found = []
    for value in model.graph.output:
        node = producer.get(value.name)
        while node is not None and node.op_type in DATA_MOVEMENT:
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "DequantizeLinear":
            found.append(node)
    return found


class ZeroPointPlusOne(_Fault):
    """The output's ``DequantizeLinear`` reads its zero point plus one (minus one at the top of
    the range): every output element one step off, the same way."""

    @classmethod
    def mutate(cls, model):
        for index, node in enumerate(_output_dequantize(model)):
            zp = _array(model, node.input[2])
            info = np.iinfo(zp.dtype)
            bumped = np.where(zp < info.max, zp.astype(np.int32) + 1, zp.astype(np.int32) - 1).astype(zp.dtype)
            node.input[2] = _add_constant(model, f"int8_fault_zp_{index}", bumped)
        return model


class PerChannelScalesReversed(_Fault):
    """Per-channel ``DequantizeLinear`` scales (weights) applied in reverse channel order."""

    @classmethod
    def mutate(cls, model):
        for index, node in enumerate(model.graph.node):
            if node.op_type != "DequantizeLinear":
                continue
            scale = _array(model, node.input[1])
            if scale is not None and scale.ndim == 1 and scale.size > 1:
                node.input[1] = _add_constant(model, f"int8_fault_scales_{index}", scale[::-1].copy())
        return model


def _producers(model):
    return {out: node for node in model.graph.node for out in node.output}


def _consumers(model, name):
    return [n for n in model.graph.node if name in n.input]


class Requant16(_Fault):
    """Each Conv's requantization multiplier ``M = s_in * s_w / s_out`` (per output channel)
    held as a 16-bit fraction: the output is quantized with ``s_in * s_w / M16`` (per channel)
    and dequantized with the true ``s_out``, so each channel is scaled by ``M16 / M``."""

    @classmethod
    def mutate(cls, model):
        producer = _producers(model)
        for index, conv in enumerate([n for n in model.graph.node if n.op_type == "Conv"]):
            dq_x, dq_w = producer.get(conv.input[0]), producer.get(conv.input[1])
            if not (dq_x and dq_w and dq_x.op_type == dq_w.op_type == "DequantizeLinear"):
                continue
            out = conv.output[0]
            follow = _consumers(model, out)
            if len(follow) == 1 and follow[0].op_type == "Relu":  # PT2E's conv-relu pattern
                out = follow[0].output[0]
                follow = _consumers(model, out)
            quantize = [n for n in follow if n.op_type == "QuantizeLinear"]
            s_in, s_w = _array(model, dq_x.input[1]), _array(model, dq_w.input[1])
            if len(quantize) != 1 or s_in is None or s_w is None:
                continue
            q = quantize[0]
            s_out, zp = _array(model, q.input[1]), _array(model, q.input[2])
            multiplier = np.broadcast_to(float(s_in.ravel()[0]) * s_w.astype(np.float64).ravel(), (_channels(model, dq_w),))
            m16 = np.maximum(np.round(multiplier / float(s_out.ravel()[0]) * 2**16), 1) / 2**16
            scales = (float(s_in.ravel()[0]) * np.broadcast_to(s_w.astype(np.float64).ravel(), m16.shape) / m16)
            q.input[1] = _add_constant(model, f"int8_fault_req_s_{index}", scales.astype(np.float32))
            q.input[2] = _add_constant(model, f"int8_fault_req_zp_{index}", np.full(m16.shape, zp.ravel()[0], zp.dtype))
            kept = [a for a in q.attribute if a.name != "axis"]
            del q.attribute[:]
            q.attribute.extend(kept + [helper.make_attribute("axis", 1)])
        return model


def _channels(model, dq_w) -> int:
    weights = _array(model, dq_w.input[0])
    return int(weights.shape[0]) if weights is not None else 1
