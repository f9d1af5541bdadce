"""Every installed runtime on the tutorial input, side by side with torch eager and ONNX Runtime.

SuperResolutionNet(3) (seeded orthogonal init) on 1x1x224x224. Per runtime: version, what its
extra adds to the environment (the distributions it pulls beyond the base install, summed from
their installed files), the cost of making its artifact (converting/compiling the ONNX model,
or exporting the torch program), max abs error vs torch at pixel scale (0-255 integers) and
unit scale ([0,1) uniform), and the median latency of repeated runs.

    .venv/bin/python benchmarks/runtimes.py [--runs 10] [--only openvino,tract,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Before torch loads: spinning OpenMP threads starve the other runtimes on a small machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.backends import RUNTIMES, BackendError, load_backend  # noqa: E402
from conformance.engine.compare import compare  # noqa: E402
from conformance.formats.onnx_export import ExportTarget, export  # noqa: E402
from conformance.models import SuperResolutionNet  # noqa: E402
from conformance.draw.strategies import InputRecipe  # noqa: E402

from install_size import extra_sizes  # noqa: E402  (benchmarks/install_size.py)

SHAPE = (1, 1, 224, 224)
EXACT = ["openvino", "openvino-default", "tract", "mnn", "mnn-default", "ncnn", "ncnn-default",
         "executorch", "litert", "litert-reference"]


def median_ms(run, x, runs: int) -> float:
    run(x)  # warm-up: first runs allocate, pack weights and pick kernels
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def session_for(name, net, onnx_model):
    """(backend, session, seconds to make it): ONNX runtimes prepare (convert, compile) the exported
    model; program runtimes export the torch module themselves (per shape, or with dynamic H/W)."""
    backend = load_backend(name)
    if backend.format == "onnx":
        return (backend, *timed(lambda: backend.prepare(onnx_model)))
    dynamic = None if backend.per_shape else [(2, 3)]  # ExecuTorch: one program for any H, W
    artifact, seconds = timed(lambda: backend.export(net, (torch.zeros(SHAPE),), dynamic))
    return backend, backend.load(artifact), seconds


def row(name, version, size, cost, errors, latency, ort_ms, torch_ms) -> str:
    pixel, unit = errors
    return (f"| {name} | {version} | {size} | {cost} | {pixel:.3g} | {unit:.3g} | {latency:.1f} | "
            f"{latency / ort_ms:.2f}x | {latency / torch_ms:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per runtime (default 10)")
    parser.add_argument("--only", default="", help="comma-separated runtime names (default: every installed one)")
    args = parser.parse_args()
    names = [n for n in (args.only.split(",") if args.only else EXACT) if n]
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        parser.error(f"unknown runtime(s) {unknown}; valid: {', '.join(RUNTIMES)}")

    torch.manual_seed(0)
    net = SuperResolutionNet(3).eval()
    inputs = {scale: InputRecipe(SHAPE, scale, "integers" if scale == "pixel" else "uniform", 0, 0).materialize()
              for scale in ("pixel", "unit")}
    with torch.no_grad():
        expected = {s: net(torch.from_numpy(x)).numpy() for s, x in inputs.items()}
    model, onnx_s = timed(lambda: export(net, (torch.zeros(2, 1, 13, 17),), ExportTarget("torchscript", 17),
                                         dynamic=[(0, 2, 3)]))
    sizes = extra_sizes()

    def torch_run(x):
        with torch.no_grad():
            return net(torch.from_numpy(x))

    torch_ms = median_ms(torch_run, inputs["pixel"], args.runs)
    _, ort, ort_s = session_for("onnxruntime", net, model)
    ort_ms = median_ms(lambda x: ort.run([x]), inputs["pixel"], args.runs)
    ort_err = [compare(ort.run([inputs[s]])[0], expected[s]).max_abs for s in ("pixel", "unit")]
    print(f"SuperResolutionNet(3) on {SHAPE}; threads: {torch.get_num_threads()} (torch); "
          f"load average {os.getloadavg()[0]:.1f} at start; "
          f"{args.runs} timed runs after one warm-up; torch -> ONNX (TorchScript, opset 17) export: {onnx_s:.2f} s")
    print("| runtime | version | install (extra) | artifact cost | max err pixel | max err unit | median ms "
          "| vs ORT | vs torch |")
    print("|---|---|---|---|---|---|---|---|---|")
    import onnxruntime

    print(row("torch eager", torch.__version__, "base", "-", (0.0, 0.0), torch_ms, ort_ms, torch_ms))
    print(row("onnxruntime", onnxruntime.__version__, "base", f"{ort_s:.3g} s", ort_err, ort_ms, ort_ms, torch_ms))
    for name in names:
        try:
            backend, session, cost = session_for(name, net, model)
            errors = [compare(session.run([inputs[s]])[0], expected[s]).max_abs for s in ("pixel", "unit")]
            latency = median_ms(lambda x: session.run([x]), inputs["pixel"], args.runs)
        except BackendError as exc:
            print(f"| {name} | - | - | - | - | - | - | - | {exc} |")
            continue
        version = next(iter(backend.versions().values()))
        extra = RUNTIMES[name][0]
        print(row(name, version, sizes.get(extra, "?"), f"{cost:.3g} s", errors, latency, ort_ms, torch_ms))


if __name__ == "__main__":
    main()
