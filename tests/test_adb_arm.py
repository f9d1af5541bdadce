"""The ARM loopback device, as bare as a stock phone: the arm64-v8a runtime bundle is pushed to
it and the runner executes aarch64 code (ONNX Runtime's and LiteRT's ARM kernels under
``qemu-aarch64-static -cpu neoverse-n1``, registered with binfmt_misc, nothing else to lean on),
parity cases pass on it, and it reports what ARM changes against the same runtimes on this x86
host. The preinstalled ARM device (python3 from an aarch64 root) stays for python3 runners.

The bundle (``~/.cache/conformance/bundles``) and the aarch64 root (``CONFORMANCE_ARM_ROOT`` or
``~/.cache/conformance/arm-root``) are built on first use and reused after, so a CI run builds
each at most once.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conformance.backends.adb import EMULATOR_TIMEOUT_SCALE, AdbDeviceBackend
from conformance.device.emulator import LoopbackDevice, arm
from conformance.device.emulator.testing import adb_available, conv_model, private_adb_server

TOLERANCE = 1.5e-3  # decimal=3
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need_qemu() -> None:
    if shutil.which(arm.QEMU):
        return
    if IN_CI:  # .ci/run installs it: a CI without it is broken, not excused
        pytest.fail(f"{arm.QEMU} is missing in CI (.ci/run installs qemu-user-static)")
    pytest.skip(f"{arm.QEMU} is not installed (apt-get install qemu-user-static); CI runs these")


@pytest.fixture(scope="module")
def arm_root():
    _need_qemu()
    try:
        return arm.ensure_root()
    except arm.ArmRootError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def arm_device(tmp_path_factory):
    """The bare ARM device (no python3) on a private adb server."""
    _need_qemu()
    if not adb_available():
        pytest.skip("adb is not on PATH (apt-get install adb)")
    # Nested pytest runs inherit ANDROID_ADB_SERVER_PORT: they talk to this private server.
    with private_adb_server() as adb, LoopbackDevice(
            tmp_path_factory.mktemp("arm-sandbox"), abi="arm64-v8a") as dev:
        adb.connect(dev.serial)
        yield adb, dev


@pytest.mark.slow
def test_the_device_says_arm64_and_has_nothing_installed(arm_device):
    adb, dev = arm_device
    assert adb.getprop(dev.serial, "ro.product.cpu.abi") == "arm64-v8a"
    uname = adb.shell(dev.serial, ["uname", "-m"]).stdout.decode().strip()
    assert uname == "aarch64"
    python = adb.run(["shell", "command -v python3"], serial=dev.serial, step="shell", check=False)
    assert python.returncode != 0 and python.stdout == b""
    # An ARM /proc/cpuinfo, not the host's (ONNX Runtime crashes on x86's under QEMU).
    cpuinfo = adb.shell(dev.serial, ["cat", "/proc/cpuinfo"]).stdout.decode()
    assert "CPU implementer\t: 0x41" in cpuinfo


@pytest.mark.slow
def test_the_runner_executes_aarch64_and_arm_kernels_differ_from_the_host_within_tolerance(
        arm_device):
    torch = pytest.importorskip("torch")
    if platform.machine() != "x86_64":
        pytest.skip("the host is not x86_64: nothing to tell ARM apart from")
    adb, dev = arm_device
    model = conv_model(3, 16, 3, seed=1)
    backend = AdbDeviceBackend(dev.serial, adb=adb, timeout=30)
    try:
        session = backend.prepare(model)
        assert backend.timeout == 30 * EMULATOR_TIMEOUT_SCALE  # the device says ro.kernel.qemu=1
        assert backend.runner_info["machine"] == "aarch64"
        assert backend.versions()["device_machine"] == "aarch64"
        x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
        (device_out,) = session.run([x])
        diff = backend.last_host_diff
    finally:
        backend.close()
    weight, bias = (np.frombuffer(t.raw_data, np.float32).reshape(t.dims)
                    for t in model.graph.initializer)
    reference = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight.copy()),
                                           torch.from_numpy(bias.copy()), padding=1).numpy()
    assert np.abs(device_out - reference).max() < TOLERANCE
    assert diff.host.endswith("on x86_64") and diff.elements == device_out.size
    # ARM's NEON kernels sum in another order than x86's: not bit-identical, yet within tolerance.
    assert diff.differing > 0 and 0 < diff.max_abs < TOLERANCE


@pytest.mark.slow
def test_parity_cases_pass_on_the_arm_device_with_onnxruntime_and_litert(arm_device, tmp_path):
    _, dev = arm_device
    reports = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "cases/test_operators.py", "-m", "parity",
           "-k", "(relu or conv2d) and not special", "--exporter", "torchscript", "--opset", "17",
           "--device", dev.serial, "--device-runtime", "onnxruntime,litert",
           "--hypothesis-profile", "device",
           "--reports", str(reports), "-p", "no:cacheprovider", "--benchmark-disable", "-q"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo, OMP_WAIT_POLICY="PASSIVE")
    result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((reports / "parity.json").read_text())
    assert "device_abi arm64-v8a" in " ".join(report["meta"]["header"])
    device_cases = [c for c in report["cases"] if c["backend"].startswith("adb-")]
    serial_id = "adb-" + dev.serial.replace(":", "_")
    for backend, host in ((serial_id, "onnxruntime"), (serial_id + "-litert", "litert")):
        cases = [c for c in device_cases if c["backend"] == backend]
        assert {c["case"] for c in cases} >= {"relu", "conv2d"}, backend
        assert all(c["outcome"] == "passed" and 3 <= c["examples"] <= 5 for c in cases)
        # Each case records its difference from the same runtime on this host.
        assert all(c["host_diff"]["host"].startswith(host) for c in cases)
    # The device's difference from this host stays within tolerance. Whether it is non-zero depends
    # on the drawn sizes (a one-element conv sums nothing): the fixed model above shows that ARM's
    # kernels do differ from x86's.
    assert all(0 <= c["host_diff"]["max_abs"] < TOLERANCE for c in device_cases), device_cases


@pytest.mark.slow
def test_the_preinstalled_arm_device_runs_a_python3_runner(arm_root, tmp_path):
    """Termux or a Linux board: python3 with numpy and onnxruntime is there, and
    ``--device-runner "python3 runner.py"`` uses it instead of the bundle."""
    if not adb_available():
        pytest.skip("adb is not on PATH (apt-get install adb)")
    with private_adb_server() as adb, LoopbackDevice(
            tmp_path / "sandbox", abi="arm64-v8a", arm_root=arm_root, preinstalled=True) as dev:
        adb.connect(dev.serial)
        backend = AdbDeviceBackend(dev.serial, adb=adb, timeout=30, runner_cmd="python3 runner.py")
        try:
            (out,) = backend.prepare(conv_model()).run([np.ones((1, 3, 8, 8), np.float32)])
            assert out.shape == (1, 4, 8, 8) and backend.runner_info["machine"] == "aarch64"
            assert backend.bundle_root is None
        finally:
            backend.close()
        assert not (tmp_path / "sandbox" / "conformance" / "runtime").exists()


@pytest.mark.slow
def test_prepare_only_reuses_the_cached_root(arm_root):
    cmd = [sys.executable, "-m", "conformance.device.emulator", "--prepare-only",
           "--arm-root", str(arm_root)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"aarch64 root ready: {arm_root}" in result.stdout
    assert "building" not in result.stderr  # built once, by the fixture or an earlier run


def test_no_qemu_is_one_clear_line(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # a PATH without qemu-aarch64-static
    cmd = [sys.executable, "-m", "conformance.device.emulator", "--abi", "arm64-v8a",
           "--port", "6599", "--sandbox", str(tmp_path), "--arm-root", str(tmp_path / "root")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert result.stderr.strip() == ("emulator: qemu-aarch64-static is not on PATH "
                                     "(Debian: apt-get install qemu-user-static)")
    assert not (tmp_path / "root").exists()


@pytest.mark.slow
def test_a_wheel_that_does_not_exist_is_one_clear_line(tmp_path):
    with pytest.raises(arm.ArmRootError) as info:
        arm._pip_download(tmp_path, {"onnxruntime": "0.0.1"}, lambda _line: None)
    message = str(info.value)
    assert "\n" not in message and "onnxruntime==0.0.1" in message
    assert "No matching distribution" in message


def test_a_failing_build_step_names_the_step_and_its_last_line():
    with pytest.raises(arm.ArmRootError) as info:
        arm._run([sys.executable, "-c", "import sys; print('first'); sys.exit('the reason')"],
                 "a step")
    assert str(info.value) == "arm root: a step failed: the reason"


def test_the_arm_cpuinfo_describes_neoverse_n1_cores(tmp_path):
    text = arm.write_cpuinfo(tmp_path, cores=3).read_text()
    assert text.count("processor\t:") == 3 and "CPU part\t: 0xd0c" in text
    assert "asimd" in text and "GenuineIntel" not in text
