"""Examples per second on the device path vs ONNX Runtime on the host, side by side.

Starts a private adb server and a loopback device, then alternates rounds of N runs of a
small Conv model (fresh inputs each run) on the device backend and on a host ORT session, and
prints medians. Also prints adb push latency and the device round trip.

    .venv/bin/python benchmarks/device_throughput.py [--rounds 7] [--runs 300]
    .venv/bin/python benchmarks/device_throughput.py --abi arm64-v8a [--cold] --rounds 3 --runs 30

With ``--abi arm64-v8a`` the device runs under QEMU in the aarch64 root: it also prints the
root's set-up time (cached; with ``--cold`` also a fresh build into a temporary folder), the
runner's start, the cost of one example at the given shape and at SuperResolutionNet's size, and
how far the ARM outputs are from the host's x86 ones.
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
from conformance.device.emulator import LoopbackDevice, arm  # noqa: E402
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


def arm_setup(cold: bool) -> Path:
    """Time the aarch64 root: a fresh build (``cold``) and the cached check; the cached root."""
    if cold:
        with tempfile.TemporaryDirectory(prefix="arm-root-cold-") as tmp:
            start = time.perf_counter()
            arm.ensure_root(Path(tmp) / "root", progress=lambda _line: None)
            print(f"aarch64 root, cold build (apt + pip downloads, unpack, first import): "
                  f"{time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    root = arm.ensure_root()
    print(f"aarch64 root, cached (the default cache folder {root}): "
          f"{(time.perf_counter() - start) * 1e3:.0f} ms")
    return root


def arm_examples(serial: str, adb, shape: tuple) -> None:
    """Seconds per example on the ARM device at ``shape`` and at SuperResolutionNet's size,
    and the device-vs-host difference (host_diff on, as in a parity run)."""
    for label, model, x_shape in (
            ("Conv 3->4 3x3", conv_model(), shape),
            ("Conv 1->64 5x5 (SuperResolutionNet's first layer)", conv_model(1, 64, 5),
             (1, 1, 224, 224))):
        backend = AdbDeviceBackend(serial, adb=adb, timeout=300)
        start = time.perf_counter()
        session = backend.prepare(model)
        started = time.perf_counter() - start
        x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
        session.run([x])
        times = []
        for _ in range(5):
            start = time.perf_counter()
            session.run([x])
            times.append(time.perf_counter() - start)
        diff = backend.pop_host_diff()
        backend.close()
        print(f"  ARM, {label} on {x_shape}: runner start + load {started:.1f} s, "
              f"{statistics.median(times) * 1e3:.1f} ms per example (round trip, host diff "
              f"included); vs {diff.host}: max abs {diff.max_abs:.2e}, "
              f"{diff.differing}/{diff.elements} elements differ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--shape", default="1,3,8,8", help="input shape (default 1,3,8,8)")
    parser.add_argument("--abi", choices=("x86_64", "arm64-v8a"), default="x86_64")
    parser.add_argument("--cold", action="store_true", help="arm64-v8a: also time a fresh root")
    args = parser.parse_args()
    arm_root = arm_setup(args.cold) if args.abi == "arm64-v8a" else None
    shape = tuple(int(d) for d in args.shape.split(","))
    model = conv_model()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(np.float32) for _ in range(args.runs)]
    host = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    with tempfile.TemporaryDirectory() as tmp, private_adb_server() as adb, \
            LoopbackDevice(os.path.join(tmp, "sandbox"), abi=args.abi, arm_root=arm_root,
                           preinstalled=arm_root is not None) as device:
        backend = AdbDeviceBackend(device.serial, adb=adb, timeout=300, host_diff=False)
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
        if arm_root:
            arm_examples(device.serial, adb, shape)

    dev, hst = statistics.median(device_rates), statistics.median(host_rates)
    print(f"Conv 3->4 3x3 on {shape}, {args.rounds} rounds x {args.runs} runs, medians "
          f"({args.abi} device):")
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
