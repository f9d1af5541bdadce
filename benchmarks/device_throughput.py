"""Examples per second on the device path vs ONNX Runtime on the host, side by side.

Starts a private adb server and a loopback device, then alternates rounds of N runs of a
small Conv model (fresh inputs each run) on the device backend and on a host ORT session, and
prints medians. Also prints adb push latency and the device round trip.

    .venv/bin/python benchmarks/device_throughput.py [--rounds 7] [--runs 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before torch loads: OpenMP threads that spin after each torch op starve the adb server, the
# loopback device and the runner on a 2-core machine (measured: 38 vs 720 parity examples/s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.backends.adb import AdbDeviceBackend  # noqa: E402
from conformance.device.emulator import LoopbackDevice  # noqa: E402
from conformance.device.emulator.testing import conv_model, private_adb_server  # noqa: E402


def rate(run, inputs) -> float:
    start = time.perf_counter()
    for x in inputs:
        run(x)
    return len(inputs) / (time.perf_counter() - start)


def parity_rate(run, inputs, weight, bias) -> float:
    """Examples/s of a parity-like loop: torch reference + backend run + decimal-3 check."""
    import torch

    w, b = torch.from_numpy(weight.copy()), torch.from_numpy(bias.copy())
    start = time.perf_counter()
    for x in inputs:
        with torch.no_grad():
            want = torch.nn.functional.conv2d(torch.from_numpy(x), w, b, padding=1).numpy()
        np.testing.assert_almost_equal(run(x), want, decimal=3)
    return len(inputs) / (time.perf_counter() - start)


def push_latency(adb, serial, size: int, tmp: str, repeats: int = 5) -> float:
    path = os.path.join(tmp, f"blob{size}")
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        adb.push(serial, path, f"/data/local/tmp/bench/blob{size}_{i}")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--shape", default="1,3,8,8", help="input shape (default 1,3,8,8)")
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.shape.split(","))
    model = conv_model()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(np.float32) for _ in range(args.runs)]
    host = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    with tempfile.TemporaryDirectory() as tmp, private_adb_server() as adb, \
            LoopbackDevice(os.path.join(tmp, "sandbox")) as device:
        backend = AdbDeviceBackend(device.serial, adb=adb)
        start = time.perf_counter()
        session = backend.prepare(model)
        first_prepare = time.perf_counter() - start
        session.run([inputs[0]])
        device_rates, host_rates = [], []
        for _ in range(args.rounds):
            device_rates.append(rate(lambda x: session.run([x]), inputs))
            host_rates.append(rate(lambda x: host.run(None, {"x": x}), inputs))
        weight, bias = (np.frombuffer(t.raw_data, np.float32).reshape(t.dims)
                        for t in model.graph.initializer)
        parity = {"device": [], "host": []}
        for _ in range(args.rounds):
            parity["device"].append(parity_rate(lambda x: session.run([x])[0], inputs,
                                                weight, bias))
            parity["host"].append(parity_rate(lambda x: host.run(None, {"x": x})[0], inputs,
                                              weight, bias))
        on_device = statistics.median(session.time([inputs[0]], warmup=10, iterations=200))
        push_small = push_latency(adb, device.serial, 4 * 1024, tmp)
        push_big = push_latency(adb, device.serial, 300 * 1024, tmp)
        backend.close()

    dev, hst = statistics.median(device_rates), statistics.median(host_rates)
    print(f"Conv 3->4 3x3 on {shape}, {args.rounds} rounds x {args.runs} runs, medians:")
    print(f"  device path (adb forward, loopback): {dev:10.0f} examples/s "
          f"({1e3 / dev:.3f} ms round trip)")
    print(f"  ONNX Runtime on the host:           {hst:10.0f} examples/s "
          f"({1e3 / hst:.3f} ms)")
    print(f"  host/device ratio: {hst / dev:.1f}x")
    pdev, phst = statistics.median(parity["device"]), statistics.median(parity["host"])
    print(f"  parity-like loop (torch reference + run + decimal-3 check): device "
          f"{pdev:.0f}/s, host ORT {phst:.0f}/s, time ratio {phst / pdev:.2f}x")
    print(f"  (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']})")
    print(f"  run time measured on the device: {on_device * 1e6:.1f} us")
    print(f"  first prepare (connect, push runner, start, push + load model): "
          f"{first_prepare * 1e3:.0f} ms")
    print(f"  adb push 4 KiB: {push_small * 1e3:.1f} ms, 300 KiB: {push_big * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
