"""Seconds per example of `conformance check`'s default reference, and its false alarms, on the
light models the onnx package ships (and old-opset Softmax/LogSoftmax/BatchNormalization files).

    .venv/bin/python benchmarks/byom_reference.py [--examples 2] [--only NAME]

Per model: the time to prepare the reference, the median time of one reference run (one drawn
input at the declared shape), and whether ONNX Runtime (CPU, default options) passes decimal-3
against it on every example ("false alarm" when it does not: ONNX Runtime is right on these).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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


def model_paths() -> list[Path]:
    light = sorted((DATA / "light").glob("*.onnx"))
    return light + [DATA / "pytorch-converted" / name / "model.onnx" for name in OLD_OPSET]


def arrays(check: ModelCheck, seed: int, distribution: str) -> list[np.ndarray]:
    sizes = {name: lo for name, (lo, hi) in check.ranges.items()}
    return [ArrayRecipe(s.name, s.shape(sizes), s.dtype.name, distribution, seed + i).materialize()
            for i, s in enumerate(check.specs)]


def measure(path: Path, examples: int) -> tuple[float, float, float, int, float]:
    """(prepare s, median s per example, median CPU s per example, false alarms, worst error
    against ORT). CPU seconds (all threads of the process) tell apart a slow reference from a
    busy machine: on a shared machine, wall time grows with the load."""
    check = ModelCheck(path, load_backend(DEFAULT_REFERENCE))
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
    parser.add_argument("--examples", type=int, default=2, help="examples per model (default 2)")
    parser.add_argument("--only", default="", help="models whose path contains this")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'model':34} {'prepare s':>9} {'s/example':>9} {'CPU s/ex':>8} {'false alarms':>12} {'worst err vs ORT':>16}")
    for path in model_paths():
        if args.only not in str(path):
            continue
        name = path.stem if path.parent.name == "light" else path.parent.name
        prepared, per_example, cpu, alarms, worst = measure(path, args.examples)
        print(f"{name:34} {prepared:9.2f} {per_example:9.3f} {cpu:8.3f} {alarms:>6} of {args.examples:<3} "
              f"{worst:16.3g}", flush=True)


if __name__ == "__main__":
    main()
