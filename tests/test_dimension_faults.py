"""The seeded faults of issue 12's dimensions misbehave exactly where they claim, nowhere else.

Each fault wraps ONNX Runtime; ONNX Runtime itself is the truth here (the suite-level proof that
the default profile catches each one is wired by the parity core).
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from conformance.testing import faults
from conformance.backends.onnxrt import OnnxRuntimeBackend
from conformance.engine.compare import compare
from conformance.formats.onnx_export import ExportTarget, export
from conformance.models.photos import INPUT_PHOTOS
from conformance.draw.strategies import InputRecipe, inputs

TS17 = ExportTarget("torchscript", 17)
ORT = OnnxRuntimeBackend()


def conv_relu(static: bool = False, shape=(2, 3, 16, 16)):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    return export(module, (torch.zeros(shape),), TS17, dynamic=[() if static else (0, 2, 3)])


def run(backend, model, *xs):
    session = backend.prepare(model)
    return [session.run([x])[0] for x in xs]


def uniform(shape, seed=0):
    return InputRecipe(shape, "unit", "uniform", seed, 0).materialize()


@pytest.mark.parametrize("batch", [1, 4, 7])
def test_large_batch_lane_is_right_under_eight(batch):
    model = conv_relu()
    x = uniform((batch, 3, 16, 16))
    np.testing.assert_array_equal(run(faults.LargeBatchLane, model, x)[0], run(ORT, model, x)[0])


@pytest.mark.parametrize("batch", [8, 16])
def test_large_batch_lane_breaks_the_eighth_item_only(batch):
    model = conv_relu()
    x = uniform((batch, 3, 16, 16))
    got, want = run(faults.LargeBatchLane, model, x)[0], run(ORT, model, x)[0]
    assert not compare(got, want)
    off = [i for i in range(batch) if not compare(got[i], want[i])]
    assert off == [7]


def test_nan_relu_to_zero_is_right_on_finite_inputs_and_wrong_on_nan():
    model = conv_relu()
    x = uniform((2, 3, 16, 16))
    np.testing.assert_array_equal(run(faults.NaNReluToZero, model, x)[0], run(ORT, model, x)[0])
    x[0, 1, 5, 5] = np.nan
    got, want = run(faults.NaNReluToZero, model, x)[0], run(ORT, model, x)[0]
    assert np.isnan(want).sum() > 0 and not np.isnan(got).any()
    r = compare(got, want)
    assert not r and "NaN became finite" in r.lost_nonfinite


@settings(max_examples=60, deadline=None)
@given(inputs((2, 3, 16, 16), photos=False))
def test_smooth_input_fault_never_fires_on_synthetic_inputs(recipe):
    assert faults.neighbour_correlation(recipe.materialize()) < faults.SMOOTH_CORRELATION


@pytest.mark.parametrize("name", INPUT_PHOTOS)
def test_smooth_input_fault_fires_on_photo_crops(name):
    model = conv_relu()
    fired = 0
    for seed in range(5):
        x = InputRecipe((2, 3, 16, 16), "unit", "photo", seed, 0, name).materialize()
        fired += not compare(run(faults.SmoothInputWrong, model, x)[0], run(ORT, model, x)[0])
    assert fired >= 4
    x = uniform((2, 3, 16, 16))
    np.testing.assert_array_equal(run(faults.SmoothInputWrong, model, x)[0], run(ORT, model, x)[0])


def test_second_run_is_stale_the_first_is_right():
    model = conv_relu()
    x1, x2 = uniform((2, 3, 16, 16), 1), uniform((2, 3, 16, 16), 2)
    first, second = run(faults.SecondRunStale, model, x1, x2)
    np.testing.assert_array_equal(first, run(ORT, model, x1)[0])
    want = run(ORT, model, x2)[0]
    assert not compare(second, want)
    # A fresh session per input (what the suite did before issue 12) never sees it.
    np.testing.assert_array_equal(run(faults.SecondRunStale, model, x2)[0], want)
    # Nor does running the same input twice.
    again = run(faults.SecondRunStale, model, x2, x2)[1]
    np.testing.assert_array_equal(again, want)


def test_static_shape_edge_is_wrong_for_static_exports_only():
    x = uniform((2, 3, 16, 16))
    dynamic, static = conv_relu(), conv_relu(static=True)
    assert not faults.is_static(dynamic) and faults.is_static(static)
    np.testing.assert_array_equal(run(faults.StaticShapeEdge, dynamic, x)[0], run(ORT, dynamic, x)[0])
    got, want = run(faults.StaticShapeEdge, static, x)[0], run(ORT, static, x)[0]
    assert not compare(got, want) and compare(got[..., :-1], want[..., :-1])


def test_perturbed_node_changes_that_node_only():
    model = conv_relu()
    x = uniform((2, 3, 16, 16))
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    backend = faults.perturbed_node(conv, 0.5)
    got, want = run(backend, model, x)[0], run(ORT, model, x)[0]
    assert (got >= want).all() and not compare(got, want)  # ReLU(conv + 0.5) >= ReLU(conv)
    unknown = faults.perturbed_node("no such node")
    np.testing.assert_array_equal(run(unknown, model, x)[0], want)


@pytest.mark.parametrize("width, wrong", [(32, False), (33, True), (48, False), (63, True), (64, False), (70, False)])
def test_mid_width_tail_breaks_the_last_column_of_widths_33_to_63(width, wrong):
    model = conv_relu()
    x = uniform((1, 3, 5, width))
    got, want = run(faults.MidWidthTail, model, x)[0], run(ORT, model, x)[0]
    if not wrong:
        np.testing.assert_array_equal(got, want)
        return
    assert not compare(got, want)
    assert compare(got[..., :-1], want[..., :-1])  # only the last column


@pytest.mark.parametrize("channels, wrong", [(16, False), (17, True), (32, False), (33, True), (64, False)])
def test_channel_tail_breaks_the_last_channel_of_per_channel_operators(channels, wrong):
    bn = export(torch.nn.BatchNorm2d(channels).eval(), (torch.zeros(1, channels, 4, 4),), TS17, dynamic=[(0, 2, 3)])
    x = uniform((2, channels, 4, 4))
    got, want = run(faults.ChannelTail, bn, x)[0], run(ORT, bn, x)[0]
    if not wrong:
        np.testing.assert_array_equal(got, want)
    else:
        assert not compare(got, want) and compare(got[:, :-1], want[:, :-1])
    relu = export(torch.nn.ReLU(), (torch.zeros(1, channels, 4, 4),), TS17, dynamic=[(0, 2, 3)])
    np.testing.assert_array_equal(run(faults.ChannelTail, relu, x)[0], run(ORT, relu, x)[0])  # not per-channel
