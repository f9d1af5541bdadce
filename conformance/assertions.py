"""Drawing one example and asserting parity with a one-screen message."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from conformance.backends.base import BackendError
from conformance.export import ExportError, UnsupportedExport
from conformance.parity import Example, Harness, Outcome, Target
from conformance.spec import EXPENSIVE_EXPORTERS, Case
from conformance.strategies import WEIGHT_POOL, inputs, weights

FEEDS = ("initializers", "inputs")


def draw_example(case: Case, exporter: str, data) -> Example:
    structure = data.draw(case.structure_strategy(exporter), label="structure")
    shape = data.draw(case.input_shapes(structure), label="shape")
    pooled = case.bakes_weights and exporter in EXPENSIVE_EXPORTERS
    return Example(
        structure=structure,
        weights=data.draw(st.sampled_from(WEIGHT_POOL) if pooled else weights(), label="weights"),
        inputs=data.draw(inputs(shape, scales=case.scales), label="inputs"),
        feed=data.draw(st.sampled_from(FEEDS), label="weights fed as"),
    )


def run_checked(harness: Harness, case: Case, target: Target, example: Example) -> Outcome:
    """Run one example; a backend or exporter error fails the case with its own message."""
    __tracebackhide__ = True
    try:
        outcome = harness.run(case, target, example)
    except UnsupportedExport as exc:
        skip_reason, error = f"unsupported: {exc}", None
    except (BackendError, ExportError) as exc:
        skip_reason, error = None, f"{case.name} on {target.id}: {exc}"
    else:
        harness.record(outcome)
        return outcome
    # Outside the except blocks: the message alone, without the exception chain.
    if skip_reason:
        pytest.skip(skip_reason)
    pytest.fail(error, pytrace=False)


def failure_message(outcome: Outcome, nodeid: str) -> str:
    c, t, ex, r = outcome.case, outcome.target, outcome.example, outcome.result
    lines = [
        f"{c.name} on {t.backend.name} ({t.export.exporter} exporter, opset {t.export.opset}): "
        f"parity fails at decimal={r.decimal}",
        f"  structure: {c.describe(ex.structure)}",
        f"  input {ex.inputs.shape} at {ex.inputs.scale} scale ({ex.inputs.distribution}), "
        f"weights {ex.weights.init} with {ex.weights.zero_fraction:.0%} zeros, fed as {ex.feed}",
        f"  output {tuple(outcome.expected[0].shape)}: {r.summary()}",
    ]
    if r.oracle is not None:
        lines.append(f"  {r.oracle.describe(r.tolerance)}")
    if outcome.reproducer:
        lines.append(f"  reproducer: {outcome.reproducer}  (conformance replay DIR)")
    lines.append(f"  rerun: pytest '{nodeid}'  (hypothesis replays the shrunk example from its database)")
    return "\n".join(lines)


def assert_parity(outcome: Outcome, nodeid: str) -> None:
    __tracebackhide__ = True
    if not outcome.result:
        raise AssertionError(failure_message(outcome, nodeid))


def check(harness: Harness, case: Case, target: Target, data) -> Outcome:
    """The body of every hypothesis parity case: draw, run, record, assert."""
    __tracebackhide__ = True
    example = draw_example(case, target.export.exporter, data)
    outcome = run_checked(harness, case, target, example)
    assert_parity(outcome, harness.current_test)
    return outcome
