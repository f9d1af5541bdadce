"""What every seeded fault is made of: ONNX Runtime behind the ONNX backend API, with the model
rewritten before it runs (``Fault.mutate``) or its outputs altered after (``post``, ``alter``)."""

from __future__ import annotations

import numpy as np
import onnx


class Rep:
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


class Fault:
    """Base: rewrite the model (``mutate``), then run it on ONNX Runtime (``post`` on outputs)."""

    post = None
    alter = None  # staticmethod(rep, inputs, outputs) -> outputs

    @classmethod
    def mutate(cls, model: onnx.ModelProto) -> onnx.ModelProto:
        return model

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> Rep:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return Rep(cls.mutate(copy), cls.post, cls.alter)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


def shifted(outputs, where, delta: float = 1e-2):
    """Copies of ``outputs`` with ``delta`` added at index ``where`` (the seeded error)."""
    altered = []
    for out in outputs:
        out = np.array(out, copy=True)
        out[where] += np.asarray(delta, out.dtype)
        altered.append(out)
    return altered
