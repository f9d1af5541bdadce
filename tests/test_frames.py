"""Production-size frames: which examples draw one, which targets take them, how a failure at a
frame reads, and the seeded fault that only a frame reaches."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from conformance.backends.base import ProgramBackend
from conformance.backends.onnxrt import OnnxRuntimeBackend
from conformance.draw.frames import FRAMES, check_frames, describe_frame, float64_fits, frame_of
from conformance.draw.model_cases import SRRESNET, SUPERRES
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe
from conformance.engine.compare import compare
from conformance.engine.harness import Example, Outcome, Target
from conformance.engine.messages import failure_message
from conformance.formats.onnx_export import ExportTarget, ProgramFormat, export
from conformance.pytest.casecheck import example_strategy, frame_sizes
from conformance.testing import faults

TS17 = ExportTarget("torchscript", 17)
ORT = OnnxRuntimeBackend()


def test_frames_must_be_listed_ones():
    assert check_frames([(640, 480)]) == ((640, 480),)
    for bad in ([(100, 100)], []):
        with pytest.raises(ValueError, match="subset"):
            check_frames(bad)
    with pytest.raises(ValueError, match="subset"):
        example_strategy(SUPERRES, Target(ORT, TS17), frames=[(100, 100)])


def test_frame_of_names_only_frames():
    assert frame_of((1, 1, 1079, 1921)) == (1921, 1079)
    assert frame_of((2, 1, 1079, 1921)) is None  # a batch of frames is no camera frame
    assert frame_of((1, 1, 96, 96)) is None
    assert describe_frame((1, 3, 480, 640)) == " (a 640x480 frame)"
    assert describe_frame((1, 3, 96, 96)) == ""
    assert float64_fits((1, 1, 479, 641)) and float64_fits((4, 1, 96, 96))
    assert not float64_fits((1, 1, 720, 1280)) and not float64_fits((1, 3, 1000, 1000))


class _Program(ProgramBackend):
    """A program runtime as the frame rule sees it (ExecuTorch's bounds, or LiteRT's per shape)."""

    def __init__(self, *, max_side=None, per_shape=False, place="host"):
        self.name, self.max_side, self.per_shape, self.place = "program", max_side, per_shape, place


PTE = ProgramFormat("pte")


def test_frame_sizes_on_a_host_runtime_within_its_bounds():
    assert frame_sizes(SUPERRES, Target(ORT, TS17)) == FRAMES
    assert "draws no frames" in frame_sizes(SRRESNET, Target(ORT, TS17))  # too dear: see model_cases
    assert "this host only" in frame_sizes(SUPERRES, Target(_Program(place="adb:emulator-5554"), PTE))
    assert "up to 256" in frame_sizes(SUPERRES, Target(_Program(max_side=256), PTE))  # ExecuTorch's default
    assert frame_sizes(SUPERRES, Target(_Program(max_side=1280), PTE)) == FRAMES[:4]
    assert frame_sizes(SUPERRES, Target(_Program(), PTE)) == FRAMES
    assert "per input shape" in frame_sizes(SUPERRES, Target(_Program(per_shape=True), PTE))  # LiteRT


def _draw_many(strategy, n=300):
    drawn = []

    @settings(max_examples=n, deadline=None, database=None)
    @given(strategy)
    def collect(example):
        drawn.append(example)

    collect()
    return drawn


def test_with_frames_every_example_is_a_frame_run_alone():
    drawn = _draw_many(example_strategy(SUPERRES, Target(ORT, TS17), frames=FRAMES), 100)
    assert all(frame_of(ex.inputs.shape) for ex in drawn)
    assert {frame_of(ex.inputs.shape) for ex in drawn} == set(FRAMES)
    assert all(ex.deployment.callers == 1 for ex in drawn)
    assert {ex.inputs.shape[1] for ex in drawn} == {1}  # the case's own channels


def test_without_frames_the_draws_are_as_before():
    drawn = _draw_many(example_strategy(SUPERRES, Target(ORT, TS17)), 100)
    assert max(ex.inputs.shape[2] * ex.inputs.shape[3] for ex in drawn) <= 96 * 96
    assert any(ex.deployment.callers > 1 for ex in drawn)


@pytest.mark.parametrize("profile, expected", [("ci", 2), ("dev", 2), ("thorough", 20), ("device", 1)])
def test_frame_examples_per_profile(profile, expected):
    from conformance.draw import profiles

    before = settings.get_current_profile_name()
    profiles.register()
    settings.load_profile(profile)
    try:
        assert profiles.frame_examples() == expected
    finally:
        settings.load_profile(before)


def _failing_outcome(shape):
    example = Example(3, WeightRecipe("orthogonal-relu", 0.0, 0), InputRecipe(shape, "pixel", "integers", 0, 0),
                      "initializers", Deployment(static=False, runs=2))
    out_shape = (1, 1, 3 * shape[2], 3 * shape[3])
    expected = np.zeros(out_shape, np.float32)
    actual = expected.copy()
    actual[..., -1] += np.float32(1e-2)
    return Outcome(SUPERRES, Target(ORT, TS17), example, compare(actual, expected), None, [expected], [actual])


@pytest.mark.parametrize("shape, named, oracle_note", [
    ((1, 1, 1079, 1921), "input (1, 1, 1079, 1921) (a 1921x1079 frame)", True),
    ((1, 1, 479, 641), "input (1, 1, 479, 641) (a 641x479 frame)", False),
    ((1, 1, 13, 17), "input (1, 1, 13, 17) at", False),
])
def test_a_failure_at_a_frame_names_it(shape, named, oracle_note):
    message = failure_message(_failing_outcome(shape), "cases/test_models.py::test_model[x]")
    assert named in message
    assert ("float64 oracle: not run on an image past 641x480 pixels" in message) == oracle_note


def _conv_relu():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU()).eval()
    return export(module, (torch.zeros(1, 1, 16, 16),), TS17, dynamic=[(0, 2, 3)])


@pytest.mark.parametrize("h, w", [(224, 224), (96, 96), (256, 256)])
def test_large_frame_edge_is_right_up_to_256x256(h, w):
    model, x = _conv_relu(), InputRecipe((1, 1, h, w), "unit", "uniform", 0, 0).materialize()
    np.testing.assert_array_equal(faults.LargeFrameEdge.prepare(model).run([x])[0], ORT.prepare(model).run([x])[0])


def test_large_frame_edge_breaks_the_last_column_past_256x256():
    model, x = _conv_relu(), InputRecipe((1, 1, 257, 256), "unit", "uniform", 0, 0).materialize()
    got, want = faults.LargeFrameEdge.prepare(model).run([x])[0], ORT.prepare(model).run([x])[0]
    assert not compare(got, want)
    assert compare(got[..., :-1], want[..., :-1]) and not compare(got[..., -1], want[..., -1])
