"""Production-size frames catch what no ordinary draw reaches, and a correct runtime passes them.

``LargeFrameEdge`` is wrong only on images past 256x256 pixels. The default (derandomized CI)
profile fails it through the model cases' frames and names the frame; the same run drawing no
frames (as before them) passes it. ONNX Runtime passes at frame sizes: no false alarm from float32
rounding over a frame's millions of outputs.
"""

import json

import pytest

from conformance.backends.onnxrt import OnnxRuntimeBackend
from conformance.draw.frames import frame_of
from conformance.draw.model_cases import SUPERRES
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe
from conformance.engine.harness import Example, Harness, Target
from conformance.formats.onnx_export import ExportTarget

FAULT = ("--backend", "conformance.faults:LargeFrameEdge", "--exporter", "torchscript", "--opset", "17",
         "--feed", "initializers")
ON_FAULT = "LargeFrameEdge and test_model and not special"


def _cases(tmp_path):
    return json.loads((tmp_path / "reports" / "parity.json").read_text())["cases"]


@pytest.mark.slow
def test_the_default_profile_catches_a_large_frame_fault_through_frames_only(suite, tmp_path):
    result = suite("cases/test_models.py", "-m", "parity", "-k", ON_FAULT, *FAULT, timeout=900)
    assert result.returncode == 1, result.stdout[-3000:]
    cases = {c["nodeid"].split("::")[1].split("[")[0] + "/" + c["case"]: c for c in _cases(tmp_path)}
    # The ordinary draws (up to 96x96) miss it: both models pass on the faulty runtime.
    assert cases["test_model/superres"]["outcome"] == "passed", cases["test_model/superres"]["message"]
    assert cases["test_model/srresnet"]["outcome"] == "passed"
    assert cases["test_model/superres"]["examples"] > 0
    frames = cases["test_model_frames/superres"]
    assert frames["outcome"] == "failed"
    shape = tuple(int(n) for n in frames["message"].split("input (")[1].split(")")[0].split(","))
    width, height = frame_of(shape)
    assert f"(a {width}x{height} frame)" in frames["message"]


@pytest.mark.slow
@pytest.mark.parametrize("size, r, distribution", [
    ((641, 479), 2, "integers"),
    ((1279, 721), 3, "photo"),  # a real photograph: smooth, saturated, mirrored past its edges
    ((1921, 1079), 4, "uniform"),
])
def test_a_correct_runtime_passes_frames(size, r, distribution):
    width, height = size
    recipe = InputRecipe((1, 1, height, width), "pixel", distribution, 5, 0, "chelsea" if distribution == "photo" else "")
    example = Example(r, WeightRecipe("orthogonal-relu", 0.0, 3), recipe, "initializers",
                      Deployment(static=False, runs=2))
    outcome = Harness().run(SUPERRES, Target(OnnxRuntimeBackend(), ExportTarget("torchscript", 17)), example)
    assert outcome.result, outcome.result.summary()
    assert outcome.expected[0].shape == (1, 1, r * height, r * width)
    assert outcome.result.margin < 0.5, outcome.result.summary()  # measured 9-12% of the tolerance
