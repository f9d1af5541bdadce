"""The loopback device against the real adb client: connect, devices, push/pull, shell, forward.

Each module gets its own adb server on a private port and its own loopback device.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

from conformance.device.adb import Adb, AdbError
from conformance.device.emulator.testing import adb_available

pytestmark = pytest.mark.skipif(not adb_available(), reason="adb is not on PATH "
                                "(apt-get install adb, or Android platform-tools)")


def test_connect_and_devices_list_the_loopback_device(adb, device):
    entries = {e.serial: e for e in adb.devices()}
    assert entries[device.serial].state == "device"
    assert entries[device.serial].details["model"] == "Loopback"
    assert entries[device.serial].details["product"] == "conformance_loopback"


def test_push_pull_round_trip_of_a_large_file(adb, device, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several DATA chunks and WRTE messages
    (tmp_path / "big.bin").write_bytes(payload)
    adb.push(device.serial, str(tmp_path / "big.bin"), "/data/local/tmp/a/b/big.bin")
    assert (device.sandbox / "a" / "b" / "big.bin").read_bytes() == payload
    adb.pull(device.serial, "/data/local/tmp/a/b/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == payload


def test_pull_of_a_missing_file_names_the_device_and_step(adb, device, tmp_path):
    with pytest.raises(AdbError) as info:
        adb.pull(device.serial, "/data/local/tmp/missing.bin", str(tmp_path / "x"))
    assert info.value.step == "pull" and device.serial in str(info.value)
    assert "missing.bin" in str(info.value)


@pytest.mark.parametrize("remote", ["/data/local/tmp/../../../etc/evil", "/etc/evil",
                                    "/data/local/tmpx/evil"])
def test_push_outside_the_sandbox_is_refused(adb, device, tmp_path, remote):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(AdbError, match="(?i)denied|outside"):
        adb.push(device.serial, str(tmp_path / "f"), remote)
    assert not os.path.exists("/etc/evil")


def test_symlink_out_of_the_sandbox_is_refused(adb, device, tmp_path):
    link = device.sandbox / "escape"
    link.unlink(missing_ok=True)
    link.symlink_to("/etc")
    with pytest.raises(AdbError):
        adb.pull(device.serial, "/data/local/tmp/escape/hostname", str(tmp_path / "h"))


def test_shell_v2_returns_the_exit_status_and_splits_stderr(adb, device):
    proc = adb.run(["shell", "echo out; echo err >&2; exit 7"], serial=device.serial,
                   step="shell", check=False)
    assert proc.returncode == 7
    assert proc.stdout == b"out\n" and proc.stderr == b"err\n"


def test_shell_runs_in_the_sandbox_with_the_device_path_rewritten(adb, device):
    (device.sandbox / "marker.txt").write_text("here")
    out = adb.shell(device.serial, ["cat", "/data/local/tmp/marker.txt"]).stdout
    assert out == b"here"
    model = adb.getprop(device.serial, "ro.product.model")
    assert model == "Loopback"


def test_shell_v2_streams_stdin(adb, device):
    cmd = [adb.path, "-s", device.serial, "shell", "cat | wc -c"]
    data = b"x" * 200_000
    proc = subprocess.run(cmd, env=adb.env, input=data, capture_output=True, timeout=20)
    assert proc.returncode == 0 and int(proc.stdout) == len(data)


def test_shell_v1_without_shell_v2(adb, device):
    proc = adb.run(["shell", "-x", "echo v1; exit 3"], serial=device.serial, step="shell",
                   check=False)
    assert proc.stdout.strip() == b"v1" and proc.returncode == 0  # v1 loses the status


def test_shell_arguments_cannot_inject_commands(adb, device):
    evil = "x; touch pwned; $(touch pwned2) `id` 'quoted' \"dq\" > redirected"
    out = adb.shell(device.serial, ["echo", evil]).stdout.decode().strip()
    assert out == evil
    assert not any((device.sandbox / n).exists() for n in ("pwned", "pwned2", "redirected"))


def test_device_facts_come_from_getprop(adb, device):
    facts = adb.device_facts(device.serial)
    assert facts == {"model": "Loopback", "manufacturer": "Conformance",
                     "android_version": "14", "abi": "x86_64"}


def test_forward_relays_to_a_port_on_the_device(adb, device):
    server = socket.create_server(("127.0.0.1", 0))
    device_port = server.getsockname()[1]

    def echo_once():
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    threading.Thread(target=echo_once, daemon=True).start()
    host_port = adb.forward(device.serial, device_port)
    try:
        with socket.create_connection(("127.0.0.1", host_port), timeout=10) as sock:
            sock.sendall(b"hello device")
            assert sock.recv(100) == b"HELLO DEVICE"
    finally:
        adb.remove_forward(device.serial, host_port)
        server.close()


def test_unknown_serial_is_one_clear_error_listing_the_devices(adb, device):
    with pytest.raises(AdbError) as info:
        adb.ensure_device("no-such-phone")
    message = str(info.value)
    assert "no-such-phone" in message and device.serial in message
    assert info.value.step == "find device"


def test_connect_checks_that_it_worked(adb):
    with pytest.raises(AdbError, match="connect failed"):
        adb.connect("127.0.0.1:1")  # adb exits 0 here; the wrapper must notice


def test_missing_adb_binary_is_a_clear_error(tmp_path):
    with pytest.raises(AdbError, match="no adb executable"):
        Adb(str(tmp_path / "adb"))


def test_a_command_that_hangs_times_out(adb, device):
    with pytest.raises(AdbError, match="did not answer within"):
        adb.shell(device.serial, ["sleep", "30"], timeout=1)
