"""How much of decimal-3's tolerance each runtime uses on camera frames (no false alarm from float32
rounding at production sizes), and what one example costs there.

Runs SuperResolutionNet(3) with its own (orthogonal, ReLU-gain) init at pixel scale, the setting
that uses the most of the tolerance, through the harness on each runtime (TorchScript, opset 17;
one example: two runs of one session, each against torch) at each frame, and prints the worst
run's max abs error, its share of the tolerance and the example's seconds.

    .venv/bin/python benchmarks/frame_margins.py [--frames 641x479,1921x1079] [--backends onnxruntime,openvino,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.backends import load_backend  # noqa: E402
from conformance.draw.model_cases import SUPERRES  # noqa: E402
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe  # noqa: E402
from conformance.engine.harness import Example, Harness, Target  # noqa: E402
from conformance.formats.onnx_export import ExportTarget  # noqa: E402

DEFAULT_BACKENDS = "onnxruntime,onnxruntime-ort,openvino,tract,mnn,ncnn"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default="641x479,1921x1079")
    parser.add_argument("--backends", default=DEFAULT_BACKENDS)
    args = parser.parse_args(argv)
    harness = Harness()
    for size in args.frames.split(","):
        width, height = (int(n) for n in size.split("x"))
        example = Example(3, WeightRecipe("orthogonal-relu", 0.0, 0),
                          InputRecipe((1, 1, height, width), "pixel", "integers", 0, 0), "initializers",
                          Deployment(static=False, runs=2))
        for name in args.backends.split(","):
            target = Target(load_backend(name), ExportTarget("torchscript", 17))
            start = time.perf_counter()
            try:
                result = harness.run(SUPERRES, target, example).result
            except Exception as exc:  # a runtime's error is a finding to print, not the end of the table
                print(f"{size} {name}: error {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
                continue
            verdict = "pass" if result else "FAIL"
            print(f"{size} {name}: {verdict}, max abs error {result.max_abs:.3g} ({result.margin:.1%} of the "
                  f"tolerance), {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
