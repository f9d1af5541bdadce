"""ONNX backends with seeded faults: proof that the suite catches what it claims to catch.

Each class follows the ONNX backend API and wraps ONNX Runtime, breaking one thing:

- ``OffBy2e3``: every output element off by 2e-3 (just past decimal-3's 1.5e-3).
- ``DepthToSpaceDCR``: DepthToSpace run in DCR order instead of PyTorch's CRD.
- ``DroppedConvBias``: Conv nodes lose their bias input.
- ``Raises``: every run raises (the case must fail with this message, nothing else).

``pytest -m parity --backend=conformance.faults:DepthToSpaceDCR`` must fail;
``--backend=onnxruntime.backend`` must pass.
"""

from __future__ import annotations

import numpy as np
import onnx


class _Rep:
    def __init__(self, model: onnx.ModelProto, post=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                     providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]
        self._post = post

    def run(self, inputs, **kwargs):
        outputs = self._session.run(None, dict(zip(self._names, inputs)))
        return [self._post(o) for o in outputs] if self._post else outputs


class _Fault:
    """Base: rewrite the model (``mutate``), then run it on ONNX Runtime (``post`` on outputs)."""

    post = None

    @classmethod
    def mutate(cls, model: onnx.ModelProto) -> onnx.ModelProto:
        return model

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> _Rep:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return _Rep(cls.mutate(copy), cls.post)

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
