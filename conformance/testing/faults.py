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
- ``LargeFrameEdge``: inputs of more than 256x256 pixels (camera frames; no ordinary draw, nor
  the tutorial's 224x224) get a wrong last output column.

``perturbed_node(name)`` makes a backend that adds a constant after one named node (and nowhere
else): the seeded single-layer fault the localization tests plant.

``pytest -m parity --backend=conformance.faults:DepthToSpaceDCR`` must fail;
``--backend=onnxruntime.backend`` must pass.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper

from conformance.testing.fault_base import Fault as _Fault
from conformance.testing.fault_base import shifted as _shifted


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


#: Pixels per image past which ``LargeFrameEdge`` misbehaves: more than any ordinary draw (96x96)
#: and the tutorial's 224x224 hold, fewer than any camera frame.
LARGE_FRAME_PIXELS = 256 * 256


class LargeFrameEdge(_Fault):
    """Images of more than ``LARGE_FRAME_PIXELS`` pixels: the last output column is off by 1e-2,
    as a kernel that switches to a tiled path for large images gets its last tile's edge wrong."""

    alter = staticmethod(lambda rep, inputs, outputs:
                         _shifted(outputs, (..., -1)) if inputs and np.ndim(inputs[0]) == 4
                         and np.shape(inputs[0])[-2] * np.shape(inputs[0])[-1] > LARGE_FRAME_PIXELS else outputs)


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


# The int8 kernel faults (rewrites of QDQ graphs) and one fault per line of the diagnosis live in
# their own modules; ``conformance.faults:NAME`` names every one of them.
from conformance.testing.diagnosis_faults import (  # noqa: E402,F401
    IgnoresStrides,
    SharedScratch,
    StateAfterRuns,
    WritesIntoInputs,
    WrongWhenOptimized,
    WrongWithThreads,
    exporter_fault_case,
    misexported_relu,
)
from conformance.testing.int8_faults import (  # noqa: E402,F401
    NoSaturation,
    PerChannelScalesReversed,
    Requant16,
    RoundHalfAwayFromZero,
    ZeroPointPlusOne,
)
