"""The kernels of the default reference that put right what onnx's evaluator gets wrong or lacks
at every opset (``conformance.backends.reference_fixes``, and the converter's coordinates for
Resize before opset 11), each against the spec's formula or ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import assume, given, reject, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from conformance.backends.onnx_reference import ReferenceRep
from byom_helpers import one_node_model as _model
from byom_helpers import onnxruntime_run as _ort


@pytest.mark.parametrize("batch, channels, size", [(1, 7, 5), (2, 6, 4), (1, 3, 1)])
def test_lrn_sums_over_channels_as_the_spec_says(batch, channels, size):
    """Before: onnx's evaluator summed over the batch axis; on a batch-1 input every channel
    but the first was left unnormalized (AlexNet, ZFNet, GoogLeNet off by 1e-3 relative)."""
    attrs = {"size": size, "alpha": 0.5, "beta": 0.75, "bias": 2.0}
    shape = (batch, channels, 3, 2)
    model = _model([helper.make_node("LRN", ["x"], ["y"], **attrs)], shape, shape)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32) * 3
    # the spec's loop, element by element, in float64
    xd, want = x.astype(np.float64), np.empty(shape)
    for c in range(channels):
        lo, hi = max(0, c - (size - 1) // 2), min(channels - 1, c + -(-(size - 1) // 2))
        square_sum = (xd[:, lo:hi + 1] ** 2).sum(axis=1)
        want[:, c] = xd[:, c] / (2.0 + 0.5 / size * square_sum) ** 0.75
    got = ReferenceRep(model).run([x])[0]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    if size % 2:  # ONNX Runtime takes odd sizes only
        np.testing.assert_allclose(_ort(model, x)[0], want, rtol=1e-5)
    if size > 1:
        assert not np.allclose(onnx.reference.ReferenceEvaluator(model).run(None, {"x": x})[0], want, rtol=1e-3)


RESIZES = {  # (operator, opset, mode, scales): Upsample and Resize before 11 map x to x / scale
    "upsample7_linear": ("Upsample", 7, "linear", [1, 1, 2, 2]),
    "upsample9_linear": ("Upsample", 9, "linear", [1, 1, 2, 3]),
    "upsample9_nearest": ("Upsample", 9, "nearest", [1, 1, 2.5, 1.7]),
    "resize10_linear": ("Resize", 10, "linear", [1, 1, 2, 2]),
    "resize10_linear_down": ("Resize", 10, "linear", [1, 1, 0.6, 0.5]),
    "resize10_nearest_up": ("Resize", 10, "nearest", [1, 1, 2.5, 1.7]),
    "resize10_nearest_down": ("Resize", 10, "nearest", [1, 1, 0.6, 0.5]),
}


@pytest.mark.parametrize("name", RESIZES)
def test_resize_before_opset_11_keeps_its_coordinates(name):
    """Before: the converter made them opset-11 Resizes with "half_pixel" coordinates (an
    opset-9 bilinear Upsample off by up to 1)."""
    op, opset, mode, scales = RESIZES[name]
    if op == "Upsample" and opset < 9:
        node, inits = helper.make_node(op, ["x"], ["y"], mode=mode, scales=[float(s) for s in scales]), []
    else:
        node, inits = helper.make_node(op, ["x", "s"], ["y"], mode=mode), [numpy_helper.from_array(
            np.array(scales, np.float32), "s")]
    model = _model([node], (1, 2, 5, 7), (None, None, None, None), inits, opset=opset)
    x = np.random.default_rng(7).standard_normal((1, 2, 5, 7)).astype(np.float32)
    got = ReferenceRep(model).run([x])[0]
    np.testing.assert_allclose(got, _ort(model, x)[0], atol=1e-6)
    unpinned = onnx.version_converter.convert_version(model, 28)
    differs = not np.allclose(onnx.reference.ReferenceEvaluator(unpinned).run(None, {"x": x})[0], got, atol=1e-3)
    assert differs or name == "resize10_nearest_down"  # there half_pixel rounding gives the same


def test_global_lp_pool_which_the_evaluator_lacks():
    model = _model([helper.make_node("GlobalLpPool", ["x"], ["y"], p=3)], (2, 3, 4, 5), (2, 3, 1, 1), opset=7)
    x = np.random.default_rng(8).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(ReferenceRep(model).run([x])[0], _ort(model, x)[0], rtol=1e-5)


@pytest.mark.parametrize("p, axis", [(1, 1), (2, 0), (1, -1)])
def test_lp_normalization_takes_the_norm_of_absolute_values(p, axis):
    """Before: the evaluator summed signed values to the p-th power (p=1: not a norm at all)."""
    model = _model([helper.make_node("LpNormalization", ["x"], ["y"], axis=axis, p=p)], (3, 4), (3, 4))
    x = np.random.default_rng(9).standard_normal((3, 4)).astype(np.float32)
    want = x / (np.abs(x.astype(np.float64)) ** p).sum(axis=axis, keepdims=True) ** (1 / p)
    np.testing.assert_allclose(ReferenceRep(model).run([x])[0], want, rtol=1e-12)
    np.testing.assert_allclose(_ort(model, x)[0], want, rtol=1e-5)


@pytest.mark.parametrize("axes", [None, [0, 2]])
def test_mean_variance_normalization_runs_in_float64(axes):
    """Before: its function body's float32 epsilon made the whole graph fall back to float32."""
    attrs = {} if axes is None else {"axes": axes}
    shape = (2, 3, 4, 5) if axes is None else (2, 3, 4)
    model = _model([helper.make_node("MeanVarianceNormalization", ["x"], ["y"], **attrs)], shape, shape)
    x = np.random.default_rng(10).standard_normal(shape).astype(np.float32) * 3 + 1
    rep = ReferenceRep(model)
    (got,) = rep.run([x])
    assert rep.precision == "float64" and got.dtype == np.float64, rep.notes
    np.testing.assert_allclose(got, _ort(model, x)[0], atol=2e-6)


@st.composite
def conv_transpose_cases(draw):
    spatial = draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(spatial)]
    strides = [draw(st.integers(1, 3)) for _ in range(spatial)]
    dilations = [draw(st.integers(1, 2)) for _ in range(spatial)]
    size = [draw(st.integers(1, 5)) for _ in range(spatial)]
    groups, per_in, per_out = draw(st.sampled_from([1, 2, 3])), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    attrs = {"group": groups, "strides": strides, "dilations": dilations, "kernel_shape": kernel}
    how = draw(st.sampled_from(["pads", "output_shape", "SAME_UPPER", "SAME_LOWER"]))
    if how == "pads":
        attrs["pads"] = [draw(st.integers(0, k - 1)) for k in kernel * 2]
        attrs["output_padding"] = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(strides, dilations)]
    elif how == "output_shape":
        attrs["output_shape"] = [s * (m - 1) + (k - 1) * d + 1 - draw(st.integers(0, 2))
                                 for m, k, s, d in zip(size, kernel, strides, dilations)]
    else:  # where the dilated kernel is shorter than the stride (padding below 0) ONNX Runtime
        # keeps the unpadded size, the spec the input's size times the stride: not compared
        assume(all((k - 1) * d + 1 >= s for k, d, s in zip(kernel, dilations, strides)))
        attrs["auto_pad"] = how
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), groups * per_in, *size)).astype(np.float32)
    w = rng.standard_normal((groups * per_in, per_out, *kernel)).astype(np.float32)
    b = rng.standard_normal(groups * per_out).astype(np.float32) if draw(st.booleans()) else None
    return attrs, x, w, b


@settings(max_examples=80, deadline=None, database=None)
@given(case=conv_transpose_cases())
def test_conv_transpose_agrees_with_onnxruntime(case):
    """The evaluator's own fails on groups of several channels and on ``output_shape``."""
    attrs, x, w, b = case
    inits = [numpy_helper.from_array(w, "w")] + ([numpy_helper.from_array(b, "b")] if b is not None else [])
    node = helper.make_node("ConvTranspose", ["x", "w"] + (["b"] if b is not None else []), ["y"], **attrs)
    model = _model([node], x.shape, [None] * x.ndim, inits, opset=18)
    try:
        (theirs,) = _ort(model, x)
    except Exception:  # an output_shape or padding ONNX Runtime refuses
        reject()
    ours = ReferenceRep(model).run([x])[0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
