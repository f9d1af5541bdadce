"""compare(): numpy's decimal rule, NaN/Inf handling, the oracle verdict, the message."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra.numpy import arrays

from conformance.engine.compare import compare, judge_with_oracle, tolerance, ulp_distance


def numpy_says_equal(a, e, decimal):
    try:
        np.testing.assert_almost_equal(a, e, decimal=decimal)
        return True
    except AssertionError:
        return False


finite = st.floats(-1e3, 1e3, width=32)


@given(arrays(np.float32, st.integers(1, 20), elements=finite), st.floats(-3e-3, 3e-3),
       st.integers(1, 5))
def test_agrees_with_numpy_assert_almost_equal(expected, shift, decimal):
    actual = (expected + np.float32(shift)).astype(np.float32)
    assert bool(compare(actual, expected, decimal)) == numpy_says_equal(actual, expected, decimal)


def test_tolerance_is_numpys():
    assert tolerance(3) == pytest.approx(1.5e-3)
    assert compare(np.float32([1.0014]), np.float32([1.0]))
    assert not compare(np.float32([1.0016]), np.float32([1.0]))


def test_worst_element_and_counts():
    expected = np.zeros((2, 3), np.float32)
    actual = expected.copy()
    actual[1, 2] = 0.01
    actual[0, 0] = 0.002
    r = compare(actual, expected)
    assert not r and r.worst_index == (1, 2) and r.mismatches == 2 and r.total == 6
    assert r.max_abs == pytest.approx(0.01)
    assert "max abs error 0.01 at [1, 2]" in r.summary() and "2 of 6 elements off" in r.summary()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_where_reference_is_finite_fails(bad):
    r = compare(np.float32([1.0, bad]), np.float32([1.0, 2.0]))
    assert not r and r.nonfinite == 1 and "NaN/Inf" in r.summary()


def test_matching_nonfinite_values_agree():
    assert compare(np.float32([np.nan, np.inf]), np.float32([np.nan, np.inf]))


def test_shape_mismatch_fails_with_both_shapes():
    r = compare(np.zeros((1, 4)), np.zeros((4, 1)))
    assert not r and "(1, 4)" in r.summary() and "(4, 1)" in r.summary()


def test_ulp_distance_counts_representable_steps():
    one = np.float32(1.0)
    assert ulp_distance(np.float32([one]), np.float32([np.nextafter(one, np.float32(2))]))[0] == 1
    assert ulp_distance(np.float32([-0.0]), np.float32([0.0]))[0] <= 1


def test_oracle_blames_the_side_that_is_off():
    oracle = np.float64([1.0, 2.0])
    expected = np.float32([1.0, 2.0])
    actual = np.float32([1.0, 2.01])
    r = judge_with_oracle(compare(actual, expected), actual, expected, oracle)
    assert r.oracle.wrong_side == "backend"
    r = judge_with_oracle(compare(expected, actual), expected, actual, oracle)
    assert r.oracle.wrong_side == "reference"


def test_reports_carry_the_oracle_for_the_closest_pass(tmp_path):
    """The record of a passing case keeps its closest pass with each side's float64-oracle error,
    computed once for the case."""
    from conformance.backends import load_backend
    from conformance.pytest.casecheck import CaseCheck
    from conformance.formats.onnx_export import ExportTarget
    from conformance.draw.operators import CONV2D
    from conformance.engine.harness import Harness, Target
    from conformance.engine.record import Recorder

    record = Recorder().open("t", case="conv2d", kind="operator", backend="onnxruntime",
                             exporter="torchscript", opset=17)
    check = CaseCheck(Harness(), record, case_timeout=None, feeds=("initializers", "inputs"),
                      reproducers=tmp_path)
    closest = check.drawn(CONV2D, Target(load_backend("onnxruntime"), ExportTarget("torchscript", 17)),
                          max_examples=5)
    worst = record.worst
    assert record.examples == 5 and worst.ok and worst.oracle is not None
    assert closest.result is worst
    assert worst.oracle.backend_error < worst.tolerance and worst.oracle.reference_error < worst.tolerance


# --- Special values: torch's semantics (NaN/Inf positions and Inf signs exact, finite decimal-3)

def test_special_values_matching_torch_pass_with_finite_noise_under_tolerance():
    expected = np.float32([np.nan, np.inf, -np.inf, -0.0, 1e-40, 3e38, 0.5])
    actual = np.float32([np.nan, np.inf, -np.inf, 0.0, 0.0, 3e38, 0.5009])
    r = compare(actual, expected)
    assert r and r.lost_nonfinite == "" and r.nonfinite == 0
    assert numpy_says_equal(actual, expected, 3)


@pytest.mark.parametrize("got, lost", [
    (0.0, "1 NaN became finite"),  # x86 maxps(NaN, 0) in a ReLU
    (np.inf, "1 NaN became +Inf"),
])
def test_a_reference_nan_must_stay_nan(got, lost):
    r = compare(np.float32([got, 1.0]), np.float32([np.nan, 1.0]))
    assert not r and r.lost_nonfinite == lost and lost in r.summary()
    assert r.worst_index == (0,) and r.mismatches == 1 and r.max_rel == np.inf
    assert not numpy_says_equal(np.float32([got, 1.0]), np.float32([np.nan, 1.0]), 3)


def test_an_inf_must_keep_its_sign_and_stay_infinite():
    expected = np.float32([np.inf, -np.inf, np.inf])
    r = compare(np.float32([-np.inf, -np.inf, 3e38]), expected)
    assert not r and r.mismatches == 2
    assert r.lost_nonfinite == "1 +Inf became finite, 1 +Inf became -Inf"
    assert not compare(np.float32([np.nan]), np.float32([np.inf]))


@given(arrays(np.float32, st.integers(1, 30), elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
       arrays(np.float32, st.integers(1, 30), elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_special_value_verdict_agrees_with_numpy(a, e):
    if a.shape != e.shape:
        a = np.resize(a, e.shape)
    assert bool(compare(a, e)) == numpy_says_equal(a, e, 3)


def test_ulp_is_measured_over_finite_pairs_only():
    r = compare(np.float32([np.nan, 1.0]), np.float32([np.nan, 1.0]))
    assert r and r.ulp == 0


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float32, hnp.array_shapes(max_dims=4, max_side=6),
               elements=st.floats(-1e3, 1e3, width=32, allow_subnormal=True)),
    st.data(),
)
def test_the_float32_fast_path_gives_the_general_result(expected, data):
    from conformance.engine.compare import _compare

    tol = tolerance(3)
    steps = data.draw(hnp.arrays(np.float32, expected.shape, elements=st.sampled_from(
        [0.0, tol, -tol, np.nextafter(np.float32(tol), np.float32(0)), 2 * tol, 1e-7, -3e-4, 5.0])))
    actual = (expected + steps).astype(np.float32)
    fast, general = compare(actual, expected), _compare(actual, expected, 3)
    assert fast == general


def test_the_fast_path_hands_non_finite_differences_to_the_general_rule():
    expected = np.float32([1.0, 3e38, 2.0])
    actual = np.float32([1.0, -3e38, np.nan])  # an overflowing difference and a NaN
    result = compare(actual, expected)
    assert not result and result.nonfinite == 1 and result.max_abs == float("inf")
