"""What ARM changes, per parity case: the ARM loopback device's outputs vs ONNX Runtime on this
x86 host (same model, same inputs, same ONNX Runtime release), worst over each case's examples.

Starts a private adb server and an ARM loopback device, runs the parity cases through it with
the device profile, and prints one row per device case (this file is also the pytest plugin that
collects the rows, from ``AdbDeviceBackend.pop_host_diff()`` after each test).

    .venv/bin/python benchmarks/arm_host_diff.py [pytest args, default: operators and models
                                                  at torchscript opset 17]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS_ENV = "CONFORMANCE_HOST_DIFF_ROWS"


def pytest_runtest_teardown(item):
    """(As a pytest plugin) write the device's worst host difference for this test."""
    target = getattr(item, "funcargs", {}).get("target")
    backend = getattr(target, "backend", None) or item.funcargs.get("backend")
    pop = getattr(backend, "pop_host_diff", None)
    diff = pop() if pop else None
    if diff is not None and os.environ.get(ROWS_ENV):
        with open(os.environ[ROWS_ENV], "a") as rows:
            rows.write(json.dumps({"test": item.nodeid, **diff.to_dict()}) + "\n")


def main() -> int:
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from conformance.device.emulator import LoopbackDevice
    from conformance.device.emulator.testing import private_adb_server

    args = sys.argv[1:] or ["cases/test_operators.py", "cases/test_models.py", "-m", "parity",
                            "--exporter", "torchscript", "--opset", "17"]
    with tempfile.TemporaryDirectory() as tmp, private_adb_server(), \
            LoopbackDevice(Path(tmp) / "sandbox", abi="arm64-v8a") as device:
        rows = Path(tmp) / "rows.jsonl"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), str(repo / "benchmarks")]),
                   OMP_WAIT_POLICY="PASSIVE", **{ROWS_ENV: str(rows)})
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *args, "--device", device.serial, "-p", "arm_host_diff",
             "--hypothesis-profile", "device", "--reports", str(Path(tmp) / "reports"),
             "-p", "no:cacheprovider", "--benchmark-disable", "-q"],
            cwd=repo, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        lines = rows.read_text().splitlines() if rows.exists() else []
    print(f"pytest exit {result.returncode}, {wall:.0f} s; ARM (neoverse-n1 under QEMU) vs host:")
    for line in lines:
        row = json.loads(line)
        name = row["test"].split("::")[-1]
        print(f"  {name:70s} max abs {row['max_abs']:.2e}  "
              f"{row['differing']:>8}/{row['elements']:<8} differ  ({row['host']})")
    if result.returncode:
        print(result.stdout[-2000:])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
