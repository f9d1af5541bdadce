"""Localization judges each layer against the float64 oracle, net of float32 rounding: a Conv
whose float32 sums differ between two correct implementations is not a diverging layer, and a
seeded 2e-3 offset on a layer of unit magnitude still is."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from conformance.backends.onnxrt import OnnxRuntimeBackend
from conformance.localize.onnx_graph import localize
from conformance.localize.subgraphs import reference_prepare
from conformance.testing import faults


@pytest.fixture(scope="module")
def two_convs():
    """A 2,304-long Conv over inputs up to 100 (outputs ~5e4: one float32 ULP there is 4e-3),
    then a 1x1 Conv scaling back to unit magnitude."""
    rng = np.random.default_rng(0)
    big = numpy_helper.from_array(rng.uniform(-1, 1, (64, 256, 3, 3)).astype(np.float32), "W")
    small = numpy_helper.from_array((rng.uniform(-1, 1, (8, 64, 1, 1)) / 1e4).astype(np.float32), "W2")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["h"], pads=[1, 1, 1, 1], name="big"),
         helper.make_node("Conv", ["h", "W2"], ["y"], name="small")], "g",
        [helper.make_tensor_value_info("x", 1, [1, 256, 8, 8])], [helper.make_tensor_value_info("y", 1, [1, 8, 8, 8])],
        [big, small])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, rng.uniform(0, 100, (1, 256, 8, 8)).astype(np.float32)


def test_float32_summation_order_is_not_a_diverging_layer(two_convs):
    model, x = two_convs
    ort = OnnxRuntimeBackend().prepare
    # Against a second float32 implementation (onnx's evaluator), as before: ORT's Conv "diverges".
    before = localize(model, [x], ort, reference=reference_prepare, oracle=None)
    assert before.first_diverging is not None and before.first_diverging.node == "big"
    after = localize(model, [x], ort, reference=reference_prepare)
    assert after.first_diverging is None, after.describe()
    big = after.layers[0]
    assert big.isolated < big.explained  # off from float64 by less than rounding explains


def test_a_seeded_offset_on_a_unit_layer_is_still_found(two_convs):
    model, x = two_convs
    found = localize(model, [x], faults.perturbed_node("small", 2e-3).prepare, reference=reference_prepare)
    assert found.first_diverging is not None and found.first_diverging.node == "small"
    assert "max abs error 0.002 alone" in found.describe() and "float32 rounding explains" in found.describe()
