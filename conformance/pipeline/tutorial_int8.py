"""The tutorial's SuperResolutionNet(3) quantized to int8, for latency and quality beside float32.

The float model is the one the float latency case times (orthogonal init, seed 0) on the
tutorial's 1x1x224x224 pixel input; PT2E with ExecuTorch's ``XNNPACKQuantizer`` (per-channel
weights) calibrates it on four other pixel images of that size. ONNX runtimes run its QDQ file
(dynamo exporter), ExecuTorch its XNNPACK int8 ``.pte``. Built once per process (PT2E and the
export take several seconds at this size).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import onnx
import torch

from conformance.draw.strategies import InputRecipe, WeightRecipe
from conformance.formats import quantize as q

SHAPE = (1, 1, 224, 224)
WEIGHTS = WeightRecipe("orthogonal-relu", 0.0, 0)
CALIBRATION = tuple(InputRecipe(SHAPE, "pixel", "integers", seed, 0) for seed in (1, 2, 3, 4))


@dataclass
class TutorialInt8:
    module: torch.nn.Module  # float32
    converted: torch.fx.GraphModule  # PT2E fake-quant
    qdq: onnx.ModelProto
    x: np.ndarray  # the tutorial's input
    output_q: q.QParams

    def float_output(self) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(self.x)).numpy()


@functools.lru_cache(maxsize=2)
def tutorial_int8(quantizer: str = "xnnpack") -> TutorialInt8:
    """The quantized tutorial model (``quantizer``: "xnnpack", or "litert" for LiteRT's converter)."""
    from conformance.models.superres import SuperResolutionNet

    module = SuperResolutionNet(3).eval()
    values = WEIGHTS.materialize(module)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in values.items()})
    calibration = [r.materialize() for r in CALIBRATION]
    converted = q.pt2e_quantize(module, calibration[0], calibration, per_channel=True, quantizer=quantizer)
    x = InputRecipe(SHAPE, "pixel", "integers", 0, 0).materialize()
    _, outputs = q.fx_qparams(converted)
    return TutorialInt8(module, converted, q.qdq_from_pt2e(converted, calibration[0]), x, outputs[0])


def tutorial_for(backend) -> TutorialInt8:
    """The quantized tutorial model as ``backend`` takes it (its own PT2E quantizer, if any)."""
    return tutorial_int8(getattr(backend, "pt2e_quantizer", "xnnpack"))


def int8_session(backend, tutorial: TutorialInt8):
    """A session of ``backend`` on the int8 model: its QDQ file (ONNX runtimes) or its own int8
    program (``export_int8``); None when the runtime has no int8 path here."""
    from conformance.backends.base import ProgramBackend

    if isinstance(backend, ProgramBackend):
        if not hasattr(backend, "export_int8"):
            return None
        return backend.load(backend.export_int8(tutorial.converted, (torch.from_numpy(tutorial.x),)))
    return backend.prepare(tutorial.qdq)
