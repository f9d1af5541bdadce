"""The ``photo`` input distribution: real photographs, cropped, at pixel and unit scale."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conformance.models.photos import INPUT_PHOTOS, MATPLOTLIB_PHOTOS, photo_crops, planes
from conformance.draw.strategies import InputRecipe


def neighbour_correlation(x: np.ndarray) -> float:
    a, b = x[..., :-1].ravel().astype(np.float64), x[..., 1:].ravel().astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("name", INPUT_PHOTOS)
def test_every_photo_loads_without_network(name):
    stack = planes(name)
    assert stack.dtype == np.uint8 and stack.shape[0] in (1, 4) and min(stack.shape[1:]) >= 256
    assert not stack.flags.writeable  # shared by every draw: nobody may edit it


def test_matplotlib_sample_photo_is_the_real_one():
    from matplotlib import cbook
    from PIL import Image

    rgb = np.asarray(Image.open(cbook.get_sample_data(MATPLOTLIB_PHOTOS["grace_hopper"], asfileobj=False)))
    np.testing.assert_array_equal(planes("grace_hopper")[:3], np.moveaxis(rgb, -1, 0))


def test_channels_one_is_grey_three_is_rgb_more_are_stacked():
    stack = planes("chelsea")
    grey = photo_crops("chelsea", (1, 1, 16, 20), seed=4)[0, 0]
    rgb = photo_crops("chelsea", (1, 3, 16, 20), seed=4)[0]
    # One crop: find the window in the photo and check each channel is the right plane.
    for channels, planes_used in ((grey[None], [3]), (rgb, [0, 1, 2])):
        hits = [(y, x) for y in range(stack.shape[1] - 15) for x in range(stack.shape[2] - 19)
                if np.array_equal(stack[planes_used[0], y:y + 16, x:x + 20], channels[0])]
        assert hits
        y, x = hits[0]
        for ch, p in enumerate(planes_used):
            np.testing.assert_array_equal(channels[ch], stack[p, y:y + 16, x:x + 20])
    many = photo_crops("chelsea", (1, 9, 8, 8), seed=1)[0]
    assert not np.array_equal(many[0], many[4])  # R of the first crop, R of the second crop
    grey_rgb = photo_crops("camera", (1, 3, 8, 8), seed=1)[0]
    assert np.array_equal(grey_rgb[0], grey_rgb[1]) and np.array_equal(grey_rgb[1], grey_rgb[2])


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(INPUT_PHOTOS), st.sampled_from(["unit", "pixel"]), st.integers(1, 3),
       st.sampled_from([1, 3, 4, 16]), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_crops_have_the_drawn_shape_scale_and_replay(name, scale, n, c, h, w, seed):
    recipe = InputRecipe((n, c, h, w), scale, "photo", seed, 0, name)
    x = recipe.materialize()
    assert x.shape == (n, c, h, w) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= (1.0 if scale == "unit" else 255.0)
    if scale == "pixel":
        assert np.array_equal(x, np.round(x))  # 8-bit values, as a decoded photo holds
    np.testing.assert_array_equal(x, recipe.materialize())


def test_crops_larger_than_the_photo_are_mirrored_not_refused():
    x = photo_crops("coins", (1, 1, 700, 20), seed=0)
    assert x.shape == (1, 1, 700, 20) and np.isfinite(x).all()


def test_photos_are_correlated_where_random_inputs_are_not():
    """What makes them a distribution of their own: neighbouring pixels agree."""
    photo = np.mean([neighbour_correlation(InputRecipe((1, 3, 32, 32), "unit", "photo", s, 0, n).materialize())
                     for n in INPUT_PHOTOS for s in range(3)])
    noise = neighbour_correlation(InputRecipe((1, 3, 32, 32), "unit", "uniform", 0, 0).materialize())
    assert photo > 0.6 and abs(noise) < 0.2


def test_unknown_photo_and_too_few_dims_give_one_clear_error():
    with pytest.raises(ValueError, match="no image called 'nope'"):
        photo_crops("nope", (1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="at least 2 dims"):
        photo_crops("chelsea", (4,), 0)
