"""SuperResolutionNet(3) int8 beside float32 on the tutorial's 1x1x224x224 input, per runtime, in
one process with the rounds interleaved (float32, int8, float32, ...) so load on a shared machine
hits both alike. Prints per runtime: median latencies, the int8/float32 ratio, the int8 output's
SQNR against the float32 model, and its largest error in steps against the fake-quant reference
(the converted PT2E module in torch).

    .venv/bin/python benchmarks/int8_latency.py [RUNTIME ...]   (default: onnxruntime onnxruntime-ort)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROUNDS = 20


def main(names: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(f"{'runtime':<18}{'float32 ms':>12}{'int8 ms':>10}{'int8/f32':>10}{'SQNR dB':>9}{'max steps':>11}{'mean steps':>12}")
    for name in names:
        try:
            row(name)
        except Exception as exc:  # one runtime's failure is a row, not the end of the table
            print(f"{name:<18} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}", flush=True)
    return 0


def row(name: str) -> None:
    import torch

    from conformance.backends import load_backend
    from conformance.backends.base import ProgramBackend
    from conformance.engine.qcompare import qcompare
    from conformance.formats.onnx_export import ExportTarget, export
    from conformance.pipeline.tutorial_int8 import int8_session, tutorial_for

    backend = load_backend(name)
    tutorial = tutorial_for(backend)
    floats = tutorial.float_output()
    with torch.no_grad():
        fake_quant = tutorial.converted(torch.from_numpy(tutorial.x)).numpy()
    if isinstance(backend, ProgramBackend):
        f32 = backend.load(backend.export(tutorial.module, (torch.from_numpy(tutorial.x),), None))
    else:
        f32 = backend.prepare(export(tutorial.module, (torch.from_numpy(tutorial.x),), ExportTarget("torchscript", 17),
                                     dynamic=[()]))
    i8 = int8_session(backend, tutorial)
    if i8 is None:
        print(f"{name:<18} no int8 path here")
        return
    out = i8.run([tutorial.x])[0]
    verdict = qcompare(out, fake_quant, tutorial.output_q.scale, tutorial.output_q.zero_point, float_output=floats)
    times = {"f32": [], "i8": []}
    for _ in range(2):  # warm-up
        f32.run([tutorial.x]), i8.run([tutorial.x])
    for _ in range(ROUNDS):
        for key, session in (("f32", f32), ("i8", i8)):
            start = time.perf_counter()
            session.run([tutorial.x])
            times[key].append(time.perf_counter() - start)
    f, i = statistics.median(times["f32"]) * 1e3, statistics.median(times["i8"]) * 1e3
    print(f"{name:<18}{f:>12.1f}{i:>10.1f}{i / f:>10.2f}{verdict.sqnr:>9.1f}{verdict.max_steps:>11.2f}"
          f"{verdict.mean_steps:>+12.4f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["onnxruntime", "onnxruntime-ort"]))
