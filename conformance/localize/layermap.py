"""Which torch module computed each ONNX node's output, and what that output was.

Both exporters leave a trail from nodes to module paths:

- TorchScript names nodes by scope: ``/blocks/blocks.0/conv1/Conv``; a module called again gets
  a suffix (``/relu_1/Relu`` is the second call of ``relu``).
- dynamo writes ``pkg.torch.onnx.name_scopes`` metadata (``['', 'blocks', 'blocks.0',
  'blocks.0.bn1', ...]``) where it keeps metadata (opset 18 on; its down-conversion to 17 drops
  it); its initializers keep the parameter names (``upsample.0.conv.weight``) always.

A module's output matches the *last* node of that module's call. A Conv that the exporter folded
a following BatchNorm into matches the BatchNorm's output. Anything else stays unmapped, and the
caller computes its reference another way; ``name_by_order`` still gives such nodes a module
name for the message (the next unclaimed call of a module of the matching type).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import onnx
import torch

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
_CALL_SUFFIX = re.compile(r"_\d+$")


@dataclass
class ModuleOutputs:
    """Every module's output per call, from forward hooks on one float32 run."""

    calls: dict[str, list[np.ndarray]] = field(default_factory=dict)
    folded: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)  # conv call -> BN call
    outputs: list[np.ndarray] = field(default_factory=list)  # the module's own outputs
    order: list[tuple[str, int, type]] = field(default_factory=list)  # leaf calls as they ran

    def get(self, path: str, call: int) -> np.ndarray | None:
        path, call = self.folded.get((path, call), (path, call))
        calls = self.calls.get(path, [])
        return calls[call] if call < len(calls) else None


def record_module_outputs(module: torch.nn.Module, arrays: Sequence[np.ndarray]) -> ModuleOutputs:
    """Run ``module`` (float32, no grad) on ``arrays`` with a hook on every submodule.

    Outputs are copied when they are made (an in-place ReLU would overwrite its input later).
    A BatchNorm whose input is exactly a module's output is recorded as folded into it.
    """
    record = ModuleOutputs()
    made_by: dict[int, tuple[str, int]] = {}
    keep = []  # hold every output so that ids stay unique during the run

    def hook(path):
        def fn(mod, args, out):
            if not isinstance(out, torch.Tensor):
                return
            calls = record.calls.setdefault(path, [])
            source = made_by.get(id(args[0])) if args and isinstance(args[0], torch.Tensor) else None
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and source is not None:
                record.folded[source] = (path, len(calls))
            made_by[id(out)] = (path, len(calls))
            if not any(True for _ in mod.children()):
                record.order.append((path, len(calls), type(mod)))
            calls.append(out.detach().clone().numpy())
            keep.append(out)
        return fn

    handles = [m.register_forward_hook(hook(p)) for p, m in module.named_modules() if p]
    try:
        with torch.no_grad():
            out = module.float()(*(torch.from_numpy(np.asarray(a, np.float32)) for a in arrays))
    finally:
        for h in handles:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else [out]
    record.outputs = [o.detach().numpy() for o in outs]
    return record


def _from_metadata(node: onnx.NodeProto, modules) -> tuple[str, str] | None:
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            found = [s for s in scopes if s in modules]
            return (found[-1], found[-1]) if found else None
    return None


def _from_scope_name(name: str, modules) -> tuple[str, str] | None:
    """TorchScript's ``/a/a.0/conv1/Op``: each segment a child name, or a path from the root."""
    if not name.startswith("/"):
        return None
    segments = name.split("/")[1:-1]
    path = ""
    for seg in segments:
        bare = _CALL_SUFFIX.sub("", seg)
        for candidate in (f"{path}.{seg}" if path else seg, seg, f"{path}.{bare}" if path else bare, bare):
            if candidate in modules:
                path = candidate
                break
    return path, "/".join(segments)


def _from_parameters(node: onnx.NodeProto, params: dict[str, str]) -> tuple[str, str] | None:
    for name in node.input:
        if name in params:
            return params[name], params[name]
    return None


def node_scopes(model: onnx.ModelProto, module: torch.nn.Module) -> list[tuple[str, str] | None]:
    """(module path, raw scope) of each node in order, or None where no trail leads to a module."""
    modules = dict(module.named_modules())
    params = {f"{path}.{name}" if path else name: path
              for path, m in modules.items() for name, _ in m.named_parameters(recurse=False)}
    return [_from_metadata(n, modules) or _from_scope_name(n.name, modules) or _from_parameters(n, params)
            for n in model.graph.node]


def _within(inner: str | None, outer: str) -> bool:
    return inner is not None and (outer == "" or inner == outer or inner.startswith(outer + "."))


def map_nodes(model: onnx.ModelProto, module: torch.nn.Module) -> dict[int, tuple[str, int]]:
    """Node index -> (module path, call index) for the nodes whose first output is a module's
    output: the last node of each call. Calls are told apart by order (a call of a module starts
    when the node before it lay outside the module) and by TorchScript's ``_1`` suffixes."""
    scopes = node_scopes(model, module)
    calls: dict[str, int] = {}
    last: dict[tuple[str, int], int] = {}
    prev_path, prev_raw = None, None
    for index, scope in enumerate(scopes):
        if scope is None:
            prev_path, prev_raw = None, None
            continue
        path, raw = scope
        new_call = path not in calls or not _within(prev_path, path) or (prev_path == path and prev_raw != raw)
        if new_call:
            calls[path] = calls.get(path, -1) + 1
        if path:  # the root's output is the graph output, matched by position instead
            last[(path, calls[path])] = index
        prev_path, prev_raw = path, raw
    return {index: key for key, index in last.items()}


#: ONNX op type -> the torch module types that export to it (for naming unmapped nodes).
OP_MODULES = {
    "Relu": (torch.nn.ReLU,), "PRelu": (torch.nn.PReLU,), "DepthToSpace": (torch.nn.PixelShuffle,),
    "BatchNormalization": (torch.nn.BatchNorm2d,), "Sigmoid": (torch.nn.Sigmoid,), "Tanh": (torch.nn.Tanh,),
    "Conv": (torch.nn.Conv2d,), "Gemm": (torch.nn.Linear,), "MaxPool": (torch.nn.MaxPool2d,),
}


def name_by_order(model: onnx.ModelProto, mapped: dict[int, tuple[str, int]],
                  record: ModuleOutputs) -> dict[int, tuple[str, int]]:
    """Names for nodes no trail maps (dynamo at opset 17 keeps no scopes): the next call, in
    execution order, of a leaf module of the matching type after the last mapped one.

    For labels only: the reference of these nodes is still computed from their inputs, so a
    wrong guess can mislabel a layer but never raise a false alarm.
    """
    position = {(p, c): i for i, (p, c, _) in enumerate(record.order)}
    folded_into = {bn: conv for conv, bn in record.folded.items()}
    claimed = {position[k] for k in mapped.values() if k in position}
    claimed |= {position[bn] for conv, bn in record.folded.items() if bn in position}
    names, cursor = {}, -1
    for index, node in enumerate(model.graph.node):
        if index in mapped:
            key = mapped[index]
            cursor = max(cursor, position.get(record.folded.get(key, key), position.get(key, cursor)))
            continue
        kinds = OP_MODULES.get(node.op_type)
        if not kinds:
            continue
        for i in range(cursor + 1, len(record.order)):
            path, call, kind = record.order[i]
            if i not in claimed and issubclass(kind, kinds) and (path, call) not in folded_into:
                names[index] = (path, call)
                claimed.add(i)
                cursor = i
                break
    return names
