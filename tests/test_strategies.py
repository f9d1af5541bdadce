"""The strategies make what they promise: valid shapes, realistic scales, exact zeros."""

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from conformance.ops import CONV2D, conv_structures
from conformance.strategies import MAX_INPUT_ELEMENTS, InputRecipe, WeightRecipe, inputs, shapes, weights


@given(shapes(channels=3, min_side=5))
def test_shapes_are_nchw_within_bounds(shape):
    n, c, h, w = shape
    assert 1 <= n <= 4 and c == 3 and h >= 5 and w >= 5
    assert n * c * h * w <= MAX_INPUT_ELEMENTS


@settings(max_examples=30)
@given(st.data())
def test_conv_structures_accept_their_drawn_shapes(data):
    s = data.draw(conv_structures())
    shape = data.draw(CONV2D.input_shapes(s))
    out = CONV2D.build(s)(torch.zeros(shape))
    assert out.shape[0] == shape[0] and min(out.shape[2:]) >= 1


@given(inputs((2, 3, 9, 9)))
def test_inputs_are_reproducible_float32_at_their_scale(recipe):
    x = recipe.materialize()
    assert x.dtype == np.float32 and x.shape == (2, 3, 9, 9)
    np.testing.assert_array_equal(x, recipe.materialize())
    bound = 1.0 if recipe.scale == "unit" and recipe.distribution == "uniform" else 255.0
    if recipe.distribution != "normal":
        assert x.min() >= 0 and x.max() <= bound


def test_pixel_integers_look_like_8bit_images():
    x = InputRecipe((1, 1, 64, 64), "pixel", "integers", 3, 0).materialize()
    assert np.array_equal(x, np.round(x)) and x.max() > 200


def test_orthogonal_weights_match_the_models_init_scale():
    conv = torch.nn.Conv2d(64, 32, 3)
    w = WeightRecipe("orthogonal-relu", 0.0, 1).materialize(conv)["weight"].reshape(32, -1)
    np.testing.assert_allclose(w @ w.T, 2.0 * np.eye(32), atol=1e-4)  # rows orthogonal, gain^2 = 2


def test_zero_fraction_gives_exact_zeros_and_negatives():
    w = WeightRecipe("pytorch-default", 0.3, 5).materialize(torch.nn.Conv2d(8, 8, 3))["weight"]
    assert 0.2 < np.mean(w == 0) < 0.4 and (w < 0).any()
    assert not WeightRecipe("pytorch-default", 1.0, 5).materialize(torch.nn.Conv2d(2, 2, 1))["weight"].any()


def test_batchnorm_statistics_are_valid():
    stats = WeightRecipe("pytorch-default", 0.0, 0).materialize(torch.nn.BatchNorm2d(4))
    assert (stats["running_var"] > 0).all() and "num_batches_tracked" not in stats


def test_weight_recipes_reach_both_inits_and_all_zero():
    from hypothesis import find

    for init in ("pytorch-default", "orthogonal-relu"):
        assert find(weights(), lambda r, init=init: r.init == init).init == init
    assert find(weights(), lambda r: r.zero_fraction == 1.0).zero_fraction == 1.0
