"""The runtime bundle on a bare loopback device: sizes, push times, runner start, per-example
cost of ONNX Runtime and LiteRT on the device, and their differences from the same runtimes here.

    .venv/bin/python benchmarks/device_bundle.py --abi x86_64
    .venv/bin/python benchmarks/device_bundle.py --abi arm64-v8a [--runs 10] [--cold-build]

Per ABI: the bundle's unpacked and packed size (building it once if the cache lacks it;
``--cold-build`` times a fresh build into a temporary cache), the cold push (a fresh device:
df, loader probe, parts, sha256, unpack) and the warm start (a second run: nothing pushed), the
runner's start (adb shell -> loader -> Python -> numpy + onnxruntime -> hello), then medians of
one example (round trip included) for a Conv 3->16 at 1x3x64x64 on each device runtime, and the
largest difference from this host's ONNX Runtime and LiteRT for the same program and input.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see conftest.py)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.backends.adb import AdbDeviceBackend  # noqa: E402
from conformance.device import bundle  # noqa: E402
from conformance.device.emulator import LoopbackDevice  # noqa: E402
from conformance.device.emulator.testing import conv_model, private_adb_server  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def median_run(session, x, runs: int) -> float:
    session.run([x])  # warm
    times = []
    for _ in range(runs):
        _, seconds = timed(lambda: session.run([x]))
        times.append(seconds)
    return statistics.median(times)


def tflite_conv(weight: np.ndarray, bias: np.ndarray, shape) -> bytes:
    import torch

    from conformance.backends.litert import LiteRtBackend

    conv = torch.nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        conv.bias.copy_(torch.from_numpy(bias))
    return LiteRtBackend().export(conv, (torch.zeros(shape),))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--abi", default="x86_64", choices=sorted(bundle.ABIS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-build", action="store_true")
    args = parser.parse_args()
    if args.cold_build:
        with tempfile.TemporaryDirectory() as cache:
            _, seconds = timed(lambda: bundle.ensure(args.abi, root=Path(cache), say=lambda _l: None))
        print(f"cold bundle build ({args.abi}): {seconds:.0f} s")
    found = bundle.ensure(args.abi)
    m = found.manifest
    print(f"bundle {found.name}: {m['unpacked_bytes'] / 2**20:.0f} MiB unpacked, "
          f"{m['compressed_bytes'] / 2**20:.1f} MiB packed ({m['compressed_bytes'] / 1e6:.0f} MB); "
          f"runtimes {m['runtimes']}")
    model = conv_model(3, 16, 3, seed=1)
    weight, bias = (np.frombuffer(t.raw_data, np.float32).reshape(t.dims).copy()
                    for t in model.graph.initializer)
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    program = tflite_conv(weight, bias, x.shape)
    with tempfile.TemporaryDirectory() as tmp, private_adb_server(timeout=120) as adb, \
            LoopbackDevice(os.path.join(tmp, "sandbox"), abi=args.abi) as dev:
        adb.connect(dev.serial)
        cold = AdbDeviceBackend(dev.serial, adb=adb, timeout=60, progress=lambda _l: None)
        _, push = timed(cold._ensure_started)
        cold.close()
        print(f"cold start (push {found.size / 1e6:.0f} MB, unpack, start): {push:.1f} s")
        starts = []
        for _ in range(3):
            warm = AdbDeviceBackend(dev.serial, adb=adb, timeout=60)
            _, seconds = timed(warm._ensure_started)
            starts.append(seconds)
            warm.close()
        print(f"warm start (nothing pushed; runner start): median {statistics.median(starts):.2f} s "
              f"of {[round(s, 2) for s in starts]}")
        from conformance.backends.adb_litert import AdbLiteRtBackend

        device = AdbDeviceBackend(dev.serial, adb=adb, timeout=60)
        try:
            for label, session in (("onnxruntime", device.prepare(model)),
                                   ("litert", AdbLiteRtBackend(device).load(program))):
                per = median_run(session, x, args.runs)
                diff = device.last_host_diff
                print(f"{label:12s} one example 1x3x64x64 Conv 3->16: {per * 1e3:.1f} ms median of "
                      f"{args.runs}; vs {diff.host}: max abs {diff.max_abs:.3g}, "
                      f"{diff.differing}/{diff.elements} elements differ")
        finally:
            device.close()
    print(f"program sha {hashlib.sha256(program).hexdigest()[:12]}; machine shared by other sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
