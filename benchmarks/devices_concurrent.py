"""Two loopback devices served concurrently (one pytest-xdist worker each, the default with two
``--device`` serials) vs one after another (``-n 0``), side by side.

Starts a private adb server and two loopback devices, then alternates the two ways of running
the same narrow device selection, ``--repeats`` times each, and prints the wall times and their
medians. The loopback devices compute on this machine's own cores (a phone brings its own), so
here the gain is bounded by the cores the devices and workers share.

    .venv/bin/python benchmarks/devices_concurrent.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from conformance.device.emulator import LoopbackDevice  # noqa: E402
from conformance.device.emulator.testing import private_adb_server  # noqa: E402

SELECTION = ["cases/test_operators.py", "cases/test_models.py", "-m", "parity", "--exporter", "torchscript",
             "--opset", "17", "--backend", "onnxruntime"]
NARROW = "relu or pixel_shuffle or conv2d or superres"


def run(serials: list[str], extra: list[str], reports: Path, keyword: str = NARROW) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pytest", *SELECTION, *(["-k", keyword] if keyword else []), "-q", "-p", "no:cacheprovider", "--benchmark-disable",
           "--reports", str(reports), *[a for s in serials for a in ("--device", s)], *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-k", dest="keyword", default=NARROW,
                        help=f"which device cases (pytest -k; '' for every operator and model). Default: {NARROW!r}")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="conformance-devices-bench-"))
    times: dict[str, list[float]] = {"concurrent": [], "one after another": []}
    with private_adb_server(), LoopbackDevice(root / "a") as a, LoopbackDevice(root / "b") as b:
        serials = [a.serial, b.serial]
        run(serials, ["-n", "0"], root / "warmup", args.keyword)  # the runners' first start and the artifact cache
        for i in range(args.repeats):
            for label, extra in (("concurrent", []), ("one after another", ["-n", "0"])):
                wall, rc = run(serials, extra, root / f"{label[:3]}{i}", args.keyword)
                times[label].append(wall)
                print(f"{label} #{i + 1}: {wall:.1f} s (rc {rc})", flush=True)
    conc, seq = (statistics.median(times[k]) for k in ("concurrent", "one after another"))
    print(f"\nmedian of {args.repeats}: concurrent {conc:.1f} s, one after another {seq:.1f} s; "
          f"concurrent/sequential {conc / seq:.2f} ({os.cpu_count()} cores, shared with other sessions)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
