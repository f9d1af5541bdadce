"""What each of issue 12's additions costs per example, measured here.

- inputs: making one input array, synthetic vs photo crop vs special values;
- large batch: one superres example (torch reference + ONNX Runtime + compare) at the largest
  ordinary draw vs a batch of 16 under the same element cap;
- repeated run: one more run of an already prepared session on a new input, plus its compare;
- static export: a TorchScript export and an ONNX Runtime session per drawn shape (a static
  model serves one shape), vs the dynamic export made once per structure;
- compare: the extra NaN/Inf bookkeeping on a special-values output.

    .venv/bin/python benchmarks/catch_costs.py [--repeats 15]
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from conformance.backends.onnxrt import OnnxRuntimeBackend  # noqa: E402
from conformance.engine.compare import compare  # noqa: E402
from conformance.formats.onnx_export import ExportTarget, export  # noqa: E402
from conformance.models.photos import planes  # noqa: E402
from conformance.models.superres import SuperResolutionNet  # noqa: E402
from conformance.draw.strategies import ARITHMETIC_SAFE, InputRecipe  # noqa: E402

TS17 = ExportTarget("torchscript", 17)


def ms(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def example(module, session, x):
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    return compare(session.run([x])[0], expected)


def inputs_section(repeats: int) -> None:
    start = time.perf_counter()
    planes.cache_clear()
    for name in ("chelsea", "astronaut", "coffee", "camera", "grace_hopper", "rocket", "coins", "moon",
                 "immunohistochemistry", "brick"):
        planes(name)
    print(f"decoding all 10 photos once per process: {1e3 * (time.perf_counter() - start):.0f} ms")
    for shape in ((2, 1, 72, 72), (2, 64, 24, 24), (16, 1, 18, 18)):
        row = {d: ms(InputRecipe(shape, "pixel" if d != "special" else "unit", d, 7, 0,
                                 "chelsea" if d == "photo" else "", ARITHMETIC_SAFE if d == "special" else ()
                                 ).materialize, repeats)
               for d in ("uniform", "photo", "special")}
        print(f"input {str(shape):18} " + "  ".join(f"{d} {v:.3f} ms" for d, v in row.items()))


def models_section(repeats: int) -> None:
    module = SuperResolutionNet(3).eval()
    ort = OnnxRuntimeBackend()
    dynamic = export(module, (torch.zeros(2, 1, 16, 16),), TS17, dynamic=[(0, 2, 3)])
    session = ort.prepare(dynamic)
    for shape in ((2, 1, 72, 72), (16, 1, 25, 25), (2, 1, 36, 36), (16, 1, 12, 12)):
        x = InputRecipe(shape, "pixel", "integers", 1, 0).materialize()
        print(f"superres example {str(shape):16} {ms(lambda: example(module, session, x), repeats):7.1f} ms"
              f"   (one more run of the same session + compare: {ms(lambda: compare(session.run([x])[0], session.run([x])[0]), repeats) / 2:.1f} ms)")
    for shape in ((2, 1, 36, 36),):
        def static_example():
            model = export(module, (torch.zeros(shape),), TS17, dynamic=[()])
            return ort.prepare(model)
        print(f"static export + session per shape {shape}: {ms(static_example, max(3, repeats // 3)):.0f} ms (TorchScript)")
    conv = torch.nn.Conv2d(16, 16, 3).eval()
    print(f"static export + session per shape, Conv2d(16, 16, 3): "
          f"{ms(lambda: ort.prepare(export(conv, (torch.zeros(2, 16, 20, 20),), TS17, dynamic=[()])), repeats):.0f} ms")
    start = time.perf_counter()
    export(conv, (torch.zeros(2, 16, 20, 20),), ExportTarget("dynamo", 18), dynamic=[()])
    print(f"static export per shape, Conv2d, dynamo exporter: {1e3 * (time.perf_counter() - start):.0f} ms")


def drawn_sizes_section() -> None:
    """Mean elements per drawn input, with and without batches 8/16: the work per example (a
    timing proxy that does not depend on what else runs on the machine)."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from conformance.draw import strategies
    from conformance.draw.model_cases import MODELS
    from conformance.draw.operators import OPERATORS

    def mean_elements(case, large) -> float:
        sizes = []
        original = strategies.LARGE_BATCHES

        @settings(max_examples=600, database=None, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def draw(data):
            structure = data.draw(case.structures())
            sizes.append(int(np.prod(data.draw(case.input_shapes(structure)))))

        strategies.LARGE_BATCHES = large  # read by shapes() at each call: the same draws otherwise
        try:
            draw()
        finally:
            strategies.LARGE_BATCHES = original
        return float(np.mean(sizes))

    for case in OPERATORS + MODELS:
        before, after = mean_elements(case, ()), mean_elements(case, (8, 16))
        print(f"mean input elements {case.name:14} batch 1-4: {before:9.0f}   with 8/16: {after:9.0f}"
              f"   ({after / before:.2f}x)")


def compare_section(repeats: int) -> None:
    x = InputRecipe((2, 64, 24, 24), "unit", "uniform", 1, 0).materialize()
    s = InputRecipe((2, 64, 24, 24), "unit", "special", 1, 0, "", ARITHMETIC_SAFE).materialize()
    print(f"compare (2,64,24,24): finite {ms(lambda: compare(x, x), repeats):.2f} ms, "
          f"special values {ms(lambda: compare(s, s), repeats):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="runs per measurement (median; default 15)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    np.random.seed(0)
    inputs_section(args.repeats)
    models_section(args.repeats)
    compare_section(args.repeats)
    drawn_sizes_section()


if __name__ == "__main__":
    main()
