"""Small, pure helpers over ``onnx.ModelProto``: op types, opset, weight binding."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import numpy_helper


def op_types(model: onnx.ModelProto) -> set[str]:
    """Every op type in the model's main graph and its subgraphs (``If``/``Loop`` bodies)."""
    found: set[str] = set()

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            found.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model.graph)
    return found


def model_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset the model imports (what a backend must support)."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ValueError("model imports no default-domain (ai.onnx) opset")


def bind_weights(model: onnx.ModelProto, weights: Mapping[str, np.ndarray]) -> onnx.ModelProto | None:
    """A copy of ``model`` whose initializers named like ``weights`` hold those values.

    This is how one export per structure serves many drawn weights. Returns None when some
    weight has no initializer of the same name and shape (the exporter folded or renamed it):
    the caller must then export again with the weights baked in.
    """
    inits = {init.name: init for init in model.graph.initializer}
    for name, value in weights.items():
        init = inits.get(name)
        # Same element count is enough: exporters reshape some weights (PReLU's [C] -> [C,1,1]).
        if init is None or int(np.prod(init.dims)) != value.size:
            return None
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    for init in bound.graph.initializer:
        if init.name in weights:
            value = np.ascontiguousarray(weights[init.name]).reshape(tuple(init.dims))
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    return bound


def weights_as_inputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy where the initializers ``names`` become graph inputs appended after the others.

    Backends then see the weights as runtime inputs, not constants: ONNX Runtime, for one,
    pre-packs constant Conv weights and takes a different kernel path for fed ones.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [i for i in out.graph.initializer if i.name not in names]
    moved = {i.name: i for i in out.graph.initializer if i.name in names}
    missing = [n for n in names if n not in moved]
    if missing:
        raise ValueError(f"no initializers named {missing}")
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    for name in names:
        init = moved[name]
        out.graph.input.append(onnx.helper.make_tensor_value_info(name, init.data_type, list(init.dims)))
    return out
