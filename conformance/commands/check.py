"""``conformance check MODEL.onnx``: parity of any ONNX file on every backend under test.

Exit codes: 0 every backend agrees with the reference; 1 some backend disagrees, fails or hangs;
2 the model or the options cannot be checked (missing/invalid file, bad --dim, too large, the
reference cannot run it or gives only NaN/Inf).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from conformance.byom.defaults import DEFAULT_REFERENCE  # ONNX's own evaluator: never ORT vs itself
from conformance.commands import add_backend_arguments

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: A progress line at most this often (seconds) while a backend works through its examples.
PROGRESS_EVERY = 10.0


def register(subparsers) -> None:
    from conformance.byom.onnx_inputs import DEFAULT_DIM_RANGE, DEFAULT_MAX_ELEMENTS
    from conformance.engine.deadline import DEFAULT_CASE_TIMEOUT

    p = subparsers.add_parser(
        "check", help="check an ONNX model's parity across backends (inputs drawn from its declared inputs)",
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[1])
    p.add_argument("model", metavar="MODEL.onnx", help="the model (external data files next to it)")
    add_backend_arguments(p)
    p.add_argument("--reference", default=DEFAULT_REFERENCE, metavar="BACKEND",
                   help="the backend whose outputs are the truth; it may not also be under test. Default: "
                        "ONNX's reference evaluator (conformance.backends.onnx_reference: written from the operator specs, "
                        "independent of ONNX Runtime, at the newest opset and in float64), with ONNX Runtime "
                        "without optimizations as a second opinion")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=MIN:MAX",
                   help=f"range of a symbolic dimension (repeatable; unnamed ones are INPUT[AXIS]). "
                        f"Default: {DEFAULT_DIM_RANGE[0]}:{DEFAULT_DIM_RANGE[1]}")
    p.add_argument("--max-elements", type=int, default=DEFAULT_MAX_ELEMENTS, metavar="N",
                   help=f"refuse models whose inputs could hold more elements. Default: {DEFAULT_MAX_ELEMENTS}")
    p.add_argument("--case-timeout", type=float, default=DEFAULT_CASE_TIMEOUT, metavar="S",
                   help=f"seconds one backend may take for all its examples; a hang fails it. "
                        f"Default: {DEFAULT_CASE_TIMEOUT:g} (as under pytest)")
    p.add_argument("--examples", type=int, default=10, metavar="N", help="examples per backend. Default: 10")
    p.add_argument("--decimal", type=int, default=3, metavar="N",
                   help="parity to N decimals (|actual - expected| < 1.5 * 10**-N). Default: 3")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="derandomize: the same N draws the same examples. Default: random")
    p.add_argument("--reports", default="reports", metavar="DIR",
                   help="where failure reproducers go (DIR/reproducers). Default: reports/")
    p.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"conformance check: error: {one_line(message)}", file=sys.stderr)
    return EXIT_USAGE


def one_line(message: str) -> str:
    """A runtime's message on one line, without ONNX Runtime's C++ source location and signature."""
    message = re.sub(r"/onnxruntime_src/\S+:\d+ [^(]*\([^)]*\)( const)? ", "", message)
    return " ".join(message.split())


def _validate(args) -> str | None:
    if args.max_elements < 1:
        return f"--max-elements {args.max_elements}: must be at least 1"
    if not args.case_timeout > 0:
        return f"--case-timeout {args.case_timeout}: must be positive"
    if args.examples < 1:
        return f"--examples {args.examples}: must be at least 1"
    if not 0 <= args.decimal <= 12:
        return f"--decimal {args.decimal}: out of range; use 0-12"
    return None


def _backends(args):
    from conformance.backends import load_backend, load_backends

    backends = load_backends(args.backend or ["onnxruntime"], ort_provider=args.ort_provider,
                             devices=args.device or (), device_timeout=min(30.0, args.case_timeout))
    if any(b.name == args.reference for b in backends):
        for backend in backends:
            backend.close()
        raise _SameAsReference(
            f"--reference {args.reference} is also under test: it would be compared with itself and always "
            f"pass; pick another --reference (default: {DEFAULT_REFERENCE}, ONNX's own evaluator) or --backend")
    return backends, load_backend(args.reference)


class _SameAsReference(Exception):
    """The reference is one of the backends under test."""


def run(args) -> int:
    from conformance.backends import BackendError
    from conformance.engine.deadline import CaseTimeout
    from conformance.byom.model_file import ModelError
    from conformance.byom.onnx_inputs import parse_dim_specs
    from conformance.byom.model_check import ModelCheck
    from conformance.backends.onnx_reference import second_reference

    problem = _validate(args)
    if problem:
        return _usage(problem)
    try:
        dims = parse_dim_specs(args.dim)
        backends, reference = _backends(args)
        check = ModelCheck(Path(args.model), reference, dims, args.max_elements, args.decimal,
                           second=second_reference(reference.name))
        started = time.perf_counter()
        print(f"preparing the reference {reference.name}...", flush=True)
        check.prepare_reference(args.case_timeout)
    except (ModelError, BackendError, CaseTimeout, _SameAsReference) as exc:
        return _usage(str(exc))
    notes = "; ".join(check.reference_notes() + ([f"second reference {check.second.name}"] if check.second else []))
    print(f"reference {reference.name} ready in {time.perf_counter() - started:.1f} s"
          + (f" ({notes})" if notes else ""), flush=True)
    print(f"{args.model}: opset {_imports(check)}; inputs "
          + "; ".join(s.describe() for s in check.specs)
          + (f"; dims {', '.join(f'{n}={lo}:{hi}' for n, (lo, hi) in check.ranges.items())}" if check.ranges else "")
          + (f"; not compared (not numeric tensors): {', '.join(check.ignored)}" if check.ignored else ""))
    if check.steps:  # a quantized model: int8 outputs are judged in steps, not at decimal-N
        print("int8 outputs judged in quantization steps: "
              + "; ".join(f"{check.outputs[i]} scale {q.scale:.6g} zero point {q.zero_point}" for i, q in check.steps.items())
              + " (every element within 1 step, mean signed error within the bias bound)")
    try:
        return _check_all(args, check, backends, reference)
    finally:
        for backend in backends + [reference]:
            backend.close()


def _imports(check) -> str:
    return ", ".join(f"{e.domain or 'ai.onnx'} {e.version}" for e in check.model.opset_import)


def _check_all(args, check, backends, reference) -> int:
    from conformance.engine.deadline import Deadline
    from conformance.byom.drive import drive
    from conformance.byom.model_file import ModelError

    status = EXIT_OK
    # One key for every backend: with --seed they all draw the same examples, and the reference's
    # outputs for each (computed once) serve them all.
    for backend in backends:
        progress = Progress(backend.name, reference.name, args.examples)
        verdict = drive(check, backend, max_examples=args.examples, deadline=Deadline(args.case_timeout),
                        derandomize=args.seed is not None, key=f"{check.case.name}-{args.seed}",
                        reproducers=Path(args.reports) / "reproducers", on_outcome=progress)
        problem = verdict.problem(reference.name)
        if isinstance(verdict.error, ModelError) or (problem and verdict.examples == 0 and verdict.error is None):
            return _usage(problem)  # the model cannot be checked at all: no backend gets a verdict
        skipped = f"; {verdict.nonfinite} examples left out ({verdict.nonfinite_note})" if verdict.nonfinite else ""
        if problem:
            status = EXIT_FAILED
            problem = problem.removeprefix(f"{backend.name}: ")
            print(f"FAIL {backend.name}: {one_line(problem)}{skipped}")
        else:
            print(f"PASS {backend.name} vs {reference.name}: {verdict.examples} examples, closest used "
                  f"{verdict.worst_margin:.1%} of the tolerance{skipped} ({progress.elapsed():.1f} s)")
    return status


class Progress:
    """Called after each example: a line every ``every`` seconds, so a long check (a big model on
    a slow reference) shows it is alive and how far it got."""

    def __init__(self, backend: str, reference: str, examples: int, every: float = PROGRESS_EVERY,
                 clock=time.perf_counter, out=None):
        self.backend, self.reference, self.examples, self.every = backend, reference, examples, every
        self.clock, self.out = clock, out or sys.stdout
        self.started = self.last = clock()
        self.done = 0

    def __call__(self, _outcome=None) -> None:
        self.done += 1
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            rate = (now - self.started) / self.done
            print(f"  {self.backend} vs {self.reference}: {self.done} examples in {now - self.started:.0f} s "
                  f"({rate:.1f} s each; up to {self.examples} plus shrinking)", file=self.out, flush=True)

    def elapsed(self) -> float:
        return self.clock() - self.started
