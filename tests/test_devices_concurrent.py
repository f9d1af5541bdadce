"""Two devices at once: each its own pytest-xdist worker; a lost one does not hold back the other;
the report sets the devices side by side."""

from __future__ import annotations

import json
import re

import pytest

from conformance.device.emulator import LoopbackDevice
from conformance.device.emulator.testing import adb_available, private_adb_server
from conformance.pytest.devices import device_of
from conformance.report.devices import compare_devices

NARROW = ("cases/test_operators.py", "-m", "parity", "-k", "test_operator and (relu or pixel_shuffle or conv2d)",
          "--exporter", "torchscript", "--opset", "17", "--backend", "onnxruntime")


def test_a_test_belongs_to_the_device_in_its_parameters():
    names = ["adb-127.0.0.1_5555", "adb-127.0.0.1_55"]
    assert device_of("c.py::test_operator[adb-127.0.0.1_5555-torchscript-opset17-relu]", names) == names[0]
    assert device_of("c.py::test_operator[adb-127.0.0.1_55-torchscript-opset17-relu]", names) == names[1]
    assert device_of("c.py::test_latency[superres-adb-127.0.0.1_55]", names) == names[1]
    assert device_of("c.py::test_operator[onnxruntime-torchscript-opset17-relu]", names) is None


def _row(place, status, max_abs, case="relu"):
    return {"place": place, "status": status, "max_abs": max_abs, "test": "test_operator", "case": case,
            "exporter": "torchscript", "opset": 17, "host_diff": {"max_abs": 0.0}}


def test_the_report_compares_devices_with_each_other():
    rows = [_row("adb:a", "pass", 1e-4), _row("adb:b", "pass", 1e-4), _row("host", "pass", 1e-4),
            _row("adb:a", "pass", 1e-4, "conv2d"), _row("adb:b", "fail", 3e-3, "conv2d")]
    table = compare_devices(rows)
    assert table["devices"] == ["a", "b"] and table["differ"] == 1
    by_case = {r["case"]: r for r in table["rows"]}
    assert by_case["relu"]["agree"] and not by_case["conv2d"]["agree"]
    assert by_case["conv2d"]["note"] == "verdicts differ" and by_case["conv2d"]["cells"][1].startswith("✗ 0.003")
    assert compare_devices(rows[:1] + rows[2:3]) is None  # one device: nothing to compare


@pytest.mark.slow
@pytest.mark.skipif(not adb_available(), reason="adb is not on PATH (apt-get install adb)")
def test_two_devices_run_concurrently_and_a_lost_one_holds_back_nothing(suite, tmp_path, monkeypatch):
    with private_adb_server(), LoopbackDevice(tmp_path / "a") as a, LoopbackDevice(tmp_path / "b") as b:
        lost = "adb-" + a.serial.replace(":", "_")
        monkeypatch.setenv("CONFORMANCE_KILL_PGID", str(a.proc.pid))
        monkeypatch.setenv("CONFORMANCE_KILL_DEVICE", lost)
        result = suite(*NARROW, "--device", a.serial, "--device", b.serial, "--device-timeout", "10",
                       "-p", "tests.unplug_one_device_plugin", "-vv", timeout=300)
    out = result.stdout
    assert "2 devices served concurrently, one pytest-xdist worker each (3 workers)" in out, out[-3000:]
    # every test of a device ran on one worker, the two devices on different workers
    worker_of = {}
    for gw, nodeid in re.findall(r"\[(gw\d+)\] \[ *\d+%\] \w+ (\S+)", out):
        for name in (lost, "adb-" + b.serial.replace(":", "_")):
            if f"[{name}-" in nodeid:
                worker_of.setdefault(name, set()).add(gw)
    assert len(worker_of) == 2 and all(len(w) == 1 for w in worker_of.values()), worker_of
    assert worker_of[lost] != worker_of["adb-" + b.serial.replace(":", "_")]
    report = json.loads((tmp_path / "reports" / "parity.json").read_text())
    kept = [c for c in report["cases"] if c["place"] == f"adb:{b.serial}"]
    gone = [c for c in report["cases"] if c["place"] == f"adb:{a.serial}"]
    assert len(kept) == len(gone) >= 3 and all(c["outcome"] == "passed" for c in kept)  # the other went on
    assert gone[0]["outcome"] == "passed" and any(c["outcome"] == "failed" for c in gone[1:])
    assert all(c["outcome"] == "passed" for c in report["cases"] if c["place"] == "host")
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "Devices side by side" in summary and "verdicts differ" in summary
