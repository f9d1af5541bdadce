"""Seeded faults, one per line of the diagnosis (``conformance.engine.diagnosis``): each must be
named by its own ``cause:``, and each is right under the variation that clears it.

- ``StateAfterRuns``: from a session's third run on, every output is off (state between runs).
- ``IgnoresStrides``: a binding that reads a non-contiguous input as if it were contiguous.
- ``WritesIntoInputs``: a runtime that uses its caller's input as scratch memory.
- ``WrongWithThreads``: wrong only with more than one intra-op thread.
- ``WrongWhenOptimized``: wrong only with graph optimizations on (a graph rewrite, not a kernel).
- ``SharedScratch``: one scratch buffer shared by runs that overlap in time.
- ``misexported_relu()``: the exporter's fault: the ONNX file itself is wrong against torch.
"""

from __future__ import annotations

import numpy as np
import onnx

from conformance.testing.fault_base import Fault as _Fault
from conformance.testing.fault_base import Rep as _Rep
from conformance.testing.fault_base import shifted as _shifted


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
