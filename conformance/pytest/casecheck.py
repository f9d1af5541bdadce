"""What a parity test calls: run a case on a target into the test's record, then pass or fail.

``CaseCheck`` is the ``parity`` fixture: bound to the running test's record, its deadline
(``--case-timeout``), the weight feeds selected (``--feed``) and hypothesis' settings. Drawn
examples and fixed ones (the tutorial's input, the 16-block SRResNet) take the same path
(``conformance.engine.driver.drive``), so both record, time out, fail and leave reproducers alike.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from conformance.engine.messages import error_message, failure_message
from conformance.backends.base import ProgramBackend
from conformance.engine.inflight import Breadcrumb
from conformance.engine.deadline import Deadline
from conformance.engine.driver import Verdict, drive
from conformance.engine.harness import Example, Harness, Outcome, Target
from conformance.engine.record import CaseRecord
from conformance.engine.reproducer import reproducer_dir, write_reproducer
from conformance.draw.frames import check_frames, float64_fits, frame_shape
from conformance.draw.spec import EXPENSIVE_EXPORTERS, Case
from conformance.draw.strategies import (
    WEIGHT_POOL,
    Deployment,
    inputs,
    reused,
    special_inputs,
    weights,
)

# A static export costs one export per drawn shape (TorchScript 6-44 ms; dynamo ~7 s, so never
# there): one example in four is deployed static. Every prepared session runs twice (the second
# run with other values of the same shape), which is what catches state kept between runs.
# One input in four is handed over as a non-contiguous view (free); one example in four then
# runs 3 callers at once on its session, or on two sessions of the model (3 more runs and
# references, one more prepare). Each shrinks towards the plain deployment.
_LAYOUTS = st.sampled_from(["contiguous", "contiguous", "contiguous", "strided"])
_CALLERS = st.sampled_from([(1, 1)] * 6 + [(3, 1), (3, 2)])


def _deployment(static: bool, layout: str, callers: tuple[int, int]) -> Deployment:
    return Deployment(static=static, runs=2, layout=layout, callers=callers[0], sessions=callers[1])


_DEPLOYMENTS = {
    False: st.builds(_deployment, st.sampled_from([False, False, False, True]), _LAYOUTS, _CALLERS),
    True: st.builds(_deployment, st.just(False), _LAYOUTS, _CALLERS),
}


def example_strategy(case: Case, target: Target, *, feeds=("initializers", "inputs"),
                     special_kinds: tuple[str, ...] = (), frames=()) -> st.SearchStrategy[Example]:
    """Examples of ``case`` for ``target``: where an artifact is dear (the dynamo exporter, a
    runtime's own program format) structures, weights (baked into each artifact) and, for
    per-shape runtimes, shapes come from small pools, so the artifacts made stay few; static
    exports (one per drawn shape) only where an export is cheap. ``special_kinds`` draws inputs
    holding those special values (NaN, Inf, ...) instead of ordinary ones. ``frames`` (W, H)
    sizes: every example is a camera frame of one of them (batch 1), run by one caller at a time."""
    program = isinstance(target.backend, ProgramBackend)
    expensive = program or target.export.exporter in EXPENSIVE_EXPORTERS
    pooled_weights = program or (case.bakes_weights and expensive)
    # A runtime that takes weights only as constants (a program) has nothing to feed as inputs.
    feed_choices = ("initializers",) if program else tuple(feeds)

    # Built once per case, and per structure or shape below: hypothesis validates (and walks)
    # each new strategy object on first draw, which cost more than a small example's run.
    structures = case.structure_strategy("dynamo" if expensive else target.export.exporter)
    weight_recipes = st.sampled_from(WEIGHT_POOL) if pooled_weights else weights()
    feeds_drawn = st.sampled_from(feed_choices)
    shapes_for = reused(case.input_shapes)
    inputs_for = reused((lambda shape: special_inputs(shape, kinds=special_kinds)) if special_kinds
                        else (lambda shape: inputs(shape, scales=case.scales)))

    frame_size = st.sampled_from(check_frames(frames)) if frames else st.none()

    @st.composite
    def examples(draw):
        # Drawn first: hypothesis gives the last draws of a long example their simplest value
        # far more often than their share (measured: 29 of 30 plain deployments when drawn last).
        # A frame's size first of all: the shrinker, working from the front, then tries the
        # smallest frame before anything else (a try at 1080p costs ~10 s here, at 640x480 ~1.5 s).
        frame = draw(frame_size)
        deployment = draw(_DEPLOYMENTS[expensive])
        structure = draw(structures)
        if frame:  # alone: three callers at once on a 1080p frame hold ~7 GB here
            deployment = deployment._replace(callers=1, sessions=1)
            shape = frame_shape(case.example_shape(structure)[1], frame)
        elif program and target.backend.per_shape:
            shape = case.example_shape(structure)
        else:
            shape = draw(shapes_for(structure))
        return Example(
            structure=structure,
            weights=draw(weight_recipes),
            inputs=draw(inputs_for(tuple(shape))),
            feed=draw(feeds_drawn),
            deployment=deployment,
        )

    return examples()


def frame_sizes(case: Case, target: Target) -> tuple[tuple[int, int], ...] | str:
    """The case's frames that ``target`` draws, or why none: on this host only (a device moves
    ~75 MB per run over ADB, and the ARM one runs under emulation), never for a runtime exported
    per shape, and only the frames within a program's bounds (ExecuTorch's ``max_side``)."""
    backend = target.backend
    if not case.frames:
        return f"{case.name} draws no frames (too dear: see conformance.draw.model_cases)"
    if target.place != "host":
        return "frames run on this host only (a 1080p output is ~75 MB a run over ADB)"
    if getattr(backend, "per_shape", False):
        return f"{backend.name} converts one artifact per input shape: frames would cost one each"
    top = getattr(backend, "max_side", None)
    sizes = tuple(size for size in case.frames if top is None or max(size) <= top)
    return sizes or f"{backend.name}'s programs take sides up to {top} (planned memory): no frame fits"


def draw_key(nodeid: str, target: Target) -> str:
    """The test id without the runtime's name: every runtime of a (case, format) draws the same
    examples in a run (compared side by side, and one export serves them all)."""
    head, bracket, params = nodeid.partition("[")
    return head + bracket + params.replace(f"{target.backend.name}-", "", 1)


class CaseCheck:
    def __init__(self, harness: Harness, record: CaseRecord, *, case_timeout: float | None,
                 feeds: tuple[str, ...], reproducers: Path | None, qtol_for=None, placement_for=None):
        self.harness, self.record = harness, record
        self.case_timeout, self.feeds, self.reproducers = case_timeout, feeds, reproducers
        self.qtol_for = qtol_for  # (case name, target, nodeid) -> steps an int8 case may be off, or None
        self.placement_for = placement_for  # record row -> its expected-placement entry, or None

    @property
    def nodeid(self) -> str:
        return self.record.nodeid

    def drawn(self, case: Case, target: Target, *, max_examples: int | None = None,
              special_kinds: tuple[str, ...] = (), frames=()) -> Outcome | None:
        """Hypothesis-drawn examples of ``case`` on ``target`` (inputs holding ``special_kinds``
        when given; camera frames of the (W, H) sizes ``frames`` when given); fails the test on a
        mismatch or an error."""
        __tracebackhide__ = True
        strategy = example_strategy(case, target, feeds=self.feeds, special_kinds=special_kinds, frames=frames)
        return self._check(case, target, strategy, max_examples or settings.default.max_examples)

    def example(self, case: Case, target: Target, example: Example) -> Outcome | None:
        """One fixed example of ``case`` on ``target``."""
        __tracebackhide__ = True
        return self._check(case, target, st.just(example), 1)

    def quantized(self, case: Case, target: Target, *, max_examples: int, pooled: bool,
                  recipes=None) -> Outcome | None:
        """Hypothesis-drawn int8 examples of ``case`` on ``target`` (``conformance.engine.qharness``),
        judged in quantization steps; ``pooled`` draws structures, weights and recipes from pools;
        ``recipes`` replaces the drawn quantization recipes (a registered module's calibration)."""
        __tracebackhide__ = True
        from conformance.draw.quantization import quant_examples
        from conformance.engine.qharness import QuantHarness

        found = self.qtol_for(case.name, target, self.nodeid) if self.qtol_for else None
        qtol, runner = found or 1, QuantHarness(self.harness)

        def run_one(example, shrinking: bool, deadline: Deadline) -> Outcome:
            # Each example is quantized at its own shape: where that is cheap (quantize_static,
            # ~50 ms) shrinking may quantize, so a failure shrinks to a small model.
            return runner.run(case, target, example, qtol=qtol, deadline=deadline,
                              allow_export=not shrinking or not pooled)

        strategy = quant_examples(case, pooled=pooled, recipes=recipes)
        return self._check(case, target, strategy, max_examples, run_one=run_one)

    def _check(self, case: Case, target: Target, strategy, max_examples: int, *, run_one=None) -> Outcome | None:
        __tracebackhide__ = True
        decimal = self.harness.decimal_of(case, target, self.nodeid)
        deadline = Deadline(self.case_timeout)  # one budget for the whole case

        breadcrumb = Breadcrumb(self.reproducers.parent if self.reproducers else None, self.nodeid)

        def run(example: Example, shrinking: bool) -> Outcome:
            breadcrumb.note(f"{'shrinking' if shrinking else 'drawn'} example: {example!r}")
            if run_one is not None:
                return run_one(example, shrinking, deadline)
            return self.harness.run(case, target, example, decimal=decimal, deadline=deadline,
                                    allow_export=not shrinking)

        host_diff = getattr(target.backend, "pop_host_diff", None)  # devices: what ARM changes
        if host_diff is not None:
            host_diff()  # forget what earlier cases saw
        key = draw_key(self.nodeid, target)
        fixed = settings.default.derandomize  # derandomized: the same draws in every run
        try:
            with deadline.watched():  # one GIL watchdog for the examples' calls, not one per call
                verdict = drive(self.record, strategy, run, max_examples=max_examples, key=key,
                                database=settings.default.database, derandomize=fixed,
                                seed=zlib.crc32(key.encode()) ^ (0 if fixed else self.harness.draw_seed()))
        finally:
            breadcrumb.clear()
        if host_diff is not None:
            found = host_diff()
            self.record.host_diff = None if found is None else found.to_dict()
        try:
            return self.finish(verdict)
        finally:
            self.harness.release_sessions()

    def finish(self, verdict: Verdict) -> Outcome | None:
        """Fill the record from the verdict; skip or fail the test with its one-screen message."""
        __tracebackhide__ = True
        record = self.record
        if verdict.skipped:
            record.reason = verdict.skipped
            pytest.skip(verdict.skipped)
        self._note_placement(verdict.failure or verdict.closest)
        misplaced = self._judge_placement(verdict.failure or verdict.closest)
        if verdict.failure is not None:
            outcome = verdict.failure
            record.worst = outcome.result
            record.example = repr(outcome.example)
            record.reproducer = self._reproducer(outcome.model, outcome.fed_inputs, outcome.expected)
            outcome.reproducer = record.reproducer or None
            record.summary = outcome.result.summary()
            diagnosis = self._diagnose(outcome)
            where = self._localize(outcome, diagnosis)
            record.message = failure_message(outcome, self.nodeid, localization=where, diagnosis=diagnosis)
            if misplaced:
                record.message += f"\n  also: {misplaced}"
        elif verdict.error is not None:
            self._note_error(verdict)
        elif record.examples == 0 and record.left_out:  # the runtime took none of the examples
            record.reason = f"unsupported by the runtime: {verdict.left_out_note}"
            pytest.skip(record.reason)
        elif not misplaced:
            return verdict.closest
        pytest.fail(record.message, pytrace=False)

    def _note_placement(self, outcome: Outcome | None) -> None:
        """Where the runtime ran each node of the reported outcome (ONNX Runtime: the execution
        provider; ExecuTorch, LiteRT: the delegate or the fallback kernels; OpenVINO: the
        precision per node), when its session says."""
        from conformance.engine.placement import tally

        placement = getattr(outcome, "placement", None)
        if placement is None:
            return
        try:
            nodes = placement()
        except Exception as exc:  # a record of where ops ran must never hide the verdict
            self.record.placement = {"error": f"{type(exc).__name__}: {exc}"}
            return
        if nodes:
            self.record.placement = {"counts": tally(nodes), "nodes": nodes}

    def _judge_placement(self, outcome: Outcome | None) -> str:
        """Hold the placement against the case's expected placement, if one is given: the
        headline of a miss ("" when none), the pass's message and summary filled in."""
        from conformance.engine import placement as judged

        record = self.record
        row = {"case": record.case, "backend": record.backend, "exporter": record.exporter,
               "opset": record.opset, "nodeid": record.nodeid}
        entry = self.placement_for(row) if self.placement_for is not None and outcome is not None else None
        if entry is None:
            return ""
        noted = record.placement or {}
        expected = judged.judge(noted.get("nodes"), entry.on, entry.source(), error=noted.get("error", ""))
        record.placement = {**noted, "expected": expected}
        if not judged.violated(expected):
            return ""
        total = len(noted.get("nodes") or {})
        label = f"{record.case} on {record.backend} ({record.exporter}" + (
            f" exporter, opset {record.opset})" if record.opset else " format)")
        record.message = judged.message(label, expected, total, outcome.result.summary())
        record.summary = judged.headline(expected, total)
        return record.summary

    def _diagnose(self, outcome: Outcome):
        """The failure rerun under controlled variations (``conformance.engine.diagnosis``); its
        cause also ends the record's summary. None when the diagnosis itself could not run."""
        from conformance.engine.diagnosis import diagnose

        try:
            found = diagnose(self.harness, outcome, deadline=Deadline(self.case_timeout))
        except Exception as exc:  # a diagnosis must never hide the verdict it explains
            self.record.diagnosis = {"error": f"{type(exc).__name__}: {exc}"}
            return None
        self.record.diagnosis = found.as_record()
        if found.cause:
            self.record.summary += f"; cause: {found.cause}"
        return found

    def _localize(self, outcome: Outcome, diagnosis=None) -> str:
        """For a failing model case: which layer went wrong first (one line), with the per-layer
        profile kept in the record and plotted beside the reproducer. ONNX runtimes are read at
        every intermediate; program runtimes (ExecuTorch, LiteRT, plug-ins) run each layer alone."""
        program = isinstance(outcome.target.backend, ProgramBackend)
        if getattr(outcome, "quantized", None) is not None:  # layers of a QDQ graph are not torch's modules
            return ""
        if outcome.case.kind != "model" or (outcome.model is None and not program):
            return ""
        if not float64_fits(outcome.example.inputs.shape):
            return "not localized: an image past 641x480 pixels (its layers' float64 values would not fit in memory here)"
        from conformance.localize.onnx_graph import plot_profile

        try:
            wrap = None
            if diagnosis is not None and (diagnosis.warmup or diagnosis.layout != "contiguous"):
                from conformance.engine.diagnosis import UnderVariation

                wrap = lambda session: UnderVariation(session, diagnosis)  # noqa: E731
            found = self.harness.localize(outcome, deadline=Deadline(self.case_timeout), wrap=wrap)
        except Exception as exc:  # localizing is a diagnosis: its failure must not hide the verdict
            self.record.localization = {"error": f"{type(exc).__name__}: {exc}"}
            return f"localization failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        line = found.describe()
        plot = ""
        if self.record.reproducer and not self.record.reproducer.startswith("("):
            plot = plot_profile(found, Path(self.record.reproducer) / "layer_errors.png",
                                title=f"{outcome.case.name} on {outcome.target.id}")
        self.record.localization = found.as_record(plot)
        return line

    def _note_error(self, verdict: Verdict) -> None:
        record, exc = self.record, verdict.error
        cause = getattr(exc, "error", exc)  # an ExampleError wraps the runtime's or exporter's error
        record.error_type = getattr(cause, "error_type", type(cause).__name__)
        record.error = getattr(cause, "detail", None) or str(cause)
        record.example = "" if verdict.error_example is None else repr(verdict.error_example)
        model = getattr(exc, "model", None)
        if model is not None:
            record.reproducer = self._reproducer(model, exc.inputs, exc.expected)
        record.message = error_message(record, cause)
        # "TYPE: the runtime's line" (the summary line already names the case and the target)
        record.summary = record.message.splitlines()[0].split("): ", 1)[-1]

    def _reproducer(self, model, inputs, expected) -> str:
        if model is None or self.reproducers is None:
            return ""
        try:
            return str(write_reproducer(reproducer_dir(self.reproducers, self.nodeid), model, inputs, expected))
        except (OSError, ValueError) as exc:  # a >2 GB model cannot be saved inline; say so, go on
            return f"(not written: {exc})"
