"""Shell (v1 and shell_v2), exec and tcp: services of the loopback device.

Commands run on the host through ``/bin/sh -c`` with the sandbox as working folder, the
device path ``/data/local/tmp`` rewritten to the sandbox, and a ``bin`` folder first on PATH
that provides ``getprop`` and a ``python3`` with numpy and onnxruntime.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading

from conformance.device.emulator.adbwire import Stream
from conformance.device.emulator.sync import DEVICE_ROOT

PACKET = struct.Struct("<BI")
STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN, WINDOW = range(6)


class ShellEnv:
    """How the loopback device runs commands: sandbox, PATH and the path rewrite."""

    def __init__(self, sandbox_alias: str, bin_dir: str, cwd: str):
        self.sandbox_alias, self.cwd = sandbox_alias, cwd
        self.env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
                        TMPDIR=cwd, ANDROID_DATA="/data")

    def spawn(self, command: str, merge_stderr: bool) -> subprocess.Popen:
        # A new session so that closing the stream can kill the command and its children.
        command = command.replace(DEVICE_ROOT, self.sandbox_alias)
        return subprocess.Popen(
            ["/bin/sh", "-c", command or "exec /bin/sh"], cwd=self.cwd, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            start_new_session=True, bufsize=0)


def parse_shell_service(service: str) -> tuple[bool, str]:
    """``shell,v2,TERM=x,raw:CMD`` -> (is_v2, CMD); ``shell:CMD`` and ``exec:CMD`` are v1."""
    head, _, command = service.partition(":")
    return "v2" in head.split(",")[1:], command


def serve_shell(stream: Stream, service: str, env: ShellEnv) -> None:
    """Run one command; v2 frames stdout/stderr/exit, v1 streams raw merged output."""
    v2, command = parse_shell_service(service)
    proc = env.spawn(command, merge_stderr=not v2)
    watcher = threading.Thread(target=_feed_stdin, args=(stream, proc, v2), daemon=True)
    watcher.start()
    pumps = [threading.Thread(target=_pump, args=(proc.stdout, stream, STDOUT if v2 else None),
                              daemon=True)]
    if v2:
        pumps.append(threading.Thread(target=_pump, args=(proc.stderr, stream, STDERR),
                                      daemon=True))
    for pump in pumps:
        pump.start()
    for pump in pumps:
        pump.join()
    status = proc.wait()
    if v2 and not stream.closed:
        code = 128 - status if status < 0 else status  # killed by a signal: 128 + signal
        stream.write(PACKET.pack(EXIT, 1) + bytes([code & 0xFF]))


def _pump(pipe, stream: Stream, packet_id: int | None) -> None:
    fd = pipe.fileno()
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        framed = data if packet_id is None else PACKET.pack(packet_id, len(data)) + data
        if not stream.write(framed):
            break
    pipe.close()


def _feed_stdin(stream: Stream, proc: subprocess.Popen, v2: bool) -> None:
    """Host stdin to the process; when the host closes the stream, end the command."""
    buf = bytearray()
    while True:
        chunk = stream.read()
        if not chunk:
            break
        if not v2:
            _write_stdin(proc, chunk)
            continue
        buf += chunk
        while len(buf) >= PACKET.size:
            packet_id, length = PACKET.unpack_from(buf)
            if len(buf) < PACKET.size + length:
                break
            data = bytes(buf[PACKET.size:PACKET.size + length])
            del buf[:PACKET.size + length]
            if packet_id == STDIN:
                _write_stdin(proc, data)
            elif packet_id == CLOSE_STDIN:
                _close_stdin(proc)
    _close_stdin(proc)
    if proc.poll() is None:
        # The host went away (like adbd's SIGHUP): end the whole process group.
        try:
            os.killpg(proc.pid, signal.SIGHUP)
        except (ProcessLookupError, PermissionError):
            pass


def _write_stdin(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
    except (BrokenPipeError, ValueError, OSError):
        pass


def _close_stdin(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
    except OSError:
        pass


def serve_tcp(stream: Stream, service: str) -> None:
    """``tcp:PORT[:HOST]``: connect to a local port and relay bytes both ways (adb forward)."""
    parts = service.split(":")
    host = parts[2] if len(parts) > 2 and parts[2] else "127.0.0.1"
    try:
        sock = socket.create_connection((host, int(parts[1])), timeout=5)
    except (OSError, ValueError, IndexError):
        return
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream.set_sink(sock.sendall)  # host -> device port straight from the reader thread
    to_host = threading.Thread(target=_socket_to_stream, args=(sock, stream), daemon=True)
    to_host.start()
    try:
        stream.read()  # returns b"" once the stream closes
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        to_host.join(timeout=5)
        sock.close()


def _socket_to_stream(sock: socket.socket, stream: Stream) -> None:
    try:
        while data := sock.recv(256 * 1024):
            if not stream.write(data):
                break
    except OSError:
        pass
    stream.close()
