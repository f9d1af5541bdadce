"""Seconds per example of `conformance check`'s default reference, and its false alarms, on the
light models the onnx package ships (and old-opset Softmax/LogSoftmax/BatchNormalization files).

    .venv/bin/python benchmarks/byom_reference.py [--examples 3] [--only NAME] [--no-before] [--drawn]

Per model: the time to prepare the reference, the median time of one reference run (one drawn
input at the declared shape), and whether ONNX Runtime (CPU, default options) passes decimal-3
against it on every example ("false alarm" when it does not: ONNX Runtime is right on these).
"before" is the reference as it was (onnx's evaluator on the model as it is, float32, its own
kernels), on the same inputs in the same process, so both columns see the same machine load.
``--drawn`` runs the light models with drawn weights (``conformance.testing.drawn_weights``:
their shipped weights are all 0.02, so every class scores the same).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared 2-core machine: no spinning threads
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from conformance.backends import load_backend  # noqa: E402
from conformance.byom.feeds import ArrayRecipe  # noqa: E402
from conformance.byom.model_check import ModelCheck  # noqa: E402
from conformance.byom.defaults import DEFAULT_REFERENCE  # noqa: E402
from conformance.engine.compare import compare  # noqa: E402
from conformance.engine.deadline import Deadline  # noqa: E402

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
#: Old-opset (6) files ONNX Runtime runs (it has no opset-6 BatchNormalization kernel).
OLD_OPSET = ("test_Softmax", "test_LogSoftmax", "test_softmax_functional_dim3", "test_log_softmax_dim3")


def model_paths(drawn: bool = False) -> list[Path]:
    light = sorted((DATA / "light").glob("*.onnx"))
    return light + ([] if drawn else [DATA / "pytorch-converted" / name / "model.onnx" for name in OLD_OPSET])


def arrays(check: ModelCheck, seed: int, distribution: str) -> list[np.ndarray]:
    sizes = {name: lo for name, (lo, hi) in check.ranges.items()}
    return [ArrayRecipe(s.name, s.shape(sizes), s.dtype.name, distribution, seed + i).materialize()
            for i, s in enumerate(check.specs)]


class _Before:
    """The reference before it was made an oracle: onnx's evaluator on the model as it is."""

    def __init__(self, model: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator

        self._evaluator = ReferenceEvaluator(model)
        initializers = {i.name for i in model.graph.initializer}
        self._names = [i.name for i in model.graph.input if i.name not in initializers]

    def run(self, inputs):
        with np.errstate(all="ignore"):
            return [np.asarray(o) for o in self._evaluator.run(None, dict(zip(self._names, inputs)))]


def measure_before(check: ModelCheck, examples: int) -> tuple[float, float, int]:
    """(median s per example, median CPU s per example, false alarms) of the old reference."""
    ort, rep = load_backend("onnxruntime"), _Before(check.model)
    times, cpu, alarms = [], [], 0
    for k in range(examples):
        feed = arrays(check, 1000 * k, ("unit", "normal", "wide")[k % 3])
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            expected = rep.run(feed)
        except Exception:  # the old evaluator cannot run it at all: an alarm, no time
            alarms += 1
            continue
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        actual = check.run(ort, feed, Deadline(None))
        alarms += not all(compare(actual[i], expected[i], 3) for i in check.compared)
    median = (lambda xs: statistics.median(xs) if xs else float("nan"))
    return median(times), median(cpu), alarms


def load_check(path: Path, drawn: bool, scratch: Path) -> ModelCheck:
    if drawn:
        from conformance.testing.drawn_weights import calibrated, with_drawn_weights

        model = onnx.load(str(path))
        check = ModelCheck(path, load_backend(DEFAULT_REFERENCE))
        feed = dict(zip([s.name for s in check.specs], arrays(check, 5, "normal")))
        path = scratch / path.name
        onnx.save(calibrated(with_drawn_weights(model), feed), str(path))
    return ModelCheck(path, load_backend(DEFAULT_REFERENCE))


def measure(check: ModelCheck, examples: int) -> tuple[float, float, float, int, float]:
    """(prepare s, median s per example, median CPU s per example, false alarms, worst error
    against ORT). CPU seconds (all threads of the process) tell apart a slow reference from a
    busy machine: on a shared machine, wall time grows with the load."""
    start = time.perf_counter()
    check.prepare_reference(None)
    prepared = time.perf_counter() - start
    ort = load_backend("onnxruntime")
    times, cpu, alarms, worst = [], [], 0, 0.0
    for k in range(examples):
        feed = arrays(check, 1000 * k, ("unit", "normal", "wide")[k % 3])
        start, start_cpu = time.perf_counter(), time.process_time()
        expected = check.reference_outputs(feed, Deadline(None))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        actual = check.run(ort, feed, Deadline(None))
        results = [compare(actual[i], expected[i], 3) for i in check.compared]
        alarms += not all(results)
        worst = max([worst] + [r.max_abs for r in results])
    return prepared, statistics.median(times), statistics.median(cpu), alarms, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3, help="examples per model (default 3)")
    parser.add_argument("--only", default="", help="models whose path contains this")
    parser.add_argument("--no-before", action="store_true", help="skip the old reference (slow)")
    parser.add_argument("--drawn", action="store_true", help="light models with drawn weights")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'model':28} {'before s/ex':>11} {'CPU':>6} {'alarms':>6} | {'prepare s':>9} {'after s/ex':>10} "
          f"{'CPU':>6} {'alarms':>6} {'worst err vs ORT':>16}")
    with tempfile.TemporaryDirectory() as scratch:
        for path in model_paths(args.drawn):
            if args.only not in str(path):
                continue
            name = path.stem if path.parent.name == "light" else path.parent.name
            check = load_check(path, args.drawn, Path(scratch))
            before = (float("nan"), float("nan"), "-") if args.no_before else measure_before(check, args.examples)
            prepared, per_example, cpu, alarms, worst = measure(check, args.examples)
            print(f"{name:28} {before[0]:11.3f} {before[1]:6.3f} {before[2]:>6} | {prepared:9.2f} {per_example:10.3f} "
                  f"{cpu:6.3f} {alarms:>6} {worst:16.3g}", flush=True)
    print(f"(medians of {args.examples} examples; alarms: examples where ONNX Runtime fails decimal-3 against it)")


if __name__ == "__main__":
    main()
