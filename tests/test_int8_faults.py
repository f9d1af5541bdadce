"""Proof that the int8 verdict catches int8 kernel bugs: each seeded fault (a QDQ graph rewritten
before ONNX Runtime runs it) fails an example that reaches it, while clean ONNX Runtime passes the
same example. Examples are fixed (ONNX Runtime's ``quantize_static`` format: quantizing costs
~20 ms), so the proof is deterministic; the slow test runs the default int8 share through pytest."""

import pytest

from conformance.backends import load_backend
from conformance.draw import model_cases, operators
from conformance.draw.quantization import QuantExample, QuantInputRecipe, QuantRecipe
from conformance.draw.strategies import InputRecipe, WeightRecipe
from conformance.engine.harness import Harness, Target
from conformance.engine.qharness import QuantHarness
from conformance.formats.quantize import ORT_STATIC, QuantFormat

CASES = {
    "conv2d": (operators.CONV2D, operators.CONV_POOL[0], (1, 1, 16, 16)),  # the tutorial's conv1
    "residual_add": (operators.RESIDUAL_ADD, 4, (1, 4, 16, 16)),
    "superres": (model_cases.SUPERRES, 3, (1, 1, 24, 24)),
}


def example(case: str, edge: str, scale: str):
    spec, structure, shape = CASES[case]
    drawn = QuantExample(structure, WeightRecipe("orthogonal-relu", 0.0, 1),
                         QuantRecipe(per_channel=True, count=4, range=1.0, distribution="uniform", seed=1),
                         QuantInputRecipe(InputRecipe(shape, scale, "uniform", 3, 0), edge, 1.0))
    return spec, drawn


@pytest.fixture(scope="module")
def runner():
    return QuantHarness(Harness())


@pytest.mark.parametrize("fault, case, edge, scale", [
    ("RoundHalfAwayFromZero", "superres", "half-steps", "pixel"),  # ties only: inputs on half steps
    ("ZeroPointPlusOne", "conv2d", "none", "unit"),
    ("NoSaturation", "residual_add", "past-range", "unit"),  # past the calibrated range
    ("PerChannelScalesReversed", "conv2d", "none", "pixel"),
    ("Requant16", "conv2d", "none", "unit"),
])
def test_each_int8_fault_fails_where_clean_onnxruntime_passes(runner, fault, case, edge, scale):
    spec, drawn = example(case, edge, scale)
    clean = runner.run(spec, Target(load_backend("onnxruntime"), QuantFormat(ORT_STATIC)), drawn)
    assert clean.result, clean.result.summary()
    broken = runner.run(spec, Target(load_backend(f"conformance.faults:{fault}"), QuantFormat(ORT_STATIC)), drawn)
    assert not broken.result, f"{fault} passed: {broken.result.summary()}"


def test_zero_point_plus_one_is_caught_by_the_bias_rule_alone(runner):
    spec, drawn = example("conv2d", "none", "unit")
    r = runner.run(spec, Target(load_backend("conformance.faults:ZeroPointPlusOne"), QuantFormat(ORT_STATIC)),
                   drawn).result
    assert r.failed_rule == "bias" and r.mismatches == 0 and r.max_steps < 1.5, r.summary()
    assert r.mean_steps == pytest.approx(-1, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["ZeroPointPlusOne", "NoSaturation"])
def test_int8_fault_fails_the_default_int8_share(suite, fault):
    result = suite("cases/test_quantized.py", "-m", "parity", "-k", "int8-ort", "--backend", f"conformance.faults:{fault}")
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert "int8 parity fails" in out and "steps" in out and "zero point" in out
    assert "reference: the fake-quant model (onnx's reference evaluator" in out


@pytest.mark.slow
def test_clean_onnxruntime_passes_the_default_int8_share(suite):
    result = suite("cases/test_quantized.py", "-m", "parity", "-k", "int8-ort", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "int8:" in result.stdout and "judged in quantization steps" in result.stdout
