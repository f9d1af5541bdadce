"""A stock phone, nothing installed: the runtime bundle for the device's ABI is built here,
pushed once (resumably), and the runner starts through the bundle's own loader on a loopback
device as bare as a phone (busybox sh, getprop, no python3, no /tmp).

The bundles are built on first use into ``~/.cache/conformance/bundles`` (once per CI run).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conformance.backends.adb import AdbDeviceBackend
from conformance.backends.base import BackendError
from conformance.device import bundle, install
from conformance.device.adb import Adb
from conformance.device.emulator import LoopbackDevice
from conformance.device.emulator.testing import adb_available, conv_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not adb_available(), reason="adb is not on PATH (apt-get install adb)")


@pytest.fixture(scope="module")
def x86_bundle():
    try:
        return bundle.ensure("x86_64", say=lambda _line: None)
    except bundle.BundleError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def bare(adb, tmp_path):
    """A fresh bare x86_64 device (nothing pushed yet) on the module's private adb server."""
    def start(**options):
        dev = LoopbackDevice(tmp_path / f"sandbox{len(started)}", **options).start()
        started.append(dev)
        adb.connect(dev.serial)
        return dev

    started: list[LoopbackDevice] = []
    yield start
    for dev in started:
        adb.disconnect(dev.serial)
        dev.stop()


class Recorder(Adb):
    """The same adb client, its pushes recorded (remote paths and bytes)."""

    def __init__(self, adb: Adb):
        self.__dict__.update(adb.__dict__)
        self.pushed = []

    def push(self, serial, local, remote, timeout=None):
        self.pushed.append((remote, os.path.getsize(local)))
        return super().push(serial, local, remote, timeout=timeout)

    def bundle_bytes(self) -> int:
        return sum(size for remote, size in self.pushed if "/runtime/" in remote)


def test_the_bare_device_has_no_python_and_one_writable_folder(adb, bare):
    dev = bare()
    run = lambda cmd: adb.run(["shell", cmd], serial=dev.serial, step="shell", check=False)
    assert run("command -v python3").returncode != 0 and run("command -v python3").stdout == b""
    assert run("ls /tmp").returncode != 0  # no /tmp
    assert run("touch /system/x").returncode != 0 and run("touch /x").returncode != 0
    assert run("touch /data/local/tmp/x && echo ok").stdout == b"ok\n"
    assert adb.getprop(dev.serial, "ro.product.cpu.abi") == "x86_64"
    # No host library either: a glibc program cannot start without its own loader.
    assert run("ls /lib /usr /lib64").returncode != 0


@pytest.mark.slow
def test_the_bundle_is_pushed_once_and_the_runner_starts_through_its_loader(adb, bare, x86_bundle):
    dev = bare()
    lines: list[str] = []
    first = Recorder(adb)
    be = AdbDeviceBackend(dev.serial, adb=first, timeout=30, progress=lines.append)
    try:
        (out,) = be.prepare(conv_model()).run([np.ones((1, 3, 8, 8), np.float32)])
        assert out.shape == (1, 4, 8, 8) and be.runner_info["runtimes"]["onnxruntime"]
        assert be.bundle_root.endswith(x86_bundle.name)
    finally:
        be.close()
    assert first.bundle_bytes() >= x86_bundle.size  # the parts (and the loader probe)
    assert any("pushing runtime" in line for line in lines)
    marker = dev.sandbox / "conformance" / "runtime" / x86_bundle.name / install.MARKER
    assert marker.read_text().strip() == x86_bundle.hash
    # A second run (a new backend, as a new pytest run) pushes no bundle bytes.
    second, lines[:] = Recorder(adb), []
    be = AdbDeviceBackend(dev.serial, adb=second, timeout=30, progress=lines.append)
    try:
        be.prepare(conv_model()).run([np.ones((1, 3, 8, 8), np.float32)])
    finally:
        be.close()
    assert second.bundle_bytes() == 0 and lines == []
    names = [remote.rsplit("/", 1)[1] for remote, _ in second.pushed]
    assert names[0] == "runner.py" and all(n.endswith(".onnx") for n in names[1:])


@pytest.mark.slow
def test_an_interrupted_push_is_detected_and_completed(adb, bare, x86_bundle, tmp_path):
    dev = bare()
    parts = install._parts(x86_bundle)
    # What a push cut off after two parts, in the middle of the third, leaves on the device.
    folder = dev.sandbox / "conformance" / "runtime" / (x86_bundle.name + ".parts")
    folder.mkdir(parents=True)
    for part in parts[:2]:
        (folder / part.name).write_bytes(part.read_bytes())
    (folder / parts[2].name).write_bytes(parts[2].read_bytes()[:1000])
    lines, recorder = [], Recorder(adb)
    root = install.install(recorder, dev.serial, "/data/local/tmp/conformance", x86_bundle,
                           lines.append)
    assert f"2 of {len(parts)} parts are already there" in " ".join(lines)
    pushed = [remote.rsplit("/", 1)[1] for remote, _ in recorder.pushed]
    assert pushed[1:] == [p.name for p in parts[2:]]  # after the loader probe: the rest only
    assert (dev.sandbox / root.split("/data/local/tmp/")[1] / install.MARKER).exists()
    assert not folder.exists()  # the parts are gone once unpacked


@pytest.mark.slow
def test_a_corrupt_push_is_one_line_and_removed(adb, bare, x86_bundle):
    dev = bare()
    parts = install._parts(x86_bundle)
    folder = dev.sandbox / "conformance" / "runtime" / (x86_bundle.name + ".parts")
    folder.mkdir(parents=True)
    for part in parts:  # every part there at its size, one of them with other bytes
        data = part.read_bytes()
        (folder / part.name).write_bytes(bytes(len(data)) if part == parts[1] else data)
    with pytest.raises(bundle.BundleError) as info:
        install.install(adb, dev.serial, "/data/local/tmp/conformance", x86_bundle, lambda _l: None)
    message = str(info.value)
    assert "\n" not in message and "is corrupt (sha256" in message and "pushes it again" in message
    assert not folder.exists()


def test_a_noexec_work_folder_is_one_line(adb, bare, x86_bundle):
    dev = bare(noexec=True)
    be = AdbDeviceBackend(dev.serial, adb=Recorder(adb), timeout=30, progress=lambda _l: None)
    with pytest.raises(BackendError) as info:
        be.prepare(conv_model())
    message = str(info.value)
    assert "\n" not in message and "is mounted noexec" in message and "--device-dir" in message
    assert be.adb.bundle_bytes() < 1_000_000  # found before the large push: the loader only


def test_no_space_left_is_one_line(adb, bare, x86_bundle):
    dev = bare(quota_mb=20)
    be = AdbDeviceBackend(dev.serial, adb=adb, timeout=30, progress=lambda _l: None)
    with pytest.raises(BackendError) as info:
        be.prepare(conv_model())
    message = str(info.value)
    assert "\n" not in message and "no space left for the runtime bundle" in message
    assert "MB are free there" in message and "--device-dir" in message


def test_an_abi_without_a_bundle_is_one_line():
    with pytest.raises(bundle.BundleError) as info:
        bundle.abi_of("armeabi-v7a")
    assert str(info.value) == ("no runtime bundle for ABI 'armeabi-v7a': bundles exist for "
                               "arm64-v8a, x86_64; a native runner can be given with --device-runner")


@pytest.mark.slow
def test_device_clean_removes_the_bundle(adb, bare, x86_bundle):
    dev = bare()
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=adb.env["ANDROID_ADB_SERVER_PORT"])
    cmd = [sys.executable, "-m", "conformance.cli", "device"]
    pushed = subprocess.run(cmd + ["push", dev.serial], env=env, capture_output=True, text=True,
                            timeout=300)
    assert pushed.returncode == 0, pushed.stderr
    runtime = dev.sandbox / "conformance" / "runtime"
    assert (runtime / x86_bundle.name / install.MARKER).exists()
    cleaned = subprocess.run(cmd + ["clean", dev.serial], env=env, capture_output=True, text=True,
                             timeout=60)
    assert cleaned.returncode == 0 and x86_bundle.name in cleaned.stdout
    assert not runtime.exists()


def test_the_bundle_is_named_by_its_content(x86_bundle, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x")
    before = bundle.content_hash(tmp_path)
    (tmp_path / "a" / "f").write_bytes(b"y")
    assert bundle.content_hash(tmp_path) != before
    assert x86_bundle.name == f"x86_64-{x86_bundle.hash[:16]}"
    assert x86_bundle.manifest["checked"]["machine"] == "x86_64"  # imported with its own loader


@pytest.mark.slow
def test_parity_and_latency_on_the_bare_x86_device_with_onnxruntime_and_litert(adb, bare, tmp_path):
    """The parity cases pass on both device runtimes, each recording its difference from the
    same runtime here; the latency case times LiteRT on the device (one run: LiteRT's converter
    loads once)."""
    import json

    dev = bare()
    reports, out_json = tmp_path / "reports", tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pytest", "cases/test_operators.py", "cases/test_latency.py",
           "-k", "((relu or conv2d) and not special) or superres_latency",
           "--exporter", "torchscript", "--opset", "17",
           "--device", dev.serial, "--device-runtime", "onnxruntime,litert",
           "--hypothesis-profile", "device", "--reports", str(reports), "-p", "no:cacheprovider",
           "--benchmark-enable", f"--benchmark-json={out_json}", "-q"]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_WAIT_POLICY="PASSIVE",
               ANDROID_ADB_SERVER_PORT=adb.env["ANDROID_ADB_SERVER_PORT"])
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((reports / "parity.json").read_text())
    serial_id = "adb-" + dev.serial.replace(":", "_")
    for backend, host in ((serial_id, "onnxruntime"), (serial_id + "-litert", "litert")):
        cases = [c for c in report["cases"] if c["backend"] == backend]
        assert {c["case"] for c in cases} >= {"relu", "conv2d"}, backend
        assert all(c["outcome"] == "passed" and 3 <= c["examples"] <= 5 for c in cases)
        # The same runtime on the same CPU: as this host's up to the order of a sum (bit-identical
        # alone; once not, in a full run on a loaded machine, where thread partitions can differ).
        assert all(c["host_diff"]["host"].startswith(host) and c["host_diff"]["max_abs"] <= 1e-5
                   for c in cases), [c["host_diff"] for c in cases]
    benches = {b["params"]["latency_runner"]: b for b in json.loads(out_json.read_text())["benchmarks"]}
    for name in (serial_id, serial_id + "-litert"):
        assert benches[name]["extra_info"]["measured_on"] == "device"
        assert benches[name]["stats"]["median"] > 0
    assert benches[serial_id + "-litert"]["extra_info"]["format"] == "tflite"


@pytest.mark.slow
def test_a_device_that_reboots_mid_run_is_one_line_and_keeps_its_bundle(adb, tmp_path, x86_bundle):
    sandbox, x = tmp_path / "phone", np.ones((1, 3, 8, 8), np.float32)
    dev = LoopbackDevice(sandbox).start()
    adb.connect(dev.serial)
    be = AdbDeviceBackend(dev.serial, adb=adb, timeout=10, progress=lambda _l: None)
    try:
        session = be.prepare(conv_model())
        session.run([x])
        dev.kill()  # the phone reboots: its connection and runner are gone
        with pytest.raises(BackendError) as info:
            session.run([x])
        message = str(info.value)
        assert "\n" not in message and "device lost" in message and "stopped answering" in message
    finally:
        be.close()
    # Back up, same /data/local/tmp: the next run finds the bundle and pushes none of it.
    again = LoopbackDevice(sandbox, port=dev.port).start()
    try:
        adb.disconnect(again.serial)
        adb.connect(again.serial)
        recorder = Recorder(adb)
        be = AdbDeviceBackend(again.serial, adb=recorder, timeout=10)
        try:
            be.prepare(conv_model()).run([x])
        finally:
            be.close()
        assert recorder.bundle_bytes() == 0
    finally:
        again.stop()



def test_an_unknown_device_runtime_is_one_line():
    from conformance.backends import load_backends

    with pytest.raises(BackendError) as info:
        load_backends([], devices=["127.0.0.1:1"], device_runtimes=("onnxruntime", "tract"))
    assert str(info.value) == "--device-runtime tract: unknown; choose onnxruntime or litert"


def test_a_runner_without_litert_skips_the_device_litert_cases():
    import threading

    from conformance.backends._runtime import Unsupported

    pytest.importorskip("litert_torch")
    from conformance.backends.adb_litert import AdbLiteRtBackend

    class PythonRunnerDevice:  # what a Termux python3 runner without ai-edge-litert answers
        name, place, _lock = "adb-phone", "adb:phone", threading.RLock()
        runner_info = {"runtimes": {"onnxruntime": "1.32.0"}}

        def _ensure_started(self):
            pass

    with pytest.raises(Unsupported) as info:
        AdbLiteRtBackend(PythonRunnerDevice()).load(b"tflite bytes")
    assert str(info.value) == "adb-phone-litert: the device's runner has no LiteRT (it offers onnxruntime)"
