"""Why a case failed: its shrunk example rerun under controlled variations.

A failure message says which runtime is off, by how much and where; the diagnosis says why.
Each variation is a hypothesis about the cause, tested by rerunning the failing input with one
thing changed and comparing with the same PyTorch reference:

* the inputs compared before and after every run (done by the harness on every run, passing or
  not): a runtime that writes into its caller's memory fails on that alone;
* runs that overlapped: the same inputs one at a time;
* a fresh session, the failing input alone: state carried between runs of one session;
* contiguous private copies of the inputs: a runtime that misreads strided or shared memory;
* the runtime's own variants (``Backend.variants()``): one thread, graph optimizations off,
  the delegate off, the same runtime on this host instead of a device;
* onnx's reference evaluator on the very file the runtime ran: the exporter or the runtime.

The variations that change the verdict give the ``cause:`` line; a failure no variation
explains gets none, only the trials. ``UnderVariation`` replays the failing condition (the runs
before, the memory layout) for the layer localization, so it finds the layer where there is one.
Nothing here runs on a passing case.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from conformance.backends.base import VARIANTS, Backend, ProgramBackend, first_meaningful_line
from conformance.draw.frames import float64_fits
from conformance.draw.strategies import Deployment
from conformance.engine.compare import compare
from conformance.engine.deadline import Deadline
from conformance.engine.harness import Harness, Outcome, compare_outputs, run_session
from conformance.engine.overlap import snapshot, written

#: Runs of one fresh session on the failing input before a state fault is called unreproduced.
MAX_RUNS = 8
#: Seconds onnx's reference evaluator may take (it is numpy, written from the operator specs).
REFERENCE_BUDGET_S = 120.0

CAUSES = {
    "writes": "the runtime writes into its caller's input memory ({detail})",
    "overlap": "runs that overlap in time (the same inputs run one at a time pass)",
    "state": "state carried between runs of one session (a fresh session passes{detail})",
    "layout": "the inputs' memory layout: the runtime misreads non-contiguous or shared input memory "
              "(contiguous private copies pass)",
    "host": "the device (the same runtime on this host passes)",
    "one-thread": "running on several threads (one thread passes: a race or a split of the work)",
    "no-graph-optimizations": "a graph rewrite, not a kernel (the same runtime with graph optimizations off"
                              "{detail} passes)",
    "no-delegate": "the delegate (the runtime's own kernels pass)",
    "exporter": "the exporter (onnx's reference evaluator on this file {detail})",
    "kernel": "the runtime's kernels (no variation changes the verdict; onnx's reference evaluator on this "
              "file matches torch)",
}


@dataclass
class Trial:
    """One variation rerun: what changed, its verdict ("passes", "fails", "error" or "not run"), the detail."""

    variation: str
    verdict: str
    detail: str = ""
    changes: bool = False  # True where the verdict differs from the failure's (a pass)
    seconds: float = 0.0

    def line(self) -> str:
        mark = "  <- changes the verdict" if self.changes else ""
        return f"{self.variation}: {self.verdict}{f' ({self.detail})' if self.detail else ''}{mark}"


@dataclass
class Diagnosis:
    """The trials run on one failure, the cause they point to ("" when none does), and the
    failing condition for the localization: the inputs run before in one session, the layout."""

    trials: list[Trial] = field(default_factory=list)
    cause: str = ""
    kind: str = ""  # a key of CAUSES
    layout: str = "contiguous"
    warmup: list = field(default_factory=list)  # data inputs run first in the session (state)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        head = f"diagnosis ({len(self.trials)} rerun{'s' if len(self.trials) != 1 else ''}, {self.seconds:.2f} s):"
        return [head] + [f"  {t.line()}" for t in self.trials]

    def as_record(self) -> dict:
        data = asdict(self)
        data["warmup"] = len(self.warmup)
        return data


class UnderVariation:
    """A session run as the failing one was: ``warmup`` data inputs first, then the input in the
    failing ``layout`` (what the layer localization prepares, so a state or layout fault shows
    there too)."""

    def __init__(self, session, diagnosis: Diagnosis):
        self.session, self.warmup = session, diagnosis.warmup
        self.deployment = Deployment(False, 1, layout=diagnosis.layout)

    def run(self, arrays):
        arrays = list(arrays)
        for x in self.warmup:
            # The runs before, on their own inputs where this model takes the data input (the
            # whole model, marked), else on these inputs again (one layer alone).
            first = [x] if arrays and np.shape(arrays[0]) == np.shape(x) else arrays[:1]
            self.session.run(self.deployment.lay_out(first + arrays[1:]))
        return self.session.run(self.deployment.lay_out(arrays))


class _Probe:
    """Reruns of one failing outcome, each in a session of its own."""

    def __init__(self, harness: Harness, outcome: Outcome, deadline: Deadline | None):
        self.harness, self.outcome, self.deadline = harness, outcome, deadline
        self.backend: Backend = outcome.target.backend
        self.decimal = outcome.result.decimal
        deployment = outcome.example.deployment
        self.deployment = deployment
        in_turn = deployment.inputs(outcome.example.inputs)
        if outcome.run_index < len(in_turn):
            self.x, self.history = in_turn[outcome.run_index].materialize(), [r.materialize() for r in
                                                                             in_turn[:outcome.run_index]]
        else:  # a caller of the overlapped runs
            overlapped = deployment.overlap_inputs(outcome.example.inputs)
            self.x, self.history = overlapped[outcome.run_index - len(in_turn)].materialize(), []
        self.expected = outcome.expected

    def session(self, backend: Backend | None = None):
        return self.harness.fresh_session(self.outcome, backend, self.deadline)

    def run(self, prepared, x, *, layout: str | None = None, backend: Backend | None = None):
        """(passes, max abs error) of one run of ``x`` on ``prepared`` against the reference."""
        session, arrays_for = prepared
        arrays = Deployment(False, 1, layout=layout or self.deployment.layout).lay_out(arrays_for(x))
        kept = snapshot(arrays)
        actual = run_session(backend or self.backend, session, arrays, self.deadline)
        return actual, (not written(arrays, kept)), kept

    def judge(self, actual, expected) -> tuple[bool, str]:
        index, results = compare_outputs(actual, expected, self.decimal)
        result = results[index]
        return bool(result), f"max abs error {result.max_abs:.3g}"

    def trial(self, variation: str, fn) -> Trial:
        """``fn() -> (passes, detail)`` as a trial; a runtime error is the trial's verdict."""
        start = time.perf_counter()
        try:
            passes, detail = fn()
        except Exception as exc:  # a variant the runtime refuses tells nothing: say so
            return Trial(variation, "error", first_meaningful_line(str(exc))[:160],
                         seconds=time.perf_counter() - start)
        return Trial(variation, "passes" if passes else "fails", detail, changes=passes,
                     seconds=time.perf_counter() - start)

    def alone(self, backend: Backend | None = None, *, layout: str | None = None, copies: bool = False):
        """The failing input alone in a fresh session (of ``backend``), as laid out, or as
        contiguous private copies."""
        prepared = self.session(backend)
        x = np.array(self.x, copy=True, order="C") if copies else self.x
        actual, intact, _ = self.run(prepared, x, layout="contiguous" if copies else layout, backend=backend)
        passes, detail = self.judge(actual, self.expected)
        return passes and intact, detail if intact else f"{detail}; wrote into its inputs"


def diagnose(harness: Harness, outcome: Outcome, *, deadline: Deadline | None = None) -> Diagnosis:
    """The diagnosis of a failing ``outcome`` (see the module docstring)."""
    start = time.perf_counter()
    probe = _Probe(harness, outcome, deadline)
    diagnosis = Diagnosis(layout=outcome.example.deployment.layout)
    _find(probe, diagnosis)
    if diagnosis.kind:
        detail = diagnosis.cause
        diagnosis.cause = CAUSES[diagnosis.kind].format(detail=detail) if "{detail}" in CAUSES[diagnosis.kind] \
            else CAUSES[diagnosis.kind]
    diagnosis.seconds = time.perf_counter() - start
    return diagnosis


def _find(probe: _Probe, d: Diagnosis) -> None:
    """Run the trials in order of what each rules out; set ``d.kind`` (and its detail in
    ``d.cause``) from the first that changes the verdict."""
    outcome = probe.outcome
    if outcome.wrote_inputs:
        i = outcome.wrote_inputs[0]
        r = outcome.result
        d.trials.append(Trial("the inputs compared before and after the run", "fails",
                              f"input {i}: {r.mismatches} of {r.total} elements changed, by up to {r.max_abs:.3g}"))
        d.kind, d.cause = "writes", f"input {i} changed during run {outcome.run_index + 1}"
        return
    if outcome.overlap:
        d.trials.append(probe.trial("the same inputs one at a time, in one session", lambda: _serial(probe)))
        if d.trials[-1].changes:
            d.kind = "overlap"
            return
    d.trials.append(probe.trial("a fresh session, the failing input alone", lambda: probe.alone()))
    if d.trials[-1].changes:
        runs = _first_failing_run(probe, d)
        d.kind, d.cause = "state", f"; it fails on run {runs} of one session" if runs else ""
        return
    d.trials.append(probe.trial("contiguous private copies of the inputs", lambda: probe.alone(copies=True)))
    changed = ["layout"] if d.trials[-1].changes else []
    for name, variant in probe.backend.variants().items():
        label = VARIANTS.get(name, name) + (f" ({variant.name})" if variant.name != probe.backend.name else "")
        d.trials.append(probe.trial(label, lambda v=variant: probe.alone(v)))
        if d.trials[-1].changes:
            changed.append(name)
            if not d.cause and variant.name != probe.backend.name:
                d.cause = f", as {variant.name},"
    exporter = _reference_trial(probe)
    if exporter is not None:
        d.trials.append(exporter)
    if changed:
        d.kind = changed[0]
    elif exporter is not None and exporter.verdict == "fails":
        d.kind, d.cause = "exporter", exporter.detail.split("; ", 1)[-1]
    elif exporter is not None and exporter.verdict == "passes":
        d.kind = "kernel"


def _serial(probe: _Probe) -> tuple[bool, str]:
    """Every overlapped input in turn through one fresh session, each against its reference."""
    outcome, deployment = probe.outcome, probe.deployment
    prepared = probe.session()
    module = probe.harness.module_for(outcome.case, outcome.example.structure)
    from conformance.engine.harness import torch_run

    worst = 0.0
    for recipe in deployment.overlap_inputs(outcome.example.inputs):
        x = recipe.materialize()
        actual, intact, _ = probe.run(prepared, x)
        passes, _ = probe.judge(actual, torch_run(module, [x]))
        if not (passes and intact):
            return False, "one of them fails alone too"
        worst = max(worst, max(float(np.max(np.abs(a - e), initial=0)) for a, e in
                               zip(actual, torch_run(module, [x]))))
    return True, f"max abs error {worst:.3g}"


def _first_failing_run(probe: _Probe, d: Diagnosis) -> int:
    """The run of one fresh session on which the failure comes back: the deployment's runs
    replayed in order, else the failing input run again and again (up to ``MAX_RUNS``); 0 when
    it does not come back. Sets ``d.warmup`` to the inputs run before it."""
    if probe.history:
        prepared = probe.session()
        for x in probe.history:
            probe.run(prepared, x)
        actual, intact, _ = probe.run(prepared, probe.x)
        if not (probe.judge(actual, probe.expected)[0] and intact):
            d.warmup = list(probe.history)
            return len(probe.history) + 1
    prepared = probe.session()
    for k in range(MAX_RUNS):
        actual, intact, _ = probe.run(prepared, probe.x)
        if not (probe.judge(actual, probe.expected)[0] and intact):
            d.warmup = [probe.x] * k
            return k + 1
    return 0


def _reference_trial(probe: _Probe) -> Trial | None:
    """onnx's reference evaluator on the file the runtime ran (ONNX runtimes only): off from
    torch as well means the file (the exporter) is wrong; close to torch clears it."""
    outcome = probe.outcome
    if outcome.model is None or isinstance(probe.backend, ProgramBackend):
        return None
    from conformance.backends import onnx_reference

    variation = "onnx's reference evaluator on the same file"
    if not float64_fits(outcome.example.inputs.shape):  # 1-2 min and GBs in float64 at 1080p here
        return Trial(variation, "not run", "an image past 641x480 pixels: too dear in float64 here")

    def evaluate():
        _, arrays_for = probe.session()  # only for the arrays: weights fed as inputs come with x
        arrays = [np.ascontiguousarray(a) for a in arrays_for(probe.x)]
        rep = onnx_reference.prepare(outcome.model)
        return [np.asarray(o) for o in rep.run(arrays)]

    start = time.perf_counter()
    try:
        got = Deadline(REFERENCE_BUDGET_S).call(evaluate, "onnx's reference evaluator")
    except Exception as exc:
        return Trial(variation, "error", first_meaningful_line(str(exc))[:160], seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    passes, detail = probe.judge(got, probe.expected)
    if passes:
        return Trial(variation, "passes", f"matches torch: {detail}", seconds=seconds)
    same = all(compare(g, a, probe.decimal) for g, a in zip(got, outcome.actual))
    tail = "gives the runtime's numbers" if same else "is off from torch too"
    return Trial(variation, "fails", f"{detail}; {tail}", seconds=seconds)
