"""What the diagnosis of a failure costs: a failing SuperResolutionNet(3) example (the tutorial's
1x1x224x224 at pixel scale, and a drawn-size 1x1x32x32) run once, then diagnosed, on seeded
faults whose diagnoses take different paths (every variation and onnx's reference evaluator for
a kernel fault; one rerun for state; a variant for threads). Prints medians over ``--repeat``.

    python benchmarks/diagnosis_cost.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from conformance.backends.onnx_api import OnnxApiBackend
from conformance.draw.model_cases import SUPERRES
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe
from conformance.engine.diagnosis import diagnose
from conformance.engine.harness import Example, Harness, Target
from conformance.formats.onnx_export import ExportTarget

FAULTS = ("OffBy2e3", "StateAfterRuns", "WrongWithThreads")


def measure(fault: str, shape, repeat: int) -> tuple[float, float, str, int]:
    backend = OnnxApiBackend(f"conformance.testing.faults:{fault}")
    example = Example(3, WeightRecipe("orthogonal-relu", 0.0, 0), InputRecipe(shape, "pixel", "integers", 0, 0),
                      "initializers", Deployment(False, 3))
    harness = Harness()
    harness.run(SUPERRES, Target(backend, ExportTarget("torchscript", 17)), example)  # export, warm caches
    runs, diagnoses, evaluator = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = harness.run(SUPERRES, Target(backend, ExportTarget("torchscript", 17)), example)
        runs.append(time.perf_counter() - start)
        found = diagnose(harness, outcome)
        diagnoses.append(found.seconds)
        evaluator.append(sum(t.seconds for t in found.trials if "reference evaluator" in t.variation))
    return (statistics.median(runs), statistics.median(diagnoses), statistics.median(evaluator), found.kind,
            len(found.trials))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'fault':18} {'input':16} {'example s':>10} {'diagnosis s':>12} {'of it onnx ref':>15} {'ratio':>6}"
          "  cause, reruns")
    for shape in ((1, 1, 224, 224), (1, 1, 32, 32)):
        for fault in FAULTS:
            run, diag, ref, kind, trials = measure(fault, shape, args.repeat)
            print(f"{fault:18} {'x'.join(map(str, shape)):16} {run:10.3f} {diag:12.3f} {ref:15.3f} {diag / run:6.2f}"
                  f"  {kind}, {trials}")


if __name__ == "__main__":
    main()
