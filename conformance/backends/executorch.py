"""ExecuTorch (PyTorch's on-device runtime): ``torch.export`` -> ``.pte``, run by its Python runtime.

Two targets: ``executorch`` lowers to the XNNPACK delegate (what a phone app ships); the
portable kernels (``executorch-portable``, no delegate) are a smoke target only: ~23 s per
SuperResolutionNet run at 224x224.

Dynamic dimensions are exported as bounded ``torch.export.Dim.AUTO`` (ExecuTorch plans memory
for the upper bound), so one ``.pte`` serves every input shape within the bounds: batch up to
``max_batch`` (4), channels up to ``max_channels`` (64), other dimensions up to ``max_side``
(256). A static ``.pte`` (``dynamic=None``) serves
only its export shape. A session checks shapes against the program's bounds up front, so a shape
outside them is one clear error rather than ExecuTorch's "set_inputs() failed with error 0x10".
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np

from conformance.backends._runtime import Unsupported, expect_inputs, failing, load_module, require
from conformance.backends.base import BackendError, ProgramBackend
from conformance.formats.onnx_export import quiet  # the exporters' warnings and log lines are noise in test output


def dynamic_shapes(example_args, dynamic, *, max_batch: int, max_channels: int, max_side: int):
    """``torch.export`` dynamic shapes: a bounded ``Dim`` per dimension listed in ``dynamic``
    (axis 0 up to ``max_batch``, axis 1 up to ``max_channels``, the others up to ``max_side``)."""
    import torch

    if not dynamic:
        return None
    specs = []
    for i, (arg, dims) in enumerate(zip(example_args, dynamic)):
        spec = {}
        for d in dims or ():
            top = max_batch if d == 0 else max_channels if d == 1 else max_side
            if not 2 <= arg.shape[d] <= top:
                # torch.export specializes sizes 0 and 1: such an axis would silently turn static.
                raise BackendError(f"executorch: example input {i} has size {arg.shape[d]} on dynamic axis {d}; "
                                   f"give a size from 2 to {top}")
            # AUTO, not a named Dim: torch.export may then narrow the range where the model needs
            # it (a stride-2 conv guards its output size) instead of refusing the whole export.
            spec[d] = torch.export.Dim.AUTO(min=1, max=top)
        specs.append(spec or None)
    return tuple(specs)


def delegation(edge) -> dict[str, str]:
    """Each edge op of the lowered program -> where it runs: the delegate's backend id
    (``XnnpackBackend``) for ops inside a delegate call, ``portable`` for the ops left outside."""
    module = edge.exported_program().graph_module
    found: dict[str, str] = {}
    for node in module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if "call_delegate" in name:
            lowered = getattr(module, node.args[0].target)
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function":
                    found[f"{inner.name} ({getattr(inner.target, '__name__', inner.target)})"] = lowered.backend_id
        elif name != "getitem":
            found[f"{node.name} ({name})"] = "portable"
    return found


#: Ops the emitter turns into no instruction at all (memory planning's buffers).
_NO_INSTRUCTION = {"alloc"}
#: Targets run by ExecuTorch's prim ops, not by a kernel library: size arithmetic on symbolic
#: shapes (``aten::sym_size``, ``executorch_prim::mul``...) and ``memory.view`` (``et_view``,
#: a view that shares its input's memory). A dynamic-shape program keeps them out of the delegate.
_PRIM_PREFIXES = ("sym_size", "sym_numel", "executorch_prim.")
_PRIM_TARGETS = {"view"}


def _target(op: str) -> str:
    """The target of an op named ``"name (target)"``, as ``delegation`` names them."""
    return op.rsplit(" (", 1)[-1].removesuffix(")")


def _prim_or(where: str, op: str) -> str:
    target = _target(op)
    prim = target in _PRIM_TARGETS or target.startswith(_PRIM_PREFIXES)
    return "prim" if where == "portable" and prim else where


class ExecutorchSession:
    """One loaded ``forward`` method; inputs are torch tensors sharing the numpy arrays' memory."""

    def __init__(self, method, name: str, *, keep: tuple = (), delegated: dict[str, str] | None = None):
        self._method = method
        self.delegated = delegated  # op -> where it runs, when this backend exported the program
        self._name = name
        # The Method points into its Program and the Program into the artifact's bytes: a
        # Method whose Program was collected crashed in set_inputs (a dangling pointer).
        self._keep = keep
        meta = method.metadata
        # The planned (upper-bound) sizes of each input: a larger shape cannot run.
        self._bounds = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]

    def placement(self) -> dict[str, str] | None:
        """Each op of the program -> the delegate that runs it, ``portable`` (a portable kernel),
        or ``prim`` (the runtime's own prim ops: symbolic-size arithmetic, zero-copy views)."""
        if self.delegated is None:
            return None
        return {op: _prim_or(where, op) for op, where in self.delegated.items() if _target(op) not in _NO_INSTRUCTION}

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        expect_inputs(self._name, len(self._bounds), inputs)
        for i, (x, bound) in enumerate(zip(inputs, self._bounds)):
            if len(x.shape) != len(bound) or any(s > b for s, b in zip(x.shape, bound)):
                raise Unsupported(f"{self._name}: input {i} of shape {tuple(x.shape)} is outside the program's "
                                  f"bounds {bound}")
        step = f"execute on {[tuple(x.shape) for x in inputs]} (program bounds {self._bounds}; static axes must match)"
        with failing(self._name, step):
            outputs = self._method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
            return [o.detach().numpy().copy() for o in outputs]


class ExecutorchBackend(ProgramBackend):
    """ExecuTorch with the XNNPACK delegate (``delegate="xnnpack"``) or portable kernels (None)."""

    format = "pte"
    per_shape = False

    def __init__(self, *, delegate: str | None = "xnnpack", max_batch: int = 4, max_channels: int = 64,
                 max_side: int = 256):
        if delegate not in ("xnnpack", None):
            raise BackendError(f"executorch: unknown delegate {delegate!r}; valid: xnnpack, None (portable)")
        self.name = "executorch" if delegate else "executorch-portable"
        require(self.name, "executorch", "executorch")
        self.delegate = delegate
        # ExecuTorch plans memory for the bounds' product, per planned tensor and per loaded program:
        # 4 x 64 x 256 x 256 float32 is 64 MiB; with batch <= 16 a parity run was killed for memory.
        self.max_batch, self.max_channels, self.max_side = max_batch, max_channels, max_side
        self._placements: dict[str, dict[str, str]] = {}  # artifact digest -> op -> where it runs

    def export(self, module, example_args: tuple, dynamic: Sequence[Sequence[int]] | None) -> bytes:
        shapes = dynamic_shapes(example_args, dynamic, max_batch=self.max_batch, max_channels=self.max_channels,
                                max_side=self.max_side)
        return self._lower(module.eval(), example_args, shapes)

    def export_int8(self, converted, example_args: tuple) -> bytes:
        """A ``.pte`` of a PT2E-quantized module (``convert_pt2e`` with XNNPACKQuantizer), static
        at ``example_args``' shapes: XNNPACK runs its quantize/dequantize pattern as int8 kernels.
        (A converted module refuses ``eval()``: it is already in inference form.)"""
        return self._lower(converted, example_args, None)

    def _lower(self, module, example_args, shapes) -> bytes:
        import torch

        exir = load_module(self.name, "executorch.exir")
        partitioners = []
        if self.delegate == "xnnpack":
            xnnpack = load_module(self.name, "executorch.backends.xnnpack.partition.xnnpack_partitioner")
            partitioners = [xnnpack.XnnpackPartitioner()]
        with quiet(), torch.no_grad():
            with failing(self.name, "torch.export"):
                program = torch.export.export(module, tuple(example_args), dynamic_shapes=shapes)
            with failing(self.name, "to_edge_transform_and_lower"):
                edge = exir.to_edge_transform_and_lower(program, partitioner=partitioners)
            with failing(self.name, "to_executorch"):
                artifact = bytes(edge.to_executorch().buffer)
        self._remember(hashlib.sha256(artifact).hexdigest(), delegation(edge))
        return artifact

    def _remember(self, digest: str, placed: dict[str, str]) -> None:
        self._placements[digest] = placed

    def artifact_notes(self, artifact: bytes) -> bytes:
        """Where each op of ``artifact`` runs, kept beside it in the artifact cache: a ``.pte`` read
        back from the cache was never lowered in this process, and its delegate blobs do not name
        the ops they took."""
        return json.dumps(self._placement_of(artifact) or {}).encode()

    def take_artifact_notes(self, artifact: bytes, notes: bytes) -> None:
        placed = json.loads(notes)
        if placed:
            self._remember(hashlib.sha256(artifact).hexdigest(), placed)

    def _placement_of(self, artifact: bytes) -> dict[str, str] | None:
        return self._placements.get(hashlib.sha256(artifact).hexdigest())

    def artifact_settings(self) -> dict:
        """Everything besides the module and its shapes that changes the ``.pte`` (its disk cache key)."""
        from conformance.formats.artifact_cache import versions

        return {**versions("executorch"), "delegate": self.delegate,
                "bounds": [self.max_batch, self.max_channels, self.max_side]}

    def load(self, artifact: bytes) -> ExecutorchSession:
        runtime = load_module(self.name, "executorch.runtime")
        with failing(self.name, "load_program"):
            program = runtime.Runtime.get().load_program(artifact)
            method = program.load_method("forward")
        return ExecutorchSession(method, self.name, keep=(program, artifact),
                                 delegated=self._placement_of(artifact))

    def variants(self) -> dict[str, "ExecutorchBackend"]:
        if self.delegate is None:
            return {}
        return {"no-delegate": ExecutorchBackend(delegate=None, max_batch=self.max_batch,
                                                 max_channels=self.max_channels, max_side=self.max_side)}

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"executorch": version("executorch"),
                "delegate": "XNNPACK" if self.delegate else "none (portable kernels)",
                "dynamic bounds": f"batch <= {self.max_batch}, channels <= {self.max_channels}, "
                                  f"other axes <= {self.max_side}"}
