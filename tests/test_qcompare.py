"""The int8 verdict: steps of the output's scale, the bias rule, float64 deciding ties, SQNR."""

import math

import numpy as np
import pytest

from conformance.engine.qcompare import BIAS_FLOOR, QCompareResult, bias_bound, qcompare, sqnr_db
from conformance.engine.record import CaseRecord

SCALE, ZP = 0.0072, 3


def grid(shape, seed=0):
    """Values on the quantization grid of SCALE, ZP (what a dequantized int8 output holds)."""
    q = np.random.default_rng(seed).integers(-128, 128, size=shape)
    return ((q - ZP) * SCALE).astype(np.float32)


def test_exact_output_passes_with_zero_steps():
    e = grid((1, 4, 8, 8))
    r = qcompare(e.copy(), e, SCALE, ZP)
    assert r and r.max_steps == 0 and r.mean_steps == 0 and r.margin == 0 and r.failed_rule == ""


def test_scattered_balanced_one_step_errors_pass():
    e = grid((1, 8, 16, 16))
    a = e.copy().reshape(-1)
    a[::50] += np.float32(SCALE)
    a[25::50] -= np.float32(SCALE)
    r = qcompare(a.reshape(e.shape), e, SCALE, ZP)
    assert r, r.summary()
    assert r.one_step == np.count_nonzero(np.arange(a.size) % 25 == 0)
    assert abs(r.max_steps - 1) < 1e-3


def test_every_element_one_step_low_passes_qtol_but_fails_the_bias_rule():
    e = grid((1, 4, 8, 8))  # 256 elements
    a = (e - np.float32(SCALE)).astype(np.float32)
    r = qcompare(a, e, SCALE, ZP)
    assert not r and r.failed_rule == "bias"
    assert r.mismatches == 0 and abs(r.max_steps - 1) < 1e-3 and abs(r.mean_steps + 1) < 1e-3
    text = r.summary()
    assert "256 of 256 elements one step off" in text and "mean signed error -1 steps" in text
    assert f"output scale {SCALE:.6g}, zero point {ZP}" in text and "fails: bias" in text


def test_two_steps_at_one_element_fails_qtol_naming_the_element():
    e = grid((1, 2, 4, 4))
    a = e.copy()
    a[0, 1, 2, 3] += np.float32(2 * SCALE)
    r = qcompare(a, e, SCALE, ZP)
    assert not r and r.failed_rule == "qtol" and r.worst_index == (0, 1, 2, 3)
    assert "max error 2 steps (0.0144) at [0, 1, 2, 3]" in r.summary()
    assert r.margin == pytest.approx(2, rel=1e-3)
    assert qcompare(a, e, SCALE, ZP, qtol=2)  # a per-runtime override allows it


def test_float64_reference_decides_a_tie():
    e32 = grid((1, 1, 4, 4))
    e64 = e32.copy()
    e64[0, 0, 0, 0] += np.float32(2 * SCALE)  # the tie went the other way in exact arithmetic
    a = e64.copy()
    assert not qcompare(a, e32, SCALE, ZP)
    assert qcompare(a, e32, SCALE, ZP, expected64=e64)


def test_bias_bound_shrinks_with_size_to_its_floor():
    assert bias_bound(16) == 1.0
    assert bias_bound(256) == 0.25
    assert bias_bound(10**6) == BIAS_FLOOR


def test_nan_and_shape_mismatch_fail():
    e = grid((1, 1, 2, 2))
    a = e.copy()
    a[0, 0, 0, 0] = np.nan
    assert not qcompare(a, e, SCALE, ZP)
    r = qcompare(e[..., :1], e, SCALE, ZP)
    assert not r and "shape mismatch" in r.summary()


def test_sqnr_in_db_and_reported_beside_the_verdict():
    f = np.ones(100, np.float32)
    assert sqnr_db(f, f * 1.1) == pytest.approx(20.0)
    assert sqnr_db(f, f) == math.inf
    e = grid((1, 1, 4, 4))
    r = qcompare(e, e, SCALE, ZP, float_output=e * 1.01)
    assert "SQNR" in r.summary() and r


def test_verdict_survives_the_record_round_trip():
    e = grid((1, 4, 8, 8))
    r = qcompare((e - np.float32(SCALE)).astype(np.float32), e, SCALE, ZP, float_output=e)
    record = CaseRecord("n", "conv2d", "operator", "onnxruntime", "int8-ort", 21, worst=r)
    back = CaseRecord.from_json(record.to_json()).worst
    assert isinstance(back, QCompareResult)
    assert (back.ok, back.max_steps, back.mean_steps, back.scale, back.zero_point, back.failed_rule) == \
        (r.ok, r.max_steps, r.mean_steps, r.scale, r.zero_point, r.failed_rule)
    assert back.margin == r.margin
