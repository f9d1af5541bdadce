"""The diagnosis names each seeded fault by its own cause, and a correct runtime gives none.

Each fault of ``conformance.testing.faults`` breaks one thing (state after a few runs, strides
of non-contiguous inputs, writes into inputs, more than one thread, graph optimizations, runs
that overlap, an exporter writing the wrong op); an example in the deployment that exposes it
fails, and ``diagnose`` must give that fault's cause and no other. ONNX Runtime, run through the
same deployments and every variation it offers, must pass them all.
"""

from __future__ import annotations

import numpy as np
import pytest

from conformance.backends.onnx_api import OnnxApiBackend
from conformance.backends.onnxrt import OnnxRuntimeBackend
from conformance.backends.ortformat import OrtFormatBackend
from conformance.draw.model_cases import SUPERRES
from conformance.draw.operators import CONV2D, CONV_POOL
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe, strided_view
from conformance.engine.diagnosis import CAUSES, UnderVariation, diagnose
from conformance.engine.compare import compare
from conformance.engine.harness import Example, Harness, Target, torch_run
from conformance.formats.onnx_export import ExportTarget
from conformance.testing import faults

TS17 = ExportTarget("torchscript", 17)
CONV2D_STRUCTURE = CONV_POOL[2]  # grouped, 4 channels in: a channels-last view is no NCHW one
WEIGHTS = WeightRecipe("pytorch-default", 0.0, 3)


def fault(name: str) -> OnnxApiBackend:
    return OnnxApiBackend(f"conformance.testing.faults:{name}")


def superres(deployment: Deployment, feed: str = "initializers", shape=(1, 1, 8, 8)) -> Example:
    return Example(2, WEIGHTS, InputRecipe(shape, "unit", "normal", 11, 0), feed, deployment)


def cause_of(backend, example: Example, case=SUPERRES):
    harness = Harness()
    outcome = harness.run(case, Target(backend, TS17), example)
    assert not outcome.result, "the seeded fault must fail this example"
    return outcome, diagnose(harness, outcome)


def kind(cause_text: str) -> str:
    return cause_text.split(" (")[0]


@pytest.mark.parametrize("name, deployment, expected", [
    ("StateAfterRuns", Deployment(False, 3), "state"),
    ("SecondRunStale", Deployment(False, 2), "state"),
    ("IgnoresStrides", Deployment(False, 1, layout="strided"), "layout"),
    ("WritesIntoInputs", Deployment(False, 1), "writes"),
    ("WrongWithThreads", Deployment(False, 1), "one-thread"),
    ("WrongWhenOptimized", Deployment(False, 1), "no-graph-optimizations"),
    ("SharedScratch", Deployment(False, 1, callers=3, sessions=2), "overlap"),
])
def test_each_seeded_fault_is_named_by_its_cause(name, deployment, expected):
    shape = (1, 4, 8, 8) if name == "IgnoresStrides" else (1, 1, 8, 8)  # one channel: NHWC is NCHW
    case = CONV2D if name == "IgnoresStrides" else SUPERRES
    example = superres(deployment, shape=shape) if case is SUPERRES else Example(
        CONV2D_STRUCTURE, WEIGHTS, InputRecipe(shape, "unit", "normal", 11, 0), "initializers", deployment)
    outcome, found = cause_of(fault(name), example, case)
    assert found.kind == expected, found.lines()
    assert found.cause.startswith(CAUSES[expected].split(" (")[0].split("{")[0]), found.cause
    changed = [t.variation for t in found.trials if t.changes]
    if expected not in ("writes",):
        assert changed, found.lines()  # the cause rests on a variation that passed


def test_writes_into_inputs_fails_even_where_the_outputs_are_right():
    harness = Harness()
    outcome = harness.run(SUPERRES, Target(fault("WritesIntoInputs"), TS17), superres(Deployment(False, 2)))
    assert not outcome.result and outcome.wrote_inputs == (0,)
    np.testing.assert_allclose(outcome.actual[0], outcome.expected[0], atol=1e-4)  # outputs right
    # the reproducer keeps the input as it was before the run, not what the runtime left there
    x = superres(Deployment(False, 2)).deployment.inputs(superres(Deployment(False, 2)).inputs)[outcome.run_index]
    np.testing.assert_array_equal(outcome.fed_inputs[0], x.materialize())


def test_the_exporter_is_named_when_the_file_itself_is_wrong():
    case = faults.exporter_fault_case()  # the file wrong, torch and the runtime right
    example = Example((), WEIGHTS, InputRecipe((1, 2, 8, 8), "unit", "normal", 5, 0), "initializers",
                      Deployment(False, 1))
    outcome, found = cause_of(OnnxRuntimeBackend(), example, case)
    assert found.kind == "exporter", found.lines()
    assert found.cause == "the exporter (onnx's reference evaluator on this file gives the runtime's numbers)"


def test_a_runtime_kernel_is_named_when_the_reference_evaluator_clears_the_file():
    outcome, found = cause_of(fault("OffBy2e3"), superres(Deployment(False, 1)))
    assert found.kind == "kernel" and not any(t.changes for t in found.trials), found.lines()


@pytest.mark.parametrize("runtime", [OnnxRuntimeBackend(), OrtFormatBackend()], ids=["onnxruntime", "ort-format"])
@pytest.mark.parametrize("deployment", [
    Deployment(False, 3), Deployment(True, 2, layout="strided"), Deployment(False, 2, callers=3),
    Deployment(False, 2, layout="strided", callers=3, sessions=2)])
@pytest.mark.parametrize("feed", ["initializers", "inputs"])
def test_a_correct_runtime_passes_every_deployment_and_every_variation(runtime, deployment, feed):
    backend = runtime
    harness = Harness()
    example = superres(deployment, feed)
    outcome = harness.run(SUPERRES, Target(backend, TS17), example)
    assert outcome.result and not outcome.wrote_inputs
    x = example.inputs.materialize()
    want = torch_run(harness.module_for(SUPERRES, example.structure), [x])[0]
    for variant in [None, *backend.variants().values()]:  # each variation of the runtime passes too
        session, arrays_for = harness.fresh_session(outcome, variant)
        arrays = deployment.lay_out(arrays_for(x))
        got = session.run(arrays)
        assert compare(np.asarray(got[0]), want), variant
        np.testing.assert_array_equal(arrays[0], x)  # and leaves its inputs alone


def test_strided_layout_is_a_non_contiguous_view_of_the_same_values():
    for shape in [(2, 3, 5, 7), (1, 1, 4, 4), (3, 5)]:
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        view = strided_view(x)
        np.testing.assert_array_equal(view, x)
        assert not view.flags.c_contiguous


def test_localization_runs_under_the_failing_variation():
    """A state fault localized in fresh sessions finds nothing; replaying the runs before (the
    diagnosis' failing condition) brings the failure back, at the model's first layer."""
    harness = Harness()
    outcome, found = cause_of(fault("StateAfterRuns"), superres(Deployment(False, 3)))
    assert found.kind == "state" and found.warmup
    plain = harness.localize(outcome)
    under = harness.localize(outcome, wrap=lambda session: UnderVariation(session, found))
    assert plain, plain.describe()  # each layer right in a fresh session
    assert not under and under.first_over is not None, under.describe()


def test_callers_really_run_at_once():
    """Each call waits for the other two inside ``run``: only overlapping calls can all return."""
    import threading

    from conformance.engine.overlap import run_at_once

    inside = threading.Barrier(3, timeout=20)

    class Session:
        def run(self, feed):
            inside.wait()
            return [feed[0] * 2]

    feeds = [[np.full(2, i, np.float32)] for i in range(3)]
    outputs = run_at_once(lambda s, feed: s.run(feed), [Session()], feeds)
    assert [o[0][0] for o in outputs] == [0, 2, 4]


def test_a_write_into_an_input_is_seen_to_the_bit():
    from conformance.engine.overlap import snapshot, written

    arrays = [np.array([np.nan, 0.0, 1.0], np.float32), strided_view(np.ones((2, 3, 4, 5), np.float32))]
    kept = snapshot(arrays)
    assert written(arrays, kept) == []
    arrays[0][1] = -0.0  # equal as a number, another bit pattern
    arrays[1][0, 2, 3, 4] = 2.0
    assert written(arrays, kept) == [0, 1]
