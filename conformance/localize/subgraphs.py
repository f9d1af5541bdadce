"""ONNX graph surgery for localization: every intermediate as an output, one node alone.

``mark_all`` is Polygraphy's ``--onnx-outputs mark all``: a copy of the model whose graph outputs
are every node output, so one run of a runtime shows every intermediate. ``single_node_model``
cuts one node out with its initializers, so it can run alone on chosen inputs (the reference's
own), and an error propagated from upstream is not blamed on it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper


def value_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type (``onnx.TensorProto`` enum) of every value shape inference can type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference cannot handle: fall back to what it declares
        inferred = model
    graph = inferred.graph
    types = {}
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    return types


def mark_all(model: onnx.ModelProto, skip=frozenset()) -> onnx.ModelProto:
    """A copy whose graph outputs are the original outputs followed by every node output
    (in node order) that is not one already, nor in ``skip``; the nodes and their order are unchanged."""
    types = value_types(model)
    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    present = {o.name for o in marked.graph.output} | set(skip)
    for node in marked.graph.node:
        for name in node.output:
            if name and name not in present:
                present.add(name)
                marked.graph.output.append(
                    helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None))
    return marked


def constant_outputs(model: onnx.ModelProto) -> set[str]:
    """Node outputs that depend on no graph input (weights made by ``ConstantOfShape`` or
    ``Constant``, shapes of initializers): the same on any runtime, and not layers."""
    known = {i.name for i in model.graph.initializer}
    made: set[str] = set()
    for node in model.graph.node:
        if not node.op_type.startswith("Random") and all(not i or i in known for i in node.input) \
                and not has_subgraph(node):
            outputs = {o for o in node.output if o}
            known |= outputs
            made |= outputs
    return made


def output_names(model: onnx.ModelProto) -> list[str]:
    """The graph's output names in order (what ``session.run`` returns, position by position)."""
    return [o.name for o in model.graph.output]


def has_subgraph(node: onnx.NodeProto) -> bool:
    """True for nodes carrying graphs (If, Loop, Scan): they cannot be cut out alone."""
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def single_node_model(model: onnx.ModelProto, node: onnx.NodeProto, values: Mapping[str, np.ndarray],
                      types: Mapping[str, int] | None = None) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    """A model holding ``node`` alone, and the arrays to feed it.

    Float inputs that are activations become graph inputs fed from ``values`` (the reference's);
    the node's initializers are copied, and integer inputs (shapes, axes) become initializers
    too, as runtimes expect them to be constants. The node keeps its name and attributes.
    ``types`` (``value_types(model)``, computed here when None) saves a shape inference per call.
    """
    inits = {i.name: i for i in model.graph.initializer}
    types = value_types(model) if types is None else types
    graph_inputs, feeds, initializers = [], [], []
    for name in dict.fromkeys(n for n in node.input if n):
        if name in inits:
            initializers.append(inits[name])
            continue
        if name not in values:
            raise KeyError(f"no value for input {name!r} of node {node.name!r}")
        array = np.asarray(values[name])
        declared = types.get(name)
        if array.dtype.kind == "f" and declared and declared != helper.np_dtype_to_tensor_dtype(array.dtype):
            # a float64 oracle's value feeds the node in the type the model declares
            array = array.astype(helper.tensor_dtype_to_np_dtype(declared))
        if array.dtype.kind in "fc":
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape)))
            feeds.append(array)
        else:
            initializers.append(numpy_helper.from_array(array, name))
    outputs = [helper.make_tensor_value_info(o, types.get(o, onnx.TensorProto.FLOAT), None)
               for o in node.output if o]
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    graph = helper.make_graph([copy], f"single_{node.name or node.op_type}", graph_inputs, outputs,
                              initializer=initializers)
    alone = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return alone, feeds


class ReferenceSession:
    """``onnx.reference.ReferenceEvaluator`` behind the session API (``run(list) -> list``):
    numpy's own implementation of every ONNX operator, independent of any runtime under test."""

    def __init__(self, model: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator

        self._evaluator = ReferenceEvaluator(model)
        initializers = {i.name for i in model.graph.initializer}
        self._names = [i.name for i in model.graph.input if i.name not in initializers]

    def run(self, inputs):
        return self._evaluator.run(None, dict(zip(self._names, inputs)))


def reference_prepare(model: onnx.ModelProto) -> ReferenceSession:
    """The default reference runtime of localization (``prepare`` for ``ReferenceSession``)."""
    return ReferenceSession(model)
