"""AdbDeviceBackend end to end: real adb client, loopback device, on-device runner."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort
import pytest

from conformance.backends.adb import AdbDeviceBackend
from conformance.backends.base import BackendError
from conformance.device.emulator import LoopbackDevice
from conformance.device.emulator.testing import adb_available, conv_model

pytestmark = pytest.mark.skipif(not adb_available(), reason="adb is not on PATH "
                                "(apt-get install adb, or Android platform-tools)")


@pytest.fixture(scope="module")
def device_backend(adb, device):
    be = AdbDeviceBackend(device.serial, adb=adb, timeout=15)
    yield be
    be.close()


def host_run(model, inputs):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [arg.name for arg in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def test_name_is_a_clean_test_id(device_backend, device):
    assert device_backend.name == f"adb-127.0.0.1_{device.port}"


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 3, 5, 7), (1, 3, 1, 1)])
def test_conv_on_the_device_matches_onnxruntime_on_the_host(device_backend, shape):
    model = conv_model()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    (got,) = device_backend.prepare(model).run([x])
    (want,) = host_run(model, [x])
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_almost_equal(got, want, decimal=5)


def test_each_model_is_pushed_and_loaded_once(device_backend, device):
    model = conv_model(seed=7)
    first = device_backend.prepare(model)
    second = device_backend.prepare(model)
    assert first.path == second.path
    pushed = list((device.sandbox / "conformance" / "models").glob("*.onnx"))
    assert (device.sandbox / "conformance" / first.path).exists() and len(pushed) >= 1


def test_timings_are_measured_on_the_device(device_backend):
    session = device_backend.prepare(conv_model())
    times = session.time([np.ones((1, 3, 16, 16), np.float32)], warmup=2, iterations=7)
    assert len(times) == 7 and all(0 < t < 1 for t in times)
    assert device_backend.measures_own_latency


def test_versions_report_device_facts_and_runtime(device_backend):
    facts = device_backend.versions()
    assert facts["device_model"] == "Loopback"
    assert facts["device_manufacturer"] == "Conformance"
    assert facts["device_android_version"] == "14" and facts["device_abi"] == "x86_64"
    assert facts["onnxruntime (device)"] == ort.__version__


def test_a_model_error_is_reported_and_the_device_stays_usable(device_backend):
    session = device_backend.prepare(conv_model())
    with pytest.raises(BackendError, match="run failed on the device"):
        session.run([np.ones((1, 5, 4, 4), np.float32)])  # wrong channel count
    assert session.run([np.ones((1, 3, 4, 4), np.float32)])[0].shape == (1, 4, 4, 4)


def test_unknown_serial_is_one_clear_error(adb, device):
    be = AdbDeviceBackend("no-such-phone", adb=adb, timeout=5)
    with pytest.raises(BackendError) as info:
        be.prepare(conv_model())
    assert "no-such-phone" in str(info.value) and device.serial in str(info.value)


def test_a_device_without_a_runner_fails_once_then_fast(adb, device):
    be = AdbDeviceBackend(device.serial, adb=adb, timeout=10, runner_cmd="no-such-runner --x")
    with pytest.raises(BackendError, match="cannot start the on-device runner") as first:
        be.prepare(conv_model())
    assert "no-such-runner" in str(first.value) and "status 127" in str(first.value)
    start = time.perf_counter()
    with pytest.raises(BackendError) as again:
        be.prepare(conv_model())
    assert str(again.value) == str(first.value) and time.perf_counter() - start < 0.1
    assert "device_error" in be.versions()


def test_a_device_killed_mid_run_fails_fast_with_a_clear_message(adb, tmp_path):
    with LoopbackDevice(tmp_path / "sandbox") as dev:
        be = AdbDeviceBackend(dev.serial, adb=adb, timeout=10)
        session = be.prepare(conv_model())
        x = np.ones((1, 3, 8, 8), np.float32)
        session.run([x])
        dev.kill()
        start = time.perf_counter()
        with pytest.raises(BackendError, match="stopped answering during run") as info:
            session.run([x])
        assert time.perf_counter() - start < 10 and dev.serial.split(":")[1] in str(info.value)
        start = time.perf_counter()
        with pytest.raises(BackendError) as again:
            session.run([x])
        assert str(again.value) == str(info.value) and time.perf_counter() - start < 0.1
        be.close()


def test_xdist_workers_get_their_own_work_folder(adb, device, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    be = AdbDeviceBackend(device.serial, adb=adb, timeout=15)
    try:
        session = be.prepare(conv_model())
        assert be.device_dir == "/data/local/tmp/conformance/gw3"
        assert (device.sandbox / "conformance" / "gw3" / session.path).exists()
    finally:
        be.close()


def test_a_device_lost_before_a_push_fails_at_once_naming_the_test_where_it_went(adb, tmp_path):
    """The ~12 s per case seen before: every new model's adb push waited on the dead device."""
    with LoopbackDevice(tmp_path / "sandbox") as dev:
        be = AdbDeviceBackend(dev.serial, adb=adb, timeout=10)
        be.prepare(conv_model()).run([np.ones((1, 3, 8, 8), np.float32)])
        dev.kill()
        with pytest.raises(BackendError, match="device lost in ") as info:
            be.prepare(conv_model(seed=1))  # a new model: a push to the gone device
        assert "test_a_device_lost_before_a_push" in str(info.value) and be.lost is not None
        start = time.perf_counter()
        for seed in (2, 3):
            with pytest.raises(BackendError) as again:
                be.prepare(conv_model(seed=seed))
            assert str(again.value) == str(info.value)
        assert time.perf_counter() - start < 0.1
        be.close()


def test_a_busy_runner_fails_the_call_but_not_the_device(adb, device):
    be = AdbDeviceBackend(device.serial, adb=adb, timeout=15)
    try:
        session = be.prepare(conv_model())
        x = np.ones((1, 3, 8, 8), np.float32)
        with pytest.raises(BackendError, match="no answer within 0.3 s") as info:
            be._call({"op": "time", "session": session.path, "warmup": 0,
                      "iterations": 10 ** 7}, [x], step="time", timeout=0.3)
        assert "device lost" not in str(info.value) and be.lost is None
        # The next call starts a fresh runner and loads the model again.
        np.testing.assert_allclose(session.run([x])[0], host_run(conv_model(), [x])[0],
                                   rtol=1e-6, atol=1e-6)
    finally:
        be.close()


def test_host_diff_of_the_same_runtime_on_the_same_cpu_is_zero(adb, device):
    be = AdbDeviceBackend(device.serial, adb=adb, timeout=15)
    try:
        session = be.prepare(conv_model())
        assert be.last_host_diff is None and be.pop_host_diff() is None
        x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
        (out,) = session.run([x])
        diff = be.last_host_diff
        assert diff.elements == out.size and diff.differing == 0 and diff.max_abs == 0.0
        assert diff.host.startswith(f"onnxruntime {ort.__version__} on ")
        assert be.pop_host_diff() == diff and be.pop_host_diff() is None
    finally:
        be.close()


def test_host_diff_counts_elements_that_are_not_bit_identical():
    from conformance.backends.adb import host_diff

    a = np.array([1.0, 2.0, np.nan, 4.0], np.float32)
    b = np.array([1.0, 2.5, np.nan, 3.0], np.float32)
    diff = host_diff([a, a[:2]], [b, a[:2]], "host")
    assert (diff.differing, diff.elements, diff.max_abs) == (2, 6, 1.0)
    assert host_diff([a], [a[:2]], "host") is None  # shapes disagree: no verdict
    assert host_diff([a], [a, a], "host") is None


def test_a_device_that_is_no_emulator_keeps_the_timeout_given(adb, device):
    # (tests/test_adb_arm.py: the ARM loopback device, ro.kernel.qemu=1, gets a longer one)
    be = AdbDeviceBackend(device.serial, adb=adb, timeout=7)
    try:
        be.prepare(conv_model())
        assert be.timeout == 7
    finally:
        be.close()
