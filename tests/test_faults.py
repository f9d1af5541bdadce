"""Proof that the suite catches faults: seeded-fault backends fail, a correct one passes.

Each run is narrowed to one target (TorchScript, opset 17) and to the cases the fault touches,
so the proof costs seconds, not a full suite run.
"""

import pytest

NARROW = ("--exporter", "torchscript", "--opset", "17")


def last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("fault, case", [
    ("OffBy2e3", "relu"),  # just past the 1.5e-3 tolerance, on an op that is exact otherwise
    ("DepthToSpaceDCR", "pixel_shuffle"),
    ("DroppedConvBias", "conv2d"),
])
def test_seeded_fault_fails_parity(suite, fault, case):
    node = f"cases/test_operators.py::test_operator[conformance.faults.{fault}-torchscript-opset17-{case}]"
    result = suite(node, "--backend", f"conformance.faults:{fault}", *NARROW)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert f"FAILED {node}" in out
    assert "parity fails at decimal=3" in out
    assert "float64 oracle: the backend is off" in out
    assert "reproducer:" in out and "rerun: pytest" in out


@pytest.mark.slow
def test_off_by_2e3_fails_the_full_model_too(suite):
    result = suite("cases/test_models.py", "-m", "parity", "-k", "tutorial_input",
                   "--backend", "conformance.faults:OffBy2e3", *NARROW)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "2 failed" in last_line(result.stdout)  # the dynamic and the static (tutorial's) export
    assert "superres on conformance.faults.OffBy2e3" in result.stdout


@pytest.mark.slow
def test_correct_onnx_backend_passes_every_case(suite):
    result = suite("cases", "-m", "parity", "--backend", "onnxruntime.backend", *NARROW)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "failed" not in last_line(result.stdout)
    assert "passed" in last_line(result.stdout)


@pytest.mark.slow
def test_raising_backend_fails_only_its_cases_with_its_message(suite):
    result = suite("cases/test_operators.py", "-m", "parity", "-k", "relu and not prelu and not special",
                   "--backend", "conformance.faults:Raises", "--backend", "onnxruntime", *NARROW)
    out = result.stdout
    assert result.returncode == 1
    assert "seeded fault: this backend cannot run anything" in out
    assert "1 failed, 1 passed" in last_line(out), out[-2000:]
    assert "Traceback" not in out and "direct cause" not in out
