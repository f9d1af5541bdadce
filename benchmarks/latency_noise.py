"""Do latency verdicts flip on machine noise, and do they catch a real slowdown?

Times SuperResolutionNet(3) the way the latency case does (PyTorch eager reference, then ONNX
Runtime; warm-up rounds, then timed rounds), saves one run as the baseline, then:

* ``--reruns`` unchanged reruns with a CPU hog (one busy process per core) running:
  every "slower" verdict is a false failure;
* ``--reruns`` reruns of a runtime slowed by ``--slowdown`` percent (a wrapper that, after each
  call, runs the same model on an input with that share of the pixels: the same kind of work,
  on the same threads): every "slower" verdict is a catch.

Each rerun is judged by the gate's rule (``conformance.report.baseline.compare_latency``: the
process CPU time per call recorded the way ``conformance.pytest.timing.time_session`` records it,
beyond ``--max-slowdown`` and significant by a Mann-Whitney U test) and by the rule it replaced
(wall-time medians beyond the limit with quartiles apart), on the same measurements.

    .venv/bin/python benchmarks/latency_noise.py [--size 128] [--rounds 15] [--reruns 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the suite sets it (cases/conftest.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.pytest.timing import ROUNDS, WARMUP, with_cpu_time  # noqa: E402
from conformance.models.superres import SuperResolutionNet  # noqa: E402
from conformance.report.baseline import compare_latency  # noqa: E402
from conformance.report.latency_rows import latency_rows  # noqa: E402

GROUP = "superres-x3"


def ort_session(module: torch.nn.Module, size: int):
    """An ONNX Runtime session of the module (TorchScript exporter, opset 17)."""
    import io

    import onnxruntime

    buffer = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(1, 1, size, size),), buffer, dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {2: "h", 3: "w"}})
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def timed(call, rounds: int) -> list[float]:
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def one_run(module, session, x: np.ndarray, rounds: int, slowdown: float = 0.0) -> dict:
    """One run's timings, shaped like pytest-benchmark's JSON (with raw rounds)."""
    tensor = torch.from_numpy(x)
    side = round(x.shape[-1] * slowdown ** 0.5)  # the work grows with the pixels
    extra = x[..., :side, :side].copy() if slowdown else None

    def reference():
        with torch.no_grad():
            module(tensor)

    def backend():
        session.run(None, {"x": x})
        if extra is not None:
            session.run(None, {"x": extra})

    call, cpu = with_cpu_time(backend)
    ort = _bench("onnxruntime", timed(call, rounds))
    ort["extra_info"]["cpu_times"] = cpu[-rounds:]
    return {"benchmarks": [_bench("pytorch", timed(reference, rounds)), ort]}


def _bench(backend: str, data: list[float]) -> dict:
    q1, median, q3 = statistics.quantiles(data, n=4)
    return {"group": GROUP, "name": f"test_latency[{backend}]", "fullname": f"latency_noise::test_latency[{backend}]",
            "extra_info": {"backend": backend},
            "stats": {"median": statistics.median(data), "q1": q1, "q3": q3, "iqr": q3 - q1, "min": min(data),
                      "max": max(data), "ops": 1 / statistics.median(data), "rounds": len(data), "data": data}}


def verdicts(base: list[dict], run: dict, limit: float) -> tuple[dict, bool]:
    """The gate's verdict on the backend row, and the old rule's (raw medians, quartiles apart)."""
    rows = latency_rows(run)
    change = next(c for c in compare_latency(base, rows, limit) if c["backend"] == "onnxruntime")
    old, new = (next(r for r in rs if r["backend"] == "onnxruntime") for rs in (base, rows))
    old_rule = new["median"] / old["median"] - 1 > limit and new["q1"] > old["q3"]
    return change, old_rule


def hogs(count: int) -> list[subprocess.Popen]:
    """Busy processes, one per core: the "loaded machine" of the issue."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def phase(title: str, base, module, session, x, args, slowdown: float = 0.0) -> tuple[int, int]:
    print(f"\n{title}")
    gate_hits = old_hits = 0
    for i in range(args.reruns):
        change, old_rule = verdicts(base, one_run(module, session, x, args.rounds, slowdown), args.max_slowdown / 100)
        gate_hits += change["verdict"] == "slower"
        old_hits += old_rule
        print(f"  rerun {i + 1:2d}: wall {change['raw_change']:+7.1%}, CPU {change['change']:+7.1%}, "
              f"U p={change['p_value']:.2g} -> gate: {change['verdict']:6s} old rule: {'slower' if old_rule else 'same'}")
    return gate_hits, old_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="input side (1x1xSxS). Default: 128")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"timed rounds per case. Default: {ROUNDS} (the suite's)")
    parser.add_argument("--reruns", type=int, default=10, help="reruns per phase. Default: 10")
    parser.add_argument("--slowdown", type=float, default=25.0, help="injected slowdown, percent. Default: 25")
    parser.add_argument("--max-slowdown", type=float, default=10.0, help="the gate's limit, percent. Default: 10")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="busy processes. Default: one per core")
    args = parser.parse_args()

    torch.manual_seed(0)
    module = SuperResolutionNet(3).eval()
    session = ort_session(module, args.size)
    x = np.random.default_rng(0).uniform(0, 255, (1, 1, args.size, args.size)).astype(np.float32)
    print(f"SuperResolutionNet(3) at 1x1x{args.size}x{args.size}; {args.rounds} rounds (+{WARMUP} warm-up) per case; "
          f"limit {args.max_slowdown:g}%; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{os.cpu_count()} cores")
    base = latency_rows(one_run(module, session, x, args.rounds))
    print("baseline: " + ", ".join(f"{r['backend']} {r['median'] * 1e3:.2f} ms (IQR {r['iqr'] * 1e3:.2f})" for r in base))

    procs = hogs(args.hogs)
    try:
        time.sleep(0.5)  # let the hogs get going
        false_gate, false_old = phase(f"unchanged, {args.hogs} CPU hog(s) running:", base, module, session, x, args)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    caught_gate, caught_old = phase(f"ONNX Runtime slowed by {args.slowdown:g}%:", base, module, session, x, args,
                                    slowdown=args.slowdown / 100)
    print(f"\nfalse failures under load: gate {false_gate}/{args.reruns} (old rule {false_old}/{args.reruns})")
    print(f"{args.slowdown:g}% slowdown caught:      gate {caught_gate}/{args.reruns} (old rule {caught_old}/{args.reruns})")


if __name__ == "__main__":
    main()
