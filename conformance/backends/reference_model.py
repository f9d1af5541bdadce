"""Making a user's model fit for the float64 oracle: a current opset, and double precision.

onnx's reference evaluator implements most operators at their newest version only: an opset-9
Softmax (coerce to 2-D at ``axis``) runs with opset-13 semantics (one axis), an opset-9
BatchNormalization with its attributes read as training mode. ``upgrade`` brings an old model to
the newest opset with onnx's version converter, whose adapters rewrite exactly those changes;
where the converter lacks a step, ``conformance.backends.reference_ops`` covers the changed
semantics in the evaluator's place.

``to_float64`` rewrites every float tensor of the graph (initializers, constants, inputs,
outputs, casts) to double, so the evaluator computes an oracle rather than a third float32
implementation. Graphs whose meaning depends on float32 (quantization, bit casts, float8) are
left in their own precision, and the caller says so.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Element types the float64 graph computes in double.
_WIDENED = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)
#: Operators whose meaning is tied to a narrow float type: such graphs keep their precision.
_PRECISION_BOUND = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "ConvInteger", "MatMulInteger", "BitCast", "Bitcast", "RandomNormal", "RandomUniform",
    "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
})
#: Opset versions below which an operator the evaluator implements once had other semantics.
_CHANGED_BEFORE = {"Softmax": 13, "LogSoftmax": 13, "Hardmax": 13, "BatchNormalization": 14}
#: Steps the version converter takes without rewriting the changed semantics (onnx 1.23: its
#: Hardmax 12->13 adapter keeps the node as it is): a model using the operator is converted to
#: the opset before, and the old semantics are covered in the evaluator's place.
_CONVERTER_WRONG = {"Hardmax": 13}


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset, 0 when the model imports none."""
    return next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), 0)


#: Float initializers of at least this many elements travel beside the graph (``detach_weights``).
DETACHED_SIZE = 1024
_DETACHABLE = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)


def detach_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """(a copy of ``model`` whose large float initializers are graph inputs instead, their arrays
    by name), to be fed on every run.

    The version converter, the checker, the float64 rewrite and the evaluator each copy or
    serialize the whole model: with an ImageNet model's real weights inside (0.25-0.6 GB) the
    reference took 5-30 s to prepare. No opset conversion rewrites a weight's values.
    """
    big = [i for i in model.graph.initializer
           if i.data_type in _DETACHABLE and math.prod(i.dims) >= DETACHED_SIZE]
    if not big:
        return model, {}
    arrays = {i.name: numpy_helper.to_array(i) for i in big}
    light = onnx.ModelProto()
    light.CopyFrom(model)
    kept = [i for i in light.graph.initializer if i.name not in arrays]
    light.graph.ClearField("initializer")
    light.graph.initializer.extend(kept)
    listed = {i.name for i in light.graph.input}  # below IR 4 initializers are inputs already
    light.graph.input.extend(helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
                             for i in big if i.name not in listed)
    return light, arrays


def upgrade(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """``model`` at the newest opset the version converter reaches (the newest, else 14), and a
    note saying what was done; the model unchanged when no conversion applies or succeeds."""
    from onnx import version_converter

    current = default_opset(model)
    newest = onnx.defs.onnx_opset_version()
    used = {n.op_type for n in _nodes(model.graph) if n.domain in ("", "ai.onnx")}
    for op, version in _CONVERTER_WRONG.items():
        if op in used and current < version:
            newest = min(newest, version - 1)
    if not current or current >= newest:
        return model, ""
    failure = ""
    for target in dict.fromkeys((newest, min(newest, max(current, 14)))):
        if target <= current:
            break
        try:
            converted = version_converter.convert_version(model, target)
            onnx.checker.check_model(converted)
            return converted, f"opset {current} converted to {target}"
        except Exception as exc:  # the converter raises RuntimeError, ValidationError, ...
            failure = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return model, f"opset {current} kept (the version converter failed: {failure})"


def spell_out_resize(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``model`` (converted from ``opset``) with its Resize nodes given the meaning they had before
    opset 11, where that predates it: output coordinates mapped to input ones as ``x / scale``
    ("asymmetric"); nearest takes the floor when enlarging (onnx's own Upsample repeats each
    element) and the ceiling when shrinking (onnx's opset-10 backend test keeps elements 1 and 3
    of 4 at scale 0.6). From 11 on the defaults are "half_pixel" and rounding, and onnx 1.23's
    converter (Upsample 9 to Resize 10, Resize 10 to 11) does not say so: an opset-9 bilinear
    Upsample came out off by up to 1 on unit inputs."""
    if not opset or opset >= 11 or not any(n.op_type == "Resize" for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    known = _constant_values(out.graph)
    for node in out.graph.node:
        names = {a.name for a in node.attribute}
        if node.op_type != "Resize" or "coordinate_transformation_mode" in names:
            continue
        node.attribute.append(helper.make_attribute("coordinate_transformation_mode", "asymmetric"))
        mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"nearest")
        if mode in (b"nearest", "nearest") and "nearest_mode" not in names:
            scales = known.get(node.input[2] if len(node.input) > 2 else "")
            shrinks = scales is not None and all(s <= 1 for s in scales.ravel()) and (scales < 1).any()
            node.attribute.append(helper.make_attribute("nearest_mode", "ceil" if shrinks else "floor"))
    return out


def _constant_values(graph: onnx.GraphProto) -> dict:
    """Initializers and Constant node tensors of ``graph`` by name."""
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def changed_ops(model: onnx.ModelProto) -> list[str]:
    """Operators of ``model`` whose semantics at its opset differ from the evaluator's newest."""
    opset = default_opset(model)
    used = {n.op_type for n in _nodes(model.graph) if n.domain in ("", "ai.onnx")}
    return sorted(op for op, since in _CHANGED_BEFORE.items() if op in used and opset < since)


def precision_bound(model: onnx.ModelProto) -> list[str]:
    """Operators that tie ``model`` to its own float types (empty: it may run in float64)."""
    found = {n.op_type for n in _nodes(model.graph) if n.op_type in _PRECISION_BOUND}
    if model.functions:
        found.add("model-local functions")
    return sorted(found)


def to_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in double wherever it computed in float32/16 or bfloat16."""
    wide = onnx.ModelProto()
    wide.CopyFrom(model)
    _widen_graph(wide.graph)
    return wide


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _nodes(sub)


def _widen_graph(graph: onnx.GraphProto) -> None:
    for values in (graph.input, graph.output, graph.value_info):
        for value in values:
            _widen_type(value.type)
    for i, init in enumerate(graph.initializer):
        if init.data_type in _WIDENED:
            graph.initializer[i].CopyFrom(_widen_tensor(init))
    for node in graph.node:
        _widen_node(node)


def _widen_type(value_type: onnx.TypeProto) -> None:
    kind = value_type.WhichOneof("value")
    if kind == "tensor_type" and value_type.tensor_type.elem_type in _WIDENED:
        value_type.tensor_type.elem_type = TensorProto.DOUBLE
    elif kind in ("sequence_type", "optional_type"):
        _widen_type(getattr(value_type, kind).elem_type)
    elif kind == "map_type":
        _widen_type(value_type.map_type.value_type)


def _widen_tensor(tensor: onnx.TensorProto) -> onnx.TensorProto:
    array = numpy_helper.to_array(tensor).astype("float64")
    return numpy_helper.from_array(array, tensor.name)


def _widen_node(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in _WIDENED:
            attr.t.CopyFrom(_widen_tensor(attr.t))
        elif attr.type == onnx.AttributeProto.INT and attr.name in ("to", "dtype") and attr.i in _WIDENED:
            attr.i = TensorProto.DOUBLE  # Cast, EyeLike: the target type widens with the graph
        if attr.HasField("g"):
            _widen_graph(attr.g)
        for sub in attr.graphs:
            _widen_graph(sub)
    if node.op_type == "Constant":  # value_float(s) make float32 tensors: make them double ones
        for attr in list(node.attribute):
            if attr.name in ("value_float", "value_floats"):
                values = [attr.f] if attr.name == "value_float" else list(attr.floats)
                shape = () if attr.name == "value_float" else (len(values),)
                node.attribute.remove(attr)
                tensor = helper.make_tensor("", TensorProto.DOUBLE, shape, values)
                node.attribute.append(helper.make_attribute("value", tensor))


#: Operators whose output differs from run to run: never folded into constants.
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                               "Bernoulli", "Multinomial", "Dropout"})


def _constant_nodes(graph: onnx.GraphProto) -> set[int]:
    """Indices of the nodes whose every input is an initializer or another such node's output."""
    known = {i.name for i in graph.initializer}
    found: set[int] = set()
    for index, node in enumerate(graph.node):
        if (node.op_type not in _NONDETERMINISTIC and not node.domain
                and all(not i or i in known for i in node.input)
                and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)):
            found.add(index)
            known.update(o for o in node.output if o)
    return found


def split_constants(model: onnx.ModelProto) -> tuple[onnx.ModelProto | None, onnx.ModelProto]:
    """(a model computing every value that depends on no input, the rest of the graph taking
    those values as inputs); ``(None, model)`` when nothing is constant.

    Weights made by nodes (``ConstantOfShape``, ``Constant``, a ``Reshape`` of an initializer)
    are then computed once, not on every run: in float64, an ImageNet model's are 1 GB a run.
    """
    graph = model.graph
    foldable = _constant_nodes(graph)
    folded = [n for i, n in enumerate(graph.node) if i in foldable]
    if not folded:
        return None, model
    made = {o for n in folded for o in n.output if o}
    rest = [n for i, n in enumerate(graph.node) if i not in foldable]
    needed = list(dict.fromkeys([i for n in rest for i in n.input if i in made]
                                + [o.name for o in graph.output if o.name in made]))
    constants = helper.make_model(
        helper.make_graph(folded, "constants", [], [helper.make_value_info(n, onnx.TypeProto()) for n in needed],
                          list(graph.initializer)), opset_imports=model.opset_import, ir_version=model.ir_version)
    main = onnx.ModelProto()
    main.CopyFrom(model)
    del main.graph.node[:]
    main.graph.node.extend(rest)
    used = {i for n in rest for i in n.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used]
    dropped = {i.name for i in graph.initializer} - used
    del main.graph.initializer[:]
    main.graph.initializer.extend(kept)
    inputs = [i for i in graph.input if i.name not in dropped]  # IR < 4 lists initializers as inputs
    del main.graph.input[:]
    main.graph.input.extend(inputs)
    main.graph.input.extend(helper.make_value_info(n, onnx.TypeProto()) for n in needed)
    return constants, main
