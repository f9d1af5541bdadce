"""ONNX's own reference evaluator (``onnx.reference``) as an ONNX-backend-API module.

A second implementation independent of ONNX Runtime, written in numpy from the operator specs:
slow, but what the spec says. Use it as ``--backend conformance.byom.onnx_reference`` (or as
``--reference``) to check a model's ONNX Runtime outputs against the spec.
"""

from __future__ import annotations

from conformance.byom.defaults import DEFAULT_REFERENCE  # noqa: F401

from typing import Sequence

import numpy as np
import onnx

__version__ = onnx.__version__


class ReferenceRep:
    """A model prepared by ``onnx.reference.ReferenceEvaluator``; runs inputs in model order."""

    def __init__(self, model: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator

        self._evaluator = ReferenceEvaluator(model)
        initializers = {i.name for i in model.graph.initializer}
        self._names = [i.name for i in model.graph.input if i.name not in initializers]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._names):
            raise ValueError(f"the model takes {len(self._names)} inputs, got {len(inputs)}")
        # numpy warns about overflow in branches np.where then discards (Sigmoid, Softplus...).
        with np.errstate(all="ignore"):
            outputs = self._evaluator.run(None, dict(zip(self._names, inputs)))
        return [np.asarray(o) for o in outputs]


def prepare(model: onnx.ModelProto, device: str = "CPU", **_) -> ReferenceRep:
    """The ONNX backend API's ``prepare``: CPU only."""
    if device.upper() != "CPU":
        raise ValueError(f"onnx.reference runs on CPU only, not {device!r}")
    return ReferenceRep(model)


def supports_device(device: str) -> bool:
    return device.upper() == "CPU"
