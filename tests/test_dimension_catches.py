"""Issue 12's proof: a runtime wrong in only one deployment dimension (batch 8/16, NaN through
ReLU, photo-like inputs, a session's second run, static-shape models) fails the default
(derandomized CI) profile, and the failure says which dimension it was drawn in."""

import json

import pytest

NARROW = ("--exporter", "torchscript", "--opset", "17")


@pytest.mark.slow
@pytest.mark.parametrize("fault, select, evidence", [
    ("LargeBatchLane", "test_operator and not special", "input ("),
    ("NaNReluToZero", "special", "special values"),
    ("SmoothInputWrong", "test_operator and not special", "photo: "),
    ("SecondRunStale", "test_operator and not special", "run 2 of"),
    ("StaticShapeEdge", "test_operator and not special", "static-shape export"),
])
def test_each_dimension_fault_is_caught_by_the_default_profile(suite, tmp_path, fault, select, evidence):
    result = suite("cases/test_operators.py", "cases/test_models.py", "-m", "parity", "-k", select,
                   "--backend", f"conformance.faults:{fault}", *NARROW, timeout=900)
    assert result.returncode == 1, result.stdout[-3000:]
    failed = [c for c in json.loads((tmp_path / "reports" / "parity.json").read_text())["cases"]
              if c["outcome"] == "failed"]
    assert failed, result.stdout[-3000:]
    assert any(evidence in c["message"] for c in failed), [c["message"] for c in failed][:3]
    if fault == "LargeBatchLane":  # the failing example holds a batch past the fault's lane
        assert any(c["message"].split("input (")[1].split(",")[0] in ("8", "16") for c in failed)
