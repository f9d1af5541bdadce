"""Misbehaving ONNX-backend-API backends, for the hardening tests (``--backend MODULE:NAME``).

``conformance.testing.misbehaving:Hang`` never returns from ``run``; ``HangPrepare`` never returns
from ``prepare``; ``Opset11`` refuses models newer than opset 11, as an old runtime would;
``Wrong`` adds 1 to every output.
"""

from __future__ import annotations

import threading

import numpy as np

# Set by tests to release hung calls at the end (so no thread outlives the test process long).
RELEASE = threading.Event()


def _block() -> None:
    RELEASE.wait(3600)


class _OrtRep:
    def __init__(self, model, shift: float = 0.0):
        import onnxruntime

        self._session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]
        self._shift = shift

    def run(self, inputs):
        outputs = self._session.run(None, dict(zip(self._names, inputs)))
        return [o + self._shift if np.asarray(o).dtype.kind == "f" else o for o in outputs]


class _HangRep:
    def run(self, inputs):
        _block()
        raise RuntimeError("released")


class Hang:
    """Prepares at once; every run blocks."""

    @staticmethod
    def prepare(model, device="CPU", **_):
        return _HangRep()


class HangPrepare:
    """Never finishes preparing."""

    @staticmethod
    def prepare(model, device="CPU", **_):
        _block()
        raise RuntimeError("released")


class Opset11:
    """ONNX Runtime that refuses what a runtime from the opset-11 era could not load."""

    MAX_OPSET = 11

    @staticmethod
    def prepare(model, device="CPU", **_):
        opset = next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), 0)
        if opset > Opset11.MAX_OPSET:
            raise RuntimeError(f"unsupported opset {opset} (this backend supports up to {Opset11.MAX_OPSET})")
        return _OrtRep(model)


class Wrong:
    """ONNX Runtime with every float output off by one."""

    @staticmethod
    def prepare(model, device="CPU", **_):
        return _OrtRep(model, shift=1.0)
