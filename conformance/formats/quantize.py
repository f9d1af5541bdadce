"""Static int8 quantization, the way phone apps ship models, and the fake-quant references.

Two recipes, each calibrated on the drawn calibration set (``conformance.draw.quantization``):

- **PT2E** (``torch.export`` -> ``prepare_pt2e`` with ExecuTorch's ``XNNPACKQuantizer``:
  activations int8 asymmetric per tensor, weights int8 symmetric per tensor or per channel ->
  calibrate -> ``convert_pt2e``). The converted module is the fake-quant reference in torch
  (quantize/dequantize around float ops); ExecuTorch lowers it to XNNPACK's int8 kernels, and
  the dynamo exporter turns it into a QDQ ONNX (``QuantizeLinear``/``DequantizeLinear``).
- **ONNX Runtime's** ``quantize_static`` on the float export (QDQ format, int8 activations and
  symmetric int8 weights, per tensor or per channel).

A QDQ file's reference is onnx's reference evaluator on the file itself (what the spec says),
rerun in float64 to decide elements that sit on a rounding tie. Every verdict is in steps of
the output's scale: ``output_qparams`` finds it (through data movement after the last
``DequantizeLinear``).
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from conformance.formats.graph import model_opset
from conformance.formats.onnx_export import ExportError, ExportTarget, UnsupportedExport, export_dynamo, quiet

#: QDQ files are written at this opset: onnx's reference evaluator implements QuantizeLinear and
#: DequantizeLinear from opset 19 on, and opset 21 adds int16/int4 (what ONNX Runtime 1.32 writes).
QDQ_OPSET = 21
#: Ops that move or select values without arithmetic: the output keeps the scale of the
#: ``DequantizeLinear`` before them (PixelShuffle after the last quantized Conv).
DATA_MOVEMENT = frozenset({"DepthToSpace", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity",
                           "Flatten", "Relu", "MaxPool"})


@dataclass(frozen=True)
class QuantFormat:
    """An int8 format: ``int8-pt2e`` (PT2E + XNNPACKQuantizer; QDQ ONNX from the dynamo exporter,
    or the runtime's own program), ``int8-ort`` (ONNX Runtime's ``quantize_static``)."""

    exporter: str
    opset: int = QDQ_OPSET

    @property
    def id(self) -> str:
        return f"{self.exporter}-opset{self.opset}" if self.opset else self.exporter


PT2E = "int8-pt2e"
ORT_STATIC = "int8-ort"
QUANT_FORMATS = (PT2E, ORT_STATIC)


@dataclass(frozen=True)
class QParams:
    """One tensor's quantization: scale, zero point and the integer range."""

    scale: float
    zero_point: int
    qmin: int = -128
    qmax: int = 127


# PT2E -----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _pt2e():
    """The PT2E entry points and ExecuTorch's XNNPACK quantizer (imported once: ~3 s)."""
    try:
        from executorch.backends.xnnpack.quantizer import xnnpack_quantizer as xq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:  # a base install: the int8-pt2e cases are skipped, saying why
        raise UnsupportedExport(f"PT2E quantization needs ExecuTorch's XNNPACKQuantizer and torchao "
                                f"(pip install 'conformance[executorch]'): {exc}") from None
    return prepare_pt2e, convert_pt2e, xq


def pt2e_quantize(module: torch.nn.Module, example: np.ndarray, calibration: list[np.ndarray], *,
                  per_channel: bool, quantizer: str = "xnnpack") -> torch.fx.GraphModule:
    """``module`` quantized by PT2E with ExecuTorch's ``XNNPACKQuantizer`` (or litert-torch's
    ``PT2EQuantizer``: ``quantizer="litert"``; static, symmetric weights), calibrated on
    ``calibration``: the converted fake-quant module (the reference in torch)."""
    prepare_pt2e, convert_pt2e, xq = _pt2e()
    if quantizer == "litert":  # litert-torch's own: what its converter folds into int8 TFLite ops
        from litert_torch.quantize import pt2e_quantizer as pq

        chosen = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=per_channel))
    else:
        chosen = xq.XNNPACKQuantizer().set_global(xq.get_symmetric_quantization_config(is_per_channel=per_channel))
    with quiet(), torch.no_grad():
        captured = torch.export.export(module.eval(), (torch.from_numpy(example),)).module()
        prepared = prepare_pt2e(captured, chosen)
        for array in calibration:
            prepared(torch.from_numpy(array))
        # litert-torch's converter reads the quantize/dequantize pairs unfolded (folded, it fails).
        return convert_pt2e(prepared, fold_quantize=quantizer != "litert")


def qdq_from_pt2e(converted: torch.fx.GraphModule, example: np.ndarray, opset: int = QDQ_OPSET) -> onnx.ModelProto:
    """The converted module as a QDQ ONNX, from the dynamo exporter at ``example``'s shape.

    ``onnx_export.export`` is not used: it puts the module in eval mode, which a converted
    (exported) module refuses."""
    target = ExportTarget("dynamo", opset)
    try:
        with quiet(), torch.no_grad():
            model = export_dynamo(converted, (torch.from_numpy(example),), target, ["input"], ["output"], [()])
    except Exception as exc:
        error = ExportError(f"{target.id}: export of the quantized module failed: {type(exc).__name__}: {exc}")
        error.error_type = type(exc).__name__
        raise error from exc
    if model_opset(model) != opset:
        raise UnsupportedExport(f"the dynamo exporter asked for opset {opset} returns an opset-{model_opset(model)} model")
    return model


def fx_qparams(converted: torch.fx.GraphModule) -> tuple[QParams | None, list[QParams | None]]:
    """(input, outputs) quantization of a converted module: the first ``quantize_per_tensor``
    of the graph input, and the ``dequantize_per_tensor`` each output comes from."""
    nodes = list(converted.graph.nodes)
    first = next((n for n in nodes if n.op == "call_function" and "quantize_per_tensor" in str(n.target)
                  and "dequantize" not in str(n.target) and n.args[0].op == "placeholder"), None)
    output = next(n for n in nodes if n.op == "output")
    outs = output.args[0] if isinstance(output.args[0], (tuple, list)) else [output.args[0]]
    return (_fx_params(first) if first is not None else None), [_fx_source(o) for o in outs]


def _fx_params(node) -> QParams:
    scale, zero_point, qmin, qmax = node.args[1:5]
    return QParams(float(scale), int(zero_point), int(qmin), int(qmax))


def _fx_source(node) -> QParams | None:
    movement = ("pixel_shuffle", "view", "reshape", "permute", "relu", "clone")
    while node is not None and getattr(node, "op", "") == "call_function":
        target = str(node.target)
        if "dequantize_per_tensor" in target:
            return _fx_params(node)
        if not any(m in target for m in movement):
            return None
        node = node.args[0]
    return None


# ONNX Runtime's quantize_static ----------------------------------------------------------------

def ort_quantize(model: onnx.ModelProto, calibration: list[np.ndarray], *, per_channel: bool) -> onnx.ModelProto:
    """``onnxruntime.quantization.quantize_static`` on a float ONNX (QDQ, int8 activations,
    symmetric int8 weights), calibrated on ``calibration`` (MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat as OrtFormat, QuantType, quantize_static

    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._arrays = iter(calibration)

        def get_next(self):
            array = next(self._arrays, None)
            return None if array is None else {name: array}

    root = logging.getLogger()  # quantize_static advises pre-processing on the root logger, every call
    level = root.level
    root.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder, quiet():
        source, target = os.path.join(folder, "float.onnx"), os.path.join(folder, "int8.onnx")
        onnx.save(model, source)
        try:
            quantize_static(source, target, Reader(), quant_format=OrtFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        return onnx.load(target)


# QDQ graphs ------------------------------------------------------------------------------------

def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    found = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = onnx.numpy_helper.to_array(attr.t)
    return found


def _node_params(node: onnx.NodeProto, constants: dict) -> QParams | None:
    scale = constants.get(node.input[1])
    if scale is None or np.size(scale) != 1:
        return None
    zp = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
    info = np.iinfo(np.asarray(zp).dtype)
    return QParams(float(np.ravel(scale)[0]), int(np.ravel(zp)[0]), int(info.min), int(info.max))


def onnx_qparams(model: onnx.ModelProto) -> tuple[QParams | None, list[QParams | None]]:
    """(input, outputs) quantization of a QDQ model: the ``QuantizeLinear`` that reads the first
    graph input, and for each graph output the ``DequantizeLinear`` it comes from through data
    movement (``DATA_MOVEMENT``); None where there is none (an output left in float)."""
    constants = _constants(model)
    producer = {out: node for node in model.graph.node for out in node.output}
    first_input = model.graph.input[0].name
    quantize = next((n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == first_input), None)
    outputs = []
    for value in model.graph.output:
        node = producer.get(value.name)
        while node is not None and node.op_type in DATA_MOVEMENT:
            node = producer.get(node.input[0])
        outputs.append(_node_params(node, constants) if node is not None and node.op_type == "DequantizeLinear"
                       else None)
    return (_node_params(quantize, constants) if quantize is not None else None), outputs


def quantized_outputs(model: onnx.ModelProto) -> dict[int, QParams]:
    """For a quantized model (QDQ or QOperator), the quantization of each output judged in
    steps: a float output from a ``DequantizeLinear`` (through data movement) has its scale; an
    int8/uint8 output counts in integer steps (scale 1). Empty for a float model."""
    _, dequantized = onnx_qparams(model)
    found = {i: p for i, p in enumerate(dequantized) if p is not None}
    for i, value in enumerate(model.graph.output):
        if value.type.tensor_type.elem_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            info = np.iinfo(np.int8 if value.type.tensor_type.elem_type == onnx.TensorProto.INT8 else np.uint8)
            found.setdefault(i, QParams(1.0, 0, int(info.min), int(info.max)))
    return found


def require_quantized(outputs: list[QParams | None], what: str, ops) -> None:
    """``UnsupportedExport`` (the case is skipped with the reason) when an output is left in float."""
    if not outputs or any(q is None for q in outputs):
        raise UnsupportedExport(f"{what} leaves this model's output in float (ops: {', '.join(sorted(set(ops)))}): "
                                "nothing int8 to judge")


class QdqReference:
    """onnx's reference evaluator on a QDQ file: float32 as the file says, and (``run64``) the
    same graph with every float tensor in float64, which decides elements whose value sits on a
    rounding tie (``x / scale`` at ``j + 0.5`` in float32 but not in exact arithmetic)."""

    def __init__(self, model: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator

        self.model = model
        self._evaluator = ReferenceEvaluator(model)
        self._evaluator64 = None
        self._input = model.graph.input[0].name

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(o) for o in self._evaluator.run(None, {self._input: x})]

    def run64(self, x: np.ndarray) -> list[np.ndarray]:
        if self._evaluator64 is None:
            from onnx.reference import ReferenceEvaluator

            self._evaluator64 = ReferenceEvaluator(_as_float64(self.model))
        with np.errstate(all="ignore"):
            return [np.asarray(o) for o in self._evaluator64.run(None, {self._input: x.astype(np.float64)})]


def _as_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose float32 initializers and constants are float64 (for the
    evaluator, which computes in the dtype it is given; the declared types are not checked)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init).astype(np.float64), init.name))
    for node in copy.graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == onnx.TensorProto.FLOAT:
                attr.t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(attr.t).astype(np.float64)))
    return copy
