"""ONNX backends with seeded faults: proof that the suite catches what it claims to catch.

Each class follows the ONNX backend API and wraps ONNX Runtime, breaking one thing:

- ``OffBy2e3``: every output element off by 2e-3 (just past decimal-3's 1.5e-3).
- ``DepthToSpaceDCR``: DepthToSpace run in DCR order instead of PyTorch's CRD.
- ``DroppedConvBias``: Conv nodes lose their bias input.
- ``Raises``: every run raises (the case must fail with this message, nothing else).

One fault per deployment dimension that random inputs at batch 1-4 through a fresh, dynamic-shape
session never reach; each is right everywhere else:

- ``LargeBatchLane``: batch >= 8 only: the 8th item (the last lane of an 8-wide tile) is off.
- ``NaNReluToZero``: ReLU computes x86 ``maxps(x, 0)``: a NaN input gives 0 (torch gives NaN).
- ``SmoothInputWrong``: inputs whose neighbouring pixels are correlated (real photographs, not
  random arrays) take a wrong fast path.
- ``SecondRunStale``: from a session's second run on, the tail of each output buffer keeps the
  previous run's values.
- ``StaticShapeEdge``: models with no symbolic input dims get a wrong last output column.
- ``MidWidthTail``: inputs 33-63 wide, not a multiple of 16, get a wrong last output column.
- ``ChannelTail``: BatchNormalization and PRelu over 17+ channels, not a multiple of 16, get a
  wrong last channel.

``perturbed_node(name)`` makes a backend that adds a constant after one named node (and nowhere
else): the seeded single-layer fault the localization tests plant.

``pytest -m parity --backend=conformance.faults:DepthToSpaceDCR`` must fail;
``--backend=onnxruntime.backend`` must pass.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper


class _Rep:
    def __init__(self, model: onnx.ModelProto, post=None, alter=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                     providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]
        self._post = post
        self._alter = alter  # alter(rep, inputs, outputs) -> outputs: faults that look at the run
        self.model = model
        self.runs = 0
        self.previous: list[np.ndarray] | None = None

    def run(self, inputs, **kwargs):
        outputs = self._session.run(None, dict(zip(self._names, inputs)))
        self.runs += 1
        if self._post:
            outputs = [self._post(o) for o in outputs]
        if self._alter:
            outputs = self._alter(self, inputs, outputs)
        self.previous = [np.array(o, copy=True) for o in outputs]
        return outputs


class _Fault:
    """Base: rewrite the model (``mutate``), then run it on ONNX Runtime (``post`` on outputs)."""

    post = None
    alter = None  # staticmethod(rep, inputs, outputs) -> outputs

    @classmethod
    def mutate(cls, model: onnx.ModelProto) -> onnx.ModelProto:
        return model

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> _Rep:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return _Rep(cls.mutate(copy), cls.post, cls.alter)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


class OffBy2e3(_Fault):
    post = staticmethod(lambda out: (out + np.float32(2e-3)).astype(out.dtype))


class DepthToSpaceDCR(_Fault):
    @classmethod
    def mutate(cls, model):
        for node in model.graph.node:
            if node.op_type == "DepthToSpace":
                for attr in node.attribute:
                    if attr.name == "mode":
                        attr.s = b"DCR"
        return model


class DroppedConvBias(_Fault):
    @classmethod
    def mutate(cls, model):
        for node in model.graph.node:
            if node.op_type == "Conv" and len(node.input) == 3:
                del node.input[2]
        return model


class Raises(_Fault):
    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        raise RuntimeError("seeded fault: this backend cannot run anything")


def _shifted(outputs, where, delta: float = 1e-2):
    """Copies of ``outputs`` with ``delta`` added at index ``where`` (the seeded error)."""
    altered = []
    for out in outputs:
        out = np.array(out, copy=True)
        out[where] += np.asarray(delta, out.dtype)
        altered.append(out)
    return altered


class LargeBatchLane(_Fault):
    """Batch >= 8 only: the 8th batch item, the last lane of an 8-wide tile, is off by 1e-2."""

    alter = staticmethod(lambda rep, inputs, outputs:
                         _shifted(outputs, 7) if inputs and np.shape(inputs[0])[:1] >= (8,) else outputs)


class NaNReluToZero(_Fault):
    """ReLU as x86 ``maxps(x, 0)``: NaN in gives 0 out (torch, and ARM ``fmax``, give NaN).

    Each ``Relu(x)`` becomes ``Where(IsNaN(x), 0, Relu(x))``; finite inputs are untouched.
    """

    @classmethod
    def mutate(cls, model):
        graph = model.graph
        zero = "nan_relu_fault_zero"
        graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((), np.float32), zero))
        nodes = []
        for node in graph.node:
            if node.op_type != "Relu":
                nodes.append(node)
                continue
            x, y = node.input[0], node.output[0]
            raw, isnan = f"{y}_relu_raw", f"{y}_isnan"
            node.output[0] = raw
            nodes += [node, onnx.helper.make_node("IsNaN", [x], [isnan]),
                      onnx.helper.make_node("Where", [isnan, zero, raw], [y])]
        del graph.node[:]
        graph.node.extend(nodes)
        return model


#: Correlation of horizontally neighbouring values past which ``SmoothInputWrong`` misbehaves.
#: Random arrays sit near 0 (within 0.125 at the 64 pairs it needs at least), photo crops near 0.9.
SMOOTH_CORRELATION = 0.5


def neighbour_correlation(x: np.ndarray) -> float:
    """Pearson correlation of horizontally adjacent values, over rows that are not constant
    (zeroed border rows would otherwise look smooth); 0 with fewer than 64 pairs."""
    x = np.asarray(x, np.float64)
    if x.ndim < 2 or x.shape[-1] < 2:
        return 0.0
    rows = x.reshape(-1, x.shape[-1])
    rows = rows[np.isfinite(rows).all(axis=1) & (np.ptp(rows, axis=1) > 0)]
    a, b = rows[:, :-1].ravel(), rows[:, 1:].ravel()
    if a.size < 64 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


class SmoothInputWrong(_Fault):
    """Inputs that look like real images (neighbour correlation over ``SMOOTH_CORRELATION``)
    take a wrong path: every output is off by 1e-2. Random arrays never do."""

    alter = staticmethod(lambda rep, inputs, outputs:
                         _shifted(outputs, ...) if inputs and neighbour_correlation(inputs[0]) > SMOOTH_CORRELATION
                         else outputs)


def _stale_tail(rep, inputs, outputs):
    if rep.runs < 2 or rep.previous is None:
        return outputs
    altered = []
    for out, old in zip(outputs, rep.previous):
        out = np.array(out, copy=True)
        if out.shape == old.shape and out.size:
            flat, stale = out.reshape(-1), old.reshape(-1)
            tail = max(1, flat.size // 8)
            flat[-tail:] = stale[-tail:]
        altered.append(out)
    return altered


class SecondRunStale(_Fault):
    """From the second run of a session on, the last eighth of each output keeps the previous
    run's values (a buffer reused without being rewritten). A first run is always right."""

    alter = staticmethod(_stale_tail)


def is_static(model: onnx.ModelProto) -> bool:
    """True when every dimension of every graph input is a fixed number (no symbolic dims)."""
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                return False
    return True


class StaticShapeEdge(_Fault):
    """Static-shape models only (the mobile export): the last output column is off by 1e-2, as
    a kernel specialised for the known width would get its edge wrong."""

    alter = staticmethod(lambda rep, inputs, outputs:
                         _shifted(outputs, (..., -1)) if rep.static else outputs)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        rep = super().prepare(model, device, **kwargs)
        rep.static = is_static(model)
        return rep


class MidWidthTail(_Fault):
    """Inputs 33-63 wide that are no multiple of 16 (a 32-wide row plus a tail): the last output
    column is off by 1e-2, as a kernel's remainder loop past its first full row would be."""

    alter = staticmethod(lambda rep, inputs, outputs:
                         _shifted(outputs, (..., -1)) if inputs and np.ndim(inputs[0]) == 4
                         and 33 <= np.shape(inputs[0])[-1] <= 63 and np.shape(inputs[0])[-1] % 16 else outputs)


class ChannelTail(_Fault):
    """Per-channel operators (BatchNormalization, PRelu) over more than 16 channels that are no
    multiple of 16: the last channel is off by 1e-2, as a 16-wide vector loop's remainder."""

    alter = staticmethod(lambda rep, inputs, outputs:
                         _shifted(outputs, (slice(None), -1)) if rep.per_channel and inputs
                         and np.ndim(inputs[0]) == 4 and np.shape(inputs[0])[1] > 16
                         and np.shape(inputs[0])[1] % 16 else outputs)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        rep = super().prepare(model, device, **kwargs)
        rep.per_channel = any(n.op_type in ("BatchNormalization", "PRelu") for n in model.graph.node)
        return rep


def perturbed_node(node_name: str, delta: float = 0.05) -> type[_Fault]:
    """A backend that adds ``delta`` to the first output of the node called ``node_name`` (in
    every model holding it, a one-node model too) and is right everywhere else."""

    class PerturbedNode(_Fault):
        @classmethod
        def mutate(cls, model):
            for index, node in enumerate(model.graph.node):
                if node.name == node_name:
                    out = node.output[0]
                    raw, const = f"{out}_fault_raw", f"{out}_fault_delta"
                    node.output[0] = raw
                    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(delta, np.float32), const))
                    model.graph.node.insert(index + 1, onnx.helper.make_node("Add", [raw, const], [out]))
                    break
            return model

    PerturbedNode.__name__ = PerturbedNode.__qualname__ = f"PerturbedNode[{node_name}]"
    return PerturbedNode


# The int8 kernel faults (rewrites of QDQ graphs) live in their own module.
from conformance.testing.int8_faults import (  # noqa: E402,F401
    NoSaturation,
    PerChannelScalesReversed,
    Requant16,
    RoundHalfAwayFromZero,
    ZeroPointPlusOne,
)


# One fault per line of the diagnosis (``conformance.engine.diagnosis``): each must be named by
# its own ``cause:``, and each is right under the variation that clears it.

class StateAfterRuns(_Fault):
    """From a session's third run on every output is off by 1e-2, as a kernel re-tuned after
    warm-up runs would be; a fresh session is right for its first two runs."""

    FROM_RUN = 3
    alter = staticmethod(lambda rep, inputs, outputs:
                         _shifted(outputs, ...) if rep.runs >= StateAfterRuns.FROM_RUN else outputs)


def _as_if_contiguous(x: np.ndarray) -> np.ndarray:
    """What a binding that takes the data pointer and ignores the strides reads: ``x``'s first
    ``x.nbytes`` bytes of memory in C order (``x`` itself where that would leave its buffer)."""
    x = np.asarray(x)
    if x.flags.c_contiguous:
        return x
    low, high = np.lib.array_utils.byte_bounds(x)
    start = x.__array_interface__["data"][0]
    if start != low or start + x.nbytes > high:
        return np.ascontiguousarray(x)
    strides = tuple(int(np.prod(x.shape[i + 1:], dtype=np.int64)) * x.itemsize for i in range(x.ndim))
    return np.array(np.lib.stride_tricks.as_strided(x, x.shape, strides), copy=True)


class _StridesRep(_Rep):
    def run(self, inputs, **kwargs):
        return super().run([_as_if_contiguous(x) for x in inputs], **kwargs)


class IgnoresStrides(_Fault):
    """The binding reads each input's memory as if it were contiguous: a non-contiguous view (a
    channels-last frame seen as NCHW, a crop of a wider row) is read in the wrong order."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return _StridesRep(copy)


def _scratch_in_input(rep, inputs, outputs):
    """Outputs right; then the first input's leading elements are overwritten with the first
    output's, as a runtime that reuses its caller's buffer as scratch would leave them."""
    if inputs and outputs:
        x, y = inputs[0], np.asarray(outputs[0])
        if isinstance(x, np.ndarray) and x.flags.writeable and x.dtype == y.dtype:
            n = min(x.size, y.size)
            x.flat[:n] = y.reshape(-1)[:n] + np.asarray(1, y.dtype)
    return outputs


class WritesIntoInputs(_Fault):
    """Every output is right, but the run leaves its own values in the caller's first input."""

    alter = staticmethod(_scratch_in_input)


class WrongWithThreads(_Fault):
    """With more than one thread the work is split in two and the element at the split (the
    middle of each output) is off by 1e-2; ``variants()`` offers the same runtime on one thread,
    which is right."""

    threads = 0  # 0: the default (several threads)

    @staticmethod
    def _split(rep, inputs, outputs):
        return [_shifted([o], np.unravel_index(o.size // 2, o.shape))[0] if o.size else o for o in outputs]

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        rep = super().prepare(model, device, **kwargs)
        rep._alter = None if cls.threads == 1 else (lambda rep, inputs, outputs: cls._split(rep, inputs, outputs))
        return rep

    @classmethod
    def variants(cls):
        return {"one-thread": type("WrongWithThreadsOneThread", (cls,), {"threads": 1})}


class WrongWhenOptimized(_Fault):
    """With its graph optimizations on, a rewrite puts each output's first element off by 1e-2;
    ``variants()`` offers the same runtime with them off (ONNX Runtime's ORT_DISABLE_ALL), right."""

    optimized = True

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        rep = super().prepare(model, device, **kwargs)
        if cls.optimized:
            rep._alter = lambda rep, inputs, outputs: _shifted(outputs, (0,) * np.ndim(outputs[0]))
        return rep

    @classmethod
    def variants(cls):
        return {"no-graph-optimizations": type("WrongWhenOptimizedOff", (cls,), {"optimized": False})}


#: The scratch buffer every ``SharedScratch`` session shares (the fault: it should be per call).
_SCRATCH: list = [None]


class _SharedScratchRep(_Rep):
    def run(self, inputs, **kwargs):
        import time

        _SCRATCH[0] = super().run(inputs, **kwargs)
        time.sleep(0.05)  # the GIL is released: another caller's run may land in the scratch now
        return [np.array(o, copy=True) for o in _SCRATCH[0]]


class SharedScratch(_Fault):
    """Every session writes its outputs into one process-wide buffer and reads them back: run one
    at a time it is right; runs that overlap may return another caller's outputs."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return _SharedScratchRep(copy)


def misexported_relu():
    """A Conv2d(2, 3, 3) + ReLU module whose ONNX file is wrong while torch and every runtime are
    right: its ReLU is an autograd Function whose ``symbolic`` (what the TorchScript exporter
    writes) is LeakyRelu(0.1), as an exporter mapping an op to the wrong ONNX op would write it.
    Negative inputs show it; onnx's reference evaluator on the file gives the runtime's numbers.
    (The dynamo exporter traces the Function's forward instead, and writes a right file.)"""
    import torch

    class _Relu(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clamp(min=0)

        @staticmethod
        def symbolic(g, x):
            return g.op("LeakyRelu", x, alpha_f=0.1)

    class MisExported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x):
            return _Relu.apply(self.conv(x))

    return MisExported()


def exporter_fault_case():
    """``misexported_relu`` as a model case (the seeded exporter fault)."""
    from hypothesis import strategies as st

    from conformance.draw.spec import Case
    from conformance.draw.strategies import shapes

    return Case("misexported_relu", "model", frozenset({"Conv", "LeakyRelu"}), lambda: st.just(()),
                lambda _: misexported_relu(), lambda _: shapes(channels=2, max_side=8, max_batch=2),
                lambda _: (1, 2, 8, 8))
