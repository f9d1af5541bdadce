"""Unit tests without adb: ADB message framing, the sandbox, quoting and the runner protocol."""

from __future__ import annotations

import json
import shlex
import socket
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

from conformance.device import runner
from conformance.device.emulator import adbwire
from conformance.device.adb import shell_join
from conformance.device.emulator.shell import parse_shell_service
from conformance.device.emulator.sync import Sandbox
from conformance.device.emulator.testing import conv_model


def test_adb_message_header_layout():
    msg = adbwire.pack(adbwire.WRTE, 5, 9, b"abc", summed=True)
    command, arg0, arg1, length, check, magic = struct.unpack("<6I", msg[:24])
    assert (command, arg0, arg1, length) == (adbwire.WRTE, 5, 9, 3)
    assert check == sum(b"abc") and magic == adbwire.WRTE ^ 0xFFFFFFFF and msg[24:] == b"abc"


def test_read_message_rejects_a_bad_magic():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack("<6I", adbwire.OKAY, 1, 2, 0, 0, 0))
        with pytest.raises(adbwire.ProtocolError):
            adbwire.read_message(b)


@pytest.mark.parametrize("service, expected", [
    ("shell:ls", (False, "ls")),
    ("shell,v2,TERM=xterm,raw:echo a:b", (True, "echo a:b")),
    ("shell,v2,raw:", (True, "")),
    ("exec:cat x", (False, "cat x")),
])
def test_shell_service_strings(service, expected):
    assert parse_shell_service(service) == expected


def test_sandbox_maps_the_device_folder_and_refuses_the_rest(tmp_path):
    box = Sandbox(tmp_path)
    assert box.host_path("/data/local/tmp") == tmp_path.resolve()
    assert box.host_path("/data/local/tmp/a/../b") == tmp_path.resolve() / "b"
    for bad in ("/etc/passwd", "/data/local/tmp/../x", "/data/local/tmpx", "relative", ""):
        with pytest.raises(PermissionError):
            box.host_path(bad)


def test_shell_join_quotes_every_word():
    words = ["echo", "a b", "$(id)", "x;y", "'q'", ""]
    assert shlex.split(shell_join(words)) == words


def test_runner_frame_layout_is_the_documented_one():
    """uint32 LE header length | JSON header | raw little-endian tensor bytes."""
    class Sink:
        data = b""

        def write(self, b):
            self.data += b

        def flush(self):
            pass

    sink = Sink()
    runner.write_message(sink, {"op": "run"}, [np.arange(3, dtype=np.float32)])
    (n,) = struct.unpack("<I", sink.data[:4])
    header = json.loads(sink.data[4:4 + n])
    assert header["tensors"] == [{"dtype": "float32", "shape": [3], "nbytes": 12}]
    assert sink.data[4 + n:] == np.arange(3, dtype="<f4").tobytes()


@pytest.fixture
def runner_conn(tmp_path):
    """A runner serving one connection in a thread (no adb involved)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(conv_model().SerializeToString())
    server, client = socket.socketpair()
    r = runner.Runner(str(tmp_path))
    thread = threading.Thread(target=runner.serve, args=(r, server.makefile("rb"),
                                                         server.makefile("wb")), daemon=True)
    thread.start()
    rfile, wfile = client.makefile("rb"), client.makefile("wb")

    def call(header, arrays=()):
        runner.write_message(wfile, header, arrays)
        return runner.read_message(rfile)

    yield call
    call({"op": "bye"})
    client.close()
    server.close()


def test_runner_hello_load_run_time(runner_conn):
    hello, _ = runner_conn({"op": "hello", "id": 1})
    assert hello["ok"] and hello["protocol"] == 1 and hello["runtime"] == "onnxruntime"
    loaded, _ = runner_conn({"op": "load", "path": "models/m.onnx"})
    assert loaded["ok"] and [i["name"] for i in loaded["inputs"]] == ["x"]
    x = np.ones((1, 3, 4, 4), np.float32)
    reply, (y,) = runner_conn({"op": "run", "session": "models/m.onnx", "id": 7}, [x])
    assert reply["ok"] and reply["id"] == 7 and y.shape == (1, 4, 4, 4)
    timed, _ = runner_conn({"op": "time", "session": "models/m.onnx", "warmup": 1,
                            "iterations": 4}, [x])
    assert len(timed["times"]) == 4


def test_runner_errors_are_replies_not_crashes(runner_conn):
    reply, _ = runner_conn({"op": "run", "session": "models/nope.onnx"})
    assert not reply["ok"] and "load first" in reply["error"]
    reply, _ = runner_conn({"op": "format_disk"})
    assert not reply["ok"] and "unknown op" in reply["error"]
    assert runner_conn({"op": "hello"})[0]["ok"]


def test_runner_is_self_contained(tmp_path):
    """The runner goes to the device alone: copied elsewhere, it must still start."""
    copy = tmp_path / "runner.py"
    copy.write_text(open(runner.__file__).read())
    proc = subprocess.run([sys.executable, "-I", str(copy), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "--watch-stdin" in proc.stdout


def test_runtime_code_never_imports_the_loopback_device_nor_device_the_backends():
    """Layering: the loopback device is a tool beside the product, and device/ sits below
    backends/ (no cycle)."""
    code = ("import sys, conformance.backends, conformance.backends.adb, conformance.device.adb, "
            "conformance.device.client, conformance.device.runner; "
            "print(sorted(m for m in sys.modules if m.startswith('conformance.device.emulator')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = ("import sys, conformance.device.adb, conformance.device.client; "
            "print(sorted(m for m in sys.modules if m.startswith('conformance.backends')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
