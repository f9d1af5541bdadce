"""Running one parity case: hypothesis draws examples, a body runs each, one record keeps it all.

Every entry point that runs drawn examples (operator and model cases, registered modules,
``--model`` files and ``conformance check``) goes through ``drive``. What ends a case is kept
apart from what hypothesis should shrink:

* a parity mismatch is raised inside hypothesis, which shrinks it, on a budget: shrink steps
  may not make new exports (the structures already exported are where the shrunk example is
  found; an export costs 20 ms to 7 s), and they stop after about as long as the case's
  examples would have taken, so a failing case costs at most about twice a passing one;
* an exporter or runtime error is deterministic: it ends the case at once (later examples
  return without calling anything; no shrinking through exports) and the record keeps the
  exception type, the runtime's whole message and the drawn example that raised it;
* a call past the case's deadline (``--case-timeout``) ends the case the same way.

The float64 oracle runs once per case: on the final failure, or on the closest pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from conformance import private_apis
from conformance.backends import Unsupported
from conformance.draw.frames import float64_fits, frame_of
from conformance.engine.compare import judge_with_oracle
from conformance.engine.deadline import CaseTimeout
from conformance.formats.onnx_export import UnsupportedExport
from conformance.engine.harness import ExampleError, WouldExport
from conformance.engine.record import CaseRecord

#: Shrinking stops after this many times the case's mean example time times its example budget
#: (with a floor and a ceiling in seconds).
SHRINK_FLOOR_S, SHRINK_CEILING_S = 2.0, 60.0


class _Mismatch(AssertionError):
    """Raised inside hypothesis so that it shrinks a parity failure."""


class LeftOut(Exception):
    """An example the body could not judge (a reference that is not finite): counted apart."""


@dataclass
class Verdict:
    """What one case found: a failure (shrunk), an error, a skip, or a pass."""

    failure: Any = None  # the (shrunk) failing outcome
    error: Exception | None = None  # ExampleError, CaseTimeout, ExportError...: ended the case
    error_example: Any = None  # the drawn example that raised it
    skipped: str = ""  # an unsupported (format, runtime) pair: the reason
    closest: Any = None  # the passing outcome closest to the tolerance
    left_out_note: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None and self.error is None and not self.skipped


class _Body:
    """The function hypothesis calls: runs one drawn example into the verdict and the record."""

    def __init__(self, record: CaseRecord, run: Callable[[Any, bool], Any], max_examples: int):
        self.record, self.run, self.max_examples = record, run, max_examples
        self.verdict = Verdict()
        self.started = time.monotonic()
        self.shrink_end: float | None = None
        self.stopped = False  # the shrink budget is spent, or the backend hung while shrinking
        self.failing: dict = {}  # drawn example -> its failing outcome (replayed once stopped)

    def __call__(self, drawn) -> None:
        verdict = self.verdict
        if verdict.error is not None or verdict.skipped:
            return  # the case is over: never call a failed or hung runtime again
        shrinking = verdict.failure is not None
        if shrinking and (self.stopped or time.monotonic() > self.shrink_end):
            # Out of budget: an example already seen failing fails again without a call (so
            # hypothesis' final replay of its smallest one agrees), any other passes at once.
            self.stopped = True
            known = self._known_failure(drawn)
            if known is not None:
                verdict.failure = known
                raise _Mismatch()
            return
        try:
            outcome = self.run(drawn, shrinking)
        except WouldExport:
            return  # a shrink step that needs a new export: not taken
        except UnsupportedExport as exc:
            verdict.skipped = f"unsupported: {exc}"
            return
        except LeftOut as exc:
            self.record.left_out += 1
            verdict.left_out_note = str(exc)
            return
        except (ExampleError, CaseTimeout) as exc:
            if isinstance(getattr(exc, "error", None), Unsupported):
                # A documented limit of the runtime for this example (a shape past an ExecuTorch
                # program's bounds, BatchNorm parameters fed at run time to tract): not a wrong
                # number. Left out and counted; a case with nothing else is skipped with the reason.
                self.record.left_out += 1
                verdict.left_out_note = exc.error.headline
                return
            if not shrinking:  # the example ran and failed: it counts
                verdict.error, verdict.error_example = exc, drawn
                self.record.examples += 1
                self.record.failures += 1
            elif isinstance(exc, CaseTimeout):
                self.stopped = True  # keep the failure found so far; stop calling a stuck runtime
            return  # an error while shrinking: this candidate does not reproduce the mismatch
        if self.record.is_new_worst(outcome.result):
            verdict.closest = outcome
        self.record.note(outcome.result, shrinking=shrinking)
        if not outcome.result:
            if not shrinking:
                self.shrink_end = time.monotonic() + self._shrink_budget()
            verdict.failure = outcome
            self._remember(drawn, outcome)
            raise _Mismatch()

    def _remember(self, drawn, outcome) -> None:
        try:
            self.failing[drawn] = outcome
        except TypeError:  # an unhashable draw: only the last failure is kept
            pass

    def _known_failure(self, drawn):
        try:
            return self.failing.get(drawn)
        except TypeError:
            return None

    def _shrink_budget(self) -> float:
        spent = time.monotonic() - self.started
        per_example = spent / max(1, self.record.examples)
        return min(SHRINK_CEILING_S, max(SHRINK_FLOOR_S, per_example * self.max_examples))


def drive(record: CaseRecord, strategy, run: Callable[[Any, bool], Any], *, max_examples: int,
          key: str, database=None, derandomize: bool = False, seed: int | None = None) -> Verdict:
    """Run up to ``max_examples`` examples drawn from ``strategy`` through ``run(drawn, shrinking)``.

    ``run`` returns an outcome (with a truthy ``result`` on a pass) or raises ``ExampleError``,
    ``CaseTimeout``, ``UnsupportedExport``, ``LeftOut`` or (while shrinking) ``WouldExport``.
    ``key`` tells hypothesis' example database this case from others; ``seed`` seeds its draws.
    Callers give every runtime of a (case, format) the same key and seed, so all runtimes meet
    the same examples and share their exports.
    """
    body = _Body(record, run, max_examples)

    # No explain phase (it replays variations of a failure: more calls, nothing for the record);
    # one bug per case, so hypothesis shrinks the first failure instead of hunting for others.
    @settings(max_examples=max_examples, deadline=None, database=database, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), print_blob=False, report_multiple_bugs=False,
              phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink))
    @given(drawn=strategy)
    def case(drawn):
        body(drawn)

    private_apis.set_database_key(case, key.encode())
    if seed is not None:
        case = hypothesis_seed(seed)(case)
    try:
        case()
    except _Mismatch:
        pass
    except Exception as exc:  # hypothesis' Flaky when the shrink budget ran out, and such
        if body.verdict.failure is None and body.verdict.error is None:
            body.verdict.error = exc
    verdict = body.verdict
    _judge_with_oracle(verdict.failure or verdict.closest)
    return verdict


def _judge_with_oracle(outcome) -> None:
    """The float64 oracle's verdict on the outcome the reports show (once per case)."""
    oracle = getattr(outcome, "oracle", None)
    if oracle is None or outcome.result.shape_error:
        return
    shape = getattr(getattr(getattr(outcome, "example", None), "inputs", None), "shape", ())
    if (frame_of(shape) and outcome.result) or not float64_fits(shape):
        return  # float64 on a frame: 5-45 s and up to 14 GB here; only a failing VGA frame pays it
    i = outcome.worst_output
    judge_with_oracle(outcome.result, outcome.actual[i], outcome.expected[i], oracle()[i])
