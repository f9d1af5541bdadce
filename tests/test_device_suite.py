"""The whole suite through the device path: ``pytest -m parity --device=127.0.0.1:PORT``
against the loopback device (bare: the runtime bundle is pushed to it) and a private adb server,
with the real adb client. The device's LiteRT targets (``--device-runtime litert``) are run by
tests/test_device_bundle.py and tests/test_adb_arm.py."""

from __future__ import annotations

import json

import pytest

from conformance.device.emulator import LoopbackDevice
from conformance.pytest.timing import ROUNDS
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
    ran = [c for c in device_cases if c["outcome"] != "skipped"]
    assert ran and all(c["outcome"] == "passed" and c["examples"] >= 1 for c in ran)
    # Each device case records its difference from the same runtime on this host (x86 here: none).
    assert all(c["host_diff"] is not None and c["host_diff"]["elements"] > 0 for c in ran)
    assert all(c["host_diff"]["max_abs"] == 0.0 for c in ran)
    # The full-size tutorial input runs once per device: the static export; the dynamic one says why not.
    skipped = [c for c in device_cases if c["outcome"] == "skipped"]
    assert [c["nodeid"].rsplit("[", 1)[1] for c in skipped] == [f"{serial_id}-torchscript-opset17-superres-dynamic]"]
    assert "once per device" in skipped[0]["reason"]
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
    assert device_rows[0]["stats"]["rounds"] == ROUNDS and device_rows[0]["stats"]["median"] > 0
    assert benches["pytorch"]["extra_info"]["measured_on"] == "host"


def test_device_lost_mid_run_fails_its_cases_fast_and_others_stand(suite, tmp_path, monkeypatch):
    """Unplug the device after its first case: the next case finds it gone, and every later
    device case fails at once with the same message naming that case; the run ends, ONNX
    Runtime's results stand. (Before: each remaining case took about 12 s.)"""
    with private_adb_server(), LoopbackDevice(tmp_path / "sandbox") as dev:
        monkeypatch.setenv("CONFORMANCE_KILL_PGID", str(dev.proc.pid))
        result = suite("cases/test_operators.py", "-m", "parity", "-k", "relu or pixel_shuffle or conv",
                       "--device", dev.serial, "--device-timeout", "10", "-p", "tests.kill_device_plugin",
                       "--backend", "onnxruntime", *NARROW, "-p", "no:randomly", timeout=180)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    report = json.loads((tmp_path / "reports" / "parity.json").read_text())
    assert {c["outcome"] for c in report["cases"] if c["backend"] == "onnxruntime"} == {"passed"}
    device = [c for c in report["cases"] if c["backend"].startswith("adb-")]
    assert device[0]["outcome"] == "passed"  # the case that ran before the unplug
    lost, *later = device[1:]
    assert len(later) >= 2 and all(c["outcome"] == "failed" for c in device[1:])
    where = f"device lost in {lost['nodeid']}: "
    assert all(where in c["message"] for c in device[1:])
    # The poisoned backend answers at once: no device timeout, no adb wait in these cases.
    assert all(c["seconds"] < 5 for c in later), [c["seconds"] for c in later]
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert failed and all("adb-" in line for line in failed)
    assert "Traceback" not in out


def test_the_device_profile_runs_few_examples_per_case():
    """Sized for a device where an example costs seconds: 3-5 per operator and model case."""
    from hypothesis import settings

    from conformance.draw import profiles

    profiles.register()
    assert profiles.default_profile(devices=["127.0.0.1:6520"]) == "device"
    assert profiles.default_profile(devices=[]) in ("dev", "ci")
    previous = settings.get_current_profile_name()
    settings.load_profile("device")
    try:
        assert 3 <= settings.default.max_examples <= 5
        assert 3 <= profiles.model_examples() <= 5
        assert settings.default.derandomize and settings.default.database is None
    finally:
        settings.load_profile(previous)
