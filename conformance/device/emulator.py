"""A loopback Android device: speaks the device side of the ADB protocol over TCP.

The real ``adb`` client can ``connect``, ``devices -l``, ``push``, ``pull``, ``shell`` (v1 and
shell_v2) and ``forward`` against it. ``/data/local/tmp`` is a sandbox folder on the host and
shell commands run on the host inside it, so a python3 runner pushed there runs.

    python -m conformance.device.emulator --port 6520 --sandbox /tmp/phone

Tests use :class:`LoopbackDevice`, a context manager that starts one in a subprocess on a free
port (a subprocess, so that a test can kill it like a phone being unplugged).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from conformance.device.adbwire import Connection
from conformance.device.shell import ShellEnv, serve_shell, serve_tcp
from conformance.device.sync import Sandbox, serve_sync

FEATURES = "shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir"
DEFAULT_PROPS = {
    "ro.product.name": "conformance_loopback",
    "ro.product.model": "Loopback",
    "ro.product.device": "loopback",
    "ro.product.manufacturer": "Conformance",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "x86_64",
}
_SAFE_PATH = re.compile(r"^[\w@%+=:,./-]+$")


class LoopbackServer:
    """Accepts adb server connections and serves sync, shell, exec and tcp services."""

    def __init__(self, sandbox: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0,
                 props: dict[str, str] | None = None, python: str | None = None):
        self.props = dict(DEFAULT_PROPS, **(props or {}))
        self.sandbox = Sandbox(sandbox)
        self._support = tempfile.TemporaryDirectory(prefix="adb-loopback-")
        self.shell_env = ShellEnv(self._shell_alias(), self._make_bin(python or sys.executable),
                                  str(self.sandbox.root))
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]
        self._stopped = threading.Event()

    @property
    def banner(self) -> str:
        keys = ("ro.product.name", "ro.product.model", "ro.product.device")
        # Values must not contain ':' (the host splits the banner on it).
        props = ";".join(f"{k}={self.props[k].replace(':', '_')}" for k in keys)
        return f"device::{props};features={FEATURES}"

    def route(self, service: str):
        """The handler for an OPEN, or None to refuse it."""
        if service.startswith(("shell:", "shell,", "exec:")):
            return lambda stream, svc: serve_shell(stream, svc, self.shell_env)
        if service == "sync:":
            return lambda stream, _svc: serve_sync(stream, self.sandbox)
        if service.startswith("tcp:"):
            return serve_tcp
        return None

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`."""
        while not self._stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                break
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(client, self.banner, self.route)
            threading.Thread(target=conn.serve, daemon=True, name="adb-connection").start()

    def stop(self) -> None:
        self._stopped.set()
        try:
            self.sock.close()
        finally:
            self._support.cleanup()

    def _shell_alias(self) -> str:
        """A shell-safe name for the sandbox (it replaces /data/local/tmp inside commands)."""
        root = str(self.sandbox.root)
        if _SAFE_PATH.match(root):
            return root
        alias = Path(self._support.name) / "tmp"
        alias.symlink_to(root)
        return str(alias)

    def _make_bin(self, python: str) -> str:
        """``getprop`` and ``python3`` for device shells (the host's PATH follows them)."""
        bin_dir = Path(self._support.name) / "bin"
        bin_dir.mkdir()
        cases = "".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;\n"
                        for k, v in self.props.items())
        listing = "".join(f"echo {shlex.quote(f'[{k}]: [{v}]')}\n" for k, v in self.props.items())
        _write_script(bin_dir / "getprop",
                      f'if [ -z "$1" ]; then\n{listing}exit 0\nfi\n'
                      f'case "$1" in\n{cases}  *) echo ;;\nesac\n')
        _write_script(bin_dir / "python3", f'exec {shlex.quote(python)} "$@"\n')
        return str(bin_dir)


def _write_script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def free_port() -> int:
    """A TCP port that is free now, outside the emulator range adb scans (5554-5586)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not 5554 <= port <= 5586:
            return port


class LoopbackDevice:
    """Context manager: a loopback device in a subprocess; ``serial`` is ``127.0.0.1:PORT``.

    ``kill()`` ends it abruptly, as when a phone is unplugged mid-run.
    """

    def __init__(self, sandbox: str | os.PathLike, *, port: int | None = None,
                 python: str | None = None, startup_timeout: float = 10.0):
        self.sandbox, self.port = Path(sandbox), port or free_port()
        self.python, self.startup_timeout = python, startup_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "LoopbackDevice":
        cmd = [sys.executable, "-m", "conformance.device.emulator", "--port", str(self.port),
               "--sandbox", str(self.sandbox)]
        if self.python:
            cmd += ["--python", self.python]
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, start_new_session=True)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"loopback device exited with status {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"loopback device did not listen on port {self.port}")

    def kill(self) -> None:
        """Kill the device and every command it runs (SIGKILL to its process group)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "LoopbackDevice":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.device.emulator",
        description="A loopback Android device that the real adb client can connect to.")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument("--sandbox", required=True, help="host folder that is /data/local/tmp")
    parser.add_argument("--serial-name", default=None,
                        help="ro.product.name in the banner (default: conformance_loopback)")
    parser.add_argument("--python", default=None,
                        help="interpreter behind the device's python3 (default: this one)")
    args = parser.parse_args(argv)
    props = {"ro.product.name": args.serial_name} if args.serial_name else None
    try:
        server = LoopbackServer(args.sandbox, host=args.host, port=args.port, props=props,
                                python=args.python)
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"loopback device on {args.host}:{server.port}, /data/local/tmp = "
          f"{server.sandbox.root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
