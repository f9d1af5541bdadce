"""Driving a ``ModelCheck`` for one backend through the core's case driver, and the verdict.

The case loop itself is ``conformance.engine.driver.drive`` (shared by every entry point): a parity
mismatch is shrunk on a budget, a backend error or a timeout ends the case at once (a hanging
backend is called once, never once per shrink step). Examples the reference cannot judge
(its output is not finite, or the second reference disagrees with it) are left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from conformance.backends.base import Backend, BackendError
from conformance.byom.model_file import ModelError
from conformance.byom.model_check import CannotJudge, FileOutcome, ModelCheck, failure_message
from conformance.engine.deadline import Deadline
from conformance.engine.driver import LeftOut
from conformance.engine.driver import drive as drive_case
from conformance.engine.harness import ExampleError
from conformance.engine.record import CaseRecord
from conformance.engine.reproducer import reproducer_dir, write_reproducer


@dataclass
class Verdict:
    """What one (model, backend) case found."""

    examples: int = 0  # examples compared
    nonfinite: int = 0  # examples left out: the reference gave NaN/Inf
    nonfinite_note: str = ""
    error: Exception | None = None  # BackendError, CaseTimeout or ModelError: ends the case
    failure: FileOutcome | None = None  # the (shrunk) failing example
    worst_margin: float = 0.0  # largest share of the tolerance a passing example used
    error_example: object = None  # the drawn example that raised ``error``

    @property
    def ok(self) -> bool:
        return self.error is None and self.failure is None and self.examples > 0

    def problem(self, reference: str) -> str | None:
        """The one-screen reason this case fails, or None when it passes."""
        if self.error is not None:
            text = f"{type(self.error).__name__}: {self.error}" if isinstance(self.error, BackendError) else str(self.error)
            if self.error_example is not None:
                text += f"\n  drawn example: {self.error_example.describe()}"
            return text
        if self.failure is not None:
            return failure_message(self.failure, reference)
        if self.examples == 0:
            return (f"no example could be compared: {self.nonfinite_note} on all "
                    f"{self.nonfinite} drawn inputs; narrow the inputs (--dim) or check the model")
        return None


def drive(check: ModelCheck, backend: Backend, *, max_examples: int, deadline: Deadline,
          database=None, derandomize: bool = False, key: str = "",
          on_outcome: Callable[[FileOutcome], None] | None = None,
          reproducers: Path | None = None, name: str = "", record: CaseRecord | None = None) -> Verdict:
    """Run up to ``max_examples`` drawn examples of ``check`` on ``backend`` into ``record``.

    ``key`` tells hypothesis' database this case from others; a failure's reproducer goes to
    ``reproducers/NAME`` (default: model-backend).
    """
    record = record or CaseRecord(key or check.case.name, check.case.name, "onnx-file", backend.name,
                                  "onnx-file", check.target(backend).export.opset)

    def run(recipe, shrinking: bool) -> FileOutcome:
        try:
            outcome = check.run_example(backend, recipe, deadline)
        except CannotJudge as exc:  # NaN/Inf from the reference, or two references that disagree
            raise LeftOut(str(exc)) from None
        except (BackendError, ModelError) as exc:
            raise ExampleError(exc, None, [], []) from None
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    found = drive_case(record, check.strategy(), run, max_examples=max_examples, key=key,
                       database=database, derandomize=derandomize)
    error = found.error.error if isinstance(found.error, ExampleError) else found.error
    verdict = Verdict(examples=record.examples, nonfinite=record.left_out, nonfinite_note=found.left_out_note,
                      error=error, failure=found.failure, error_example=found.error_example,
                      worst_margin=record.worst.margin if record.worst is not None and record.worst.ok else 0.0)
    if verdict.failure is not None and reproducers is not None:
        _write_reproducer(verdict.failure, reproducers, name)
        record.reproducer = verdict.failure.reproducer or ""
    if verdict.failure is not None:
        _localize(check, backend, verdict.failure, Deadline(deadline.seconds), record)
    return verdict


def _localize(check: ModelCheck, backend: Backend, outcome: FileOutcome, deadline: Deadline,
              record: CaseRecord) -> None:
    """Name the first diverging layer in the failure's message, keep the per-layer profile in
    the record and plot it beside the reproducer. A diagnosis: its own failure (a runtime that
    cannot run the model with every intermediate marked) is said, never hides the verdict."""
    from conformance.localize.onnx_graph import plot_profile

    try:
        found = check.localize(backend, outcome, deadline)
    except Exception as exc:
        record.localization = {"error": f"{type(exc).__name__}: {exc}"}
        outcome.localization = f"localization failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return
    plot = ""
    if outcome.reproducer and not outcome.reproducer.startswith("("):
        plot = plot_profile(found, Path(outcome.reproducer) / "layer_errors.png",
                            title=f"{outcome.case.name} on {backend.name}")
    record.localization = found.as_record(plot)
    outcome.localization = found.describe()


def _write_reproducer(outcome: FileOutcome, root: Path, name: str) -> None:
    folder = reproducer_dir(root, name or f"{outcome.case.name}-{outcome.target.id}")
    try:
        outcome.reproducer = str(write_reproducer(folder, outcome.model, outcome.inputs, outcome.expected))
    except (OSError, ValueError) as exc:  # a >2 GB model cannot be saved inline; say so, go on
        outcome.reproducer = f"(not written: {exc})"
