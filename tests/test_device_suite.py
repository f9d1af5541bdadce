"""The whole suite through the device path: ``pytest -m parity --device=127.0.0.1:PORT``
against the loopback device and a private adb server, with the real adb client."""

from __future__ import annotations

import json

import pytest

from conformance.device.emulator import LoopbackDevice
from conformance.device.emulator.testing import adb_available, private_adb_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not adb_available(), reason="adb is not on PATH (apt-get install adb)"),
]

NARROW = ("--exporter", "torchscript", "--opset", "17")


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    # The nested pytest inherits ANDROID_ADB_SERVER_PORT: it talks to this private server.
    with private_adb_server(), LoopbackDevice(tmp_path_factory.mktemp("sandbox")) as dev:
        yield dev


def test_parity_runs_on_the_device(suite, device, tmp_path):
    result = suite("cases/test_operators.py", "cases/test_models.py", "-m", "parity",
                   "-k", "relu or pixel_shuffle or tutorial", "--device", device.serial, *NARROW)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-2000:]
    serial_id = "adb-" + device.serial.replace(":", "_")
    report = json.loads((tmp_path / "reports" / "parity.json").read_text())
    device_cases = [c for c in report["cases"] if c["backend"] == serial_id]
    assert device_cases and all(c["outcome"] == "passed" and c["examples"] >= 1 for c in device_cases)
    assert any(c["backend"] == "onnxruntime" for c in report["cases"])  # --device adds, never replaces


def test_unknown_serial_is_one_usage_error_listing_devices(suite, device):
    result = suite("cases", "-m", "parity", "--device", "no-such-phone", timeout=120)
    assert result.returncode == 4
    assert "no-such-phone is not known to adb; devices adb sees: " in result.stderr
    assert device.serial in result.stderr
    assert "Traceback" not in result.stderr


def test_device_latency_is_measured_on_the_device(suite, device, tmp_path):
    out_json = tmp_path / "bench.json"
    result = suite("cases/test_latency.py", "--device", device.serial, *NARROW,
                   "--benchmark-enable", f"--benchmark-json={out_json}")
    assert result.returncode == 0, result.stdout[-3000:]
    benches = {b["params"]["latency_runner"]: b for b in json.loads(out_json.read_text())["benchmarks"]}
    device_rows = [b for name, b in benches.items() if name.startswith("adb-")]
    assert len(device_rows) == 1 and device_rows[0]["extra_info"]["measured_on"] == "device"
    assert device_rows[0]["stats"]["rounds"] == 15 and device_rows[0]["stats"]["median"] > 0
    assert benches["pytorch"]["extra_info"]["measured_on"] == "host"


def test_device_lost_mid_run_fails_its_cases_fast_and_others_stand(suite, tmp_path, monkeypatch):
    """Unplug the device after its first case: its remaining cases fail with a clear message
    within the timeout, the run ends, ONNX Runtime's results stand."""
    with private_adb_server(), LoopbackDevice(tmp_path / "sandbox") as dev:
        monkeypatch.setenv("CONFORMANCE_KILL_PGID", str(dev.proc.pid))
        result = suite("cases/test_operators.py", "-m", "parity", "-k", "relu or pixel_shuffle",
                       "--device", dev.serial, "--device-timeout", "10", "-p", "tests.kill_device_plugin",
                       "--backend", "onnxruntime", *NARROW, "-p", "no:randomly", timeout=180)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    report = json.loads((tmp_path / "reports" / "parity.json").read_text())
    by_backend = {}
    for case in report["cases"]:
        by_backend.setdefault(case["backend"], []).append(case["outcome"])
    assert set(by_backend["onnxruntime"]) == {"passed"}
    device_outcomes = next(v for k, v in by_backend.items() if k.startswith("adb-"))
    assert device_outcomes[0] == "passed"  # the case that ran before the unplug
    failed = [line for line in out.splitlines() if line.startswith("FAILED") and "adb-" in line]
    assert failed and all("adb-" in line for line in out.splitlines() if line.startswith("FAILED"))
    assert "Traceback" not in out
