"""Seconds per localization (conformance.localize.onnx_graph) on the shipped models, clean and with a
fault planted in one layer, against torch and as a bare ONNX model (reference runtime).

    .venv/bin/python benchmarks/localize_cost.py [--repeats 3]

Export time is printed apart: the suite exports once per structure and localizes failures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # 2-core machine: no spinning OpenMP threads
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from conformance.testing import faults  # noqa: E402
from conformance.backends.onnxrt import OnnxRuntimeBackend  # noqa: E402
from conformance.formats.onnx_export import ExportTarget, export  # noqa: E402
from conformance.localize.onnx_graph import localize  # noqa: E402
from conformance.models.srresnet import SRResNet  # noqa: E402
from conformance.models.superres import SuperResolutionNet  # noqa: E402
from conformance.draw.strategies import InputRecipe  # noqa: E402

MODELS = {
    "SuperResolutionNet(3) 1x1x224x224 (the tutorial's)":
        (lambda: SuperResolutionNet(3), InputRecipe((1, 1, 224, 224), "pixel", "photo", 0, 0, "chelsea")),
    "SRResNet(2 blocks, 8 ch) 1x3x24x24 (the suite's draws)":
        (lambda: SRResNet(2, 8), InputRecipe((1, 3, 24, 24), "unit", "photo", 0, 0, "astronaut")),
    "SRResNet(16 blocks, 64 ch) 1x3x32x32 (the paper's)":
        (lambda: SRResNet(16, 64), InputRecipe((1, 3, 32, 32), "unit", "photo", 0, 0, "astronaut")),
}
TARGETS = (ExportTarget("torchscript", 17), ExportTarget("dynamo", 18), ExportTarget("dynamo", 17))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median; default 3)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    ort = OnnxRuntimeBackend().prepare
    print(f"{'model':56} {'export':16} {'nodes':>5} {'export s':>9} {'clean s':>8} {'fault s':>8} {'bare s':>8}")
    for label, (factory, recipe) in MODELS.items():
        module = factory().eval()
        x = recipe.materialize()
        for target in TARGETS:
            start = time.perf_counter()
            model = export(module, (torch.from_numpy(x),), target, dynamic=[(0, 2, 3)])
            export_s = time.perf_counter() - start
            convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
            faulty = faults.perturbed_node(convs[1]).prepare  # every later layer inherits the error
            clean = timed(lambda: localize(model, [x], ort, module=module), args.repeats)
            fault = timed(lambda: localize(model, [x], faulty, module=module), args.repeats)
            bare = timed(lambda: localize(model, [x], faulty), args.repeats)
            print(f"{label[:56]:56} {target.id:16} {len(model.graph.node):>5} {export_s:>9.2f} "
                  f"{clean:>8.3f} {fault:>8.3f} {bare:>8.3f}")


if __name__ == "__main__":
    main()
