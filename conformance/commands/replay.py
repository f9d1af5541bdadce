"""``conformance replay DIR``: rerun reproducers (or ONNX's own test-data folders) on backends.

DIR is one folder in the ONNX test-data layout (``model.onnx`` + ``test_data_set_N/``), or a
folder holding many (``reports/reproducers/``, ``onnx/backend/test/data/pytorch-operator/``).
Each is run on every ``--backend`` / ``--device`` and compared with its stored outputs at
``--decimal``, or, for a quantized model (QDQ or QOperator: an int8 case's reproducer), in steps
of each int8 output's scale (``--qtol``); the exit status is 1 when any comparison fails or a
backend errors.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from conformance.commands import add_backend_arguments

EXIT_FAIL = 1
EXIT_USAGE = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay", help="rerun reproducers / ONNX test-data folders on backends and compare",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("dirs", nargs="+", metavar="DIR", type=Path,
                        help="a test-data folder (model.onnx + test_data_set_*), or a folder of them")
    add_backend_arguments(parser)
    parser.add_argument("--decimal", type=int, default=3, metavar="N",
                        help="parity to N decimals: |actual - expected| < 1.5 * 10**-N. Default: 3")
    parser.add_argument("--qtol", type=int, default=1, metavar="STEPS",
                        help="a quantized model's int8 outputs may be off by this many steps of their scale. "
                             "Default: 1")
    parser.add_argument("-q", "--quiet", action="store_true", help="print failures and the summary only")
    parser.set_defaults(func=run)


@dataclass
class Result:
    folder: Path
    backend: str
    status: str  # pass / fail / error / skip
    detail: str


def find_folders(root: Path) -> list[Path]:
    """``root`` itself when it holds ``model.onnx``, else every such folder below it (sorted)."""
    if (root / "model.onnx").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("model.onnx"))


def _compare(actual, expected, decimal: int, steps: dict, qtol: int):
    """(index of the worst output, each output's result): at decimal-N, or in steps of the
    output's scale where the model dequantizes it (``steps``: ``quantized_outputs``)."""
    from conformance.engine.harness import compare_outputs

    if not steps:
        return compare_outputs(actual, expected, decimal)
    import numpy as np

    from conformance.engine.compare import compare
    from conformance.engine.qcompare import qcompare

    results = [qcompare(np.asarray(a, np.float64), np.asarray(e, np.float64), steps[i].scale, steps[i].zero_point,
                        qtol=qtol) if i in steps else compare(a, e, decimal)
               for i, (a, e) in enumerate(zip(actual, expected))]
    return min(range(len(results)), key=lambda j: results[j].severity), results


def replay_folder(folder: Path, backend, decimal: int, qtol: int = 1) -> Result:
    """Run every data set of one folder on one backend; the worst comparison decides."""
    from conformance.backends import BackendError
    from conformance.engine.deadline import CaseTimeout
    from conformance.engine.harness import prepare_model, run_session
    from conformance.engine.reproducer import read_test_data
    from conformance.formats.quantize import quantized_outputs

    try:
        model, sets = read_test_data(folder)
    except Exception as exc:  # sequences, maps, strings: not tensors this suite compares
        return Result(folder, backend.name, "skip", f"cannot read test data: {type(exc).__name__}: {exc}")
    if not sets:
        return Result(folder, backend.name, "skip", "no test_data_set_* folder")
    steps = quantized_outputs(model)
    try:
        session = prepare_model(backend, model)
        runs = [(i, run_session(backend, session, inputs), outputs) for i, (inputs, outputs) in enumerate(sets)]
    except (BackendError, CaseTimeout) as exc:
        return Result(folder, backend.name, "error", f"{getattr(exc, 'error_type', type(exc).__name__)}: "
                                                    f"{getattr(exc, 'headline', str(exc))[:300]}")
    worst = None
    for i, actual, expected in runs:
        if len(actual) != len(expected):
            return Result(folder, backend.name, "fail", f"set {i}: {len(actual)} outputs, expected {len(expected)}")
        try:
            n, results = _compare(actual, expected, decimal, steps, qtol)
        except (TypeError, ValueError) as exc:
            return Result(folder, backend.name, "skip", f"set {i}: an output is not numeric: {exc}")
        if worst is None or results[n].severity < worst[2].severity:
            worst = (i, n, results[n])
    i, n, result = worst
    if result.ok:
        return Result(folder, backend.name, "pass",
                      f"{len(sets)} set(s); max abs error {result.max_abs:.3g} ({result.margin:.1%} of tolerance)")
    return Result(folder, backend.name, "fail", f"set {i} output {n}: {result.summary()}")


def run(args) -> int:
    from conformance.backends import BackendError, load_backends

    if not 0 <= args.decimal <= 12:
        print(f"conformance replay: --decimal {args.decimal} is out of range; use 0-12", file=sys.stderr)
        return EXIT_USAGE
    if args.qtol < 0:
        print(f"conformance replay: --qtol {args.qtol} is negative; give a number of steps from 0", file=sys.stderr)
        return EXIT_USAGE
    folders = []
    for root in args.dirs:
        if not root.exists():
            print(f"conformance replay: {root} does not exist", file=sys.stderr)
            return EXIT_USAGE
        found = find_folders(root) if root.is_dir() else []
        if not found:
            print(f"conformance replay: {root} holds no model.onnx (not a test-data folder)", file=sys.stderr)
            return EXIT_USAGE
        folders += found
    try:
        backends = load_backends(args.backend or ["onnxruntime"], ort_provider=args.ort_provider,
                                 devices=args.device or ())
    except BackendError as exc:
        print(f"conformance replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        results = [replay_folder(f, b, args.decimal, args.qtol) for f in folders for b in backends]
    finally:
        for backend in backends:
            backend.close()
    return report(results, quiet=args.quiet)


def report(results: list[Result], *, quiet: bool = False) -> int:
    """Print one line per (folder, backend) and a summary; 1 when anything failed or errored,
    or when nothing could be replayed at all."""
    for r in results:
        if not quiet or r.status in ("fail", "error"):
            print(f"{r.status.upper():5} {r.folder}  [{r.backend}]  {r.detail}")
    tally = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "error", "skip")}
    print(f"replayed {len(results)}: {tally['pass']} passed, {tally['fail']} failed, "
          f"{tally['error']} errors, {tally['skip']} skipped (unreadable or non-numeric data)")
    return EXIT_FAIL if tally["fail"] or tally["error"] or not tally["pass"] else 0
