"""Issue 12's proof: a runtime wrong in only one deployment dimension (batch 8/16, NaN through
ReLU, photo-like inputs, a session's second run, static-shape models, widths of 33-63 and
per-channel widths past 16 with a remainder) fails the default
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
    ("MidWidthTail", "test_operator and not special", "input ("),
    ("ChannelTail", "test_operator and not special and (batchnorm2d or prelu)", "input ("),
])
def test_each_dimension_fault_is_caught_by_the_default_profile(suite, tmp_path, fault, select, evidence):
    result = suite("cases/test_operators.py", "cases/test_models.py", "-m", "parity", "-k", select,
                   "--backend", f"conformance.faults:{fault}", *NARROW, timeout=900)
    assert result.returncode == 1, result.stdout[-3000:]
    failed = [c for c in json.loads((tmp_path / "reports" / "parity.json").read_text())["cases"]
              if c["outcome"] == "failed"]
    assert failed, result.stdout[-3000:]
    assert any(evidence in c["message"] for c in failed), [c["message"] for c in failed][:3]
    shapes = [tuple(int(n) for n in c["message"].split("input (")[1].split(")")[0].split(",")) for c in failed]
    if fault == "LargeBatchLane":  # the failing example holds a batch past the fault's lane
        assert any(shape[0] in (8, 16) for shape in shapes), shapes
    if fault == "MidWidthTail":  # shrunk to a width in the fault's band
        assert all(33 <= shape[-1] <= 63 and shape[-1] % 16 for shape in shapes), shapes
    if fault == "ChannelTail":  # shrunk to a channel count with a remainder past 16
        assert all(shape[1] > 16 and shape[1] % 16 for shape in shapes), shapes
