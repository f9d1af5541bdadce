"""Driving a ``ModelCheck`` with hypothesis for one backend, and the verdict that comes out.

What ends a case early is kept apart from what hypothesis should shrink: a parity mismatch is
raised (hypothesis shrinks it to the smallest failing example, cheap to re-run), while a
backend error or a timeout is stored and every later example returns at once, so a hanging
backend is called once, never once per shrink step. Examples whose reference output is not
finite are left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, given, settings

from conformance.backends.base import Backend, BackendError
from conformance.byom.deadline import CaseTimeout, Deadline
from conformance.byom.model_file import ModelError
from conformance.byom.runner import FileOutcome, ModelCheck, NonFiniteReference, failure_message
from conformance.reproducer import reproducer_dir, write_reproducer


class _Mismatch(AssertionError):
    """Raised inside hypothesis so that it shrinks a parity failure."""


@dataclass
class Verdict:
    """What one (model, backend) case found."""

    examples: int = 0  # examples compared
    nonfinite: int = 0  # examples left out: the reference gave NaN/Inf
    nonfinite_note: str = ""
    error: Exception | None = None  # BackendError, CaseTimeout or ModelError: ends the case
    stopped: bool = False  # an error while shrinking a failure: keep the failure, stop calling
    failure: FileOutcome | None = None  # the (shrunk) failing example
    worst_margin: float = 0.0  # largest share of the tolerance a passing example used

    @property
    def ok(self) -> bool:
        return self.error is None and self.failure is None and self.examples > 0

    def problem(self, reference: str) -> str | None:
        """The one-screen reason this case fails, or None when it passes."""
        if self.error is not None:
            return str(self.error)
        if self.failure is not None:
            return failure_message(self.failure, reference)
        if self.examples == 0:
            return (f"no example could be compared: {self.nonfinite_note} on all "
                    f"{self.nonfinite} drawn inputs; narrow the inputs (--dim) or check the model")
        return None


class _Examples:
    """Runs one example at a time into a ``Verdict`` (the body hypothesis calls)."""

    def __init__(self, check: ModelCheck, backend: Backend, deadline: Deadline, on_outcome):
        self.check, self.backend, self.deadline, self.on_outcome = check, backend, deadline, on_outcome
        self.verdict = Verdict()

    def __call__(self, recipe) -> None:
        verdict = self.verdict
        if verdict.error is not None or verdict.stopped:
            return  # the case is over: never call a failed or hung backend again
        try:
            outcome = self.check.run_example(self.backend, recipe, self.deadline)
        except NonFiniteReference as exc:
            verdict.nonfinite += 1
            verdict.nonfinite_note = str(exc)
            return
        except (BackendError, CaseTimeout, ModelError) as exc:
            if verdict.failure is None:
                verdict.error = exc
            else:  # the budget ran out while shrinking: the failure found so far is the verdict
                verdict.stopped = True
            return
        verdict.examples += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if not outcome.result:
            verdict.failure = outcome  # hypothesis replays the shrunk example last
            raise _Mismatch()
        verdict.worst_margin = max(verdict.worst_margin, outcome.result.margin)


def drive(check: ModelCheck, backend: Backend, *, max_examples: int, deadline: Deadline,
          database=None, derandomize: bool = False, key: str = "",
          on_outcome: Callable[[FileOutcome], None] | None = None,
          reproducers: Path | None = None, name: str = "") -> Verdict:
    """Run up to ``max_examples`` drawn examples of ``check`` on ``backend``.

    ``key`` tells hypothesis' database this case from others; a failure's reproducer goes to
    ``reproducers/NAME`` (default: model-backend).
    """
    examples = _Examples(check, backend, deadline, on_outcome)

    @settings(max_examples=max_examples, deadline=None, database=database, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(recipe=check.strategy())
    def test(recipe):
        examples(recipe)

    # A distinct database key per model and backend (hypothesis keys on the function otherwise).
    test.hypothesis.inner_test._hypothesis_internal_add_digest = key.encode()
    verdict = examples.verdict
    try:
        test()
    except _Mismatch:
        pass
    except Exception as exc:  # hypothesis' Flaky when a timeout hit during shrinking, and such
        if verdict.failure is None and verdict.error is None:
            verdict.error = exc
    if verdict.failure is not None and reproducers is not None:
        _write_reproducer(verdict.failure, reproducers, name)
    return verdict


def _write_reproducer(outcome: FileOutcome, root: Path, name: str) -> None:
    folder = reproducer_dir(root, name or f"{outcome.case.name}-{outcome.target.id}")
    try:
        outcome.reproducer = str(write_reproducer(folder, outcome.model, outcome.inputs, outcome.expected))
    except (OSError, ValueError) as exc:  # a >2 GB model cannot be saved inline; say so, go on
        outcome.reproducer = f"(not written: {exc})"
