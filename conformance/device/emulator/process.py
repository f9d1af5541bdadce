"""The loopback device as a subprocess, for tests and benchmarks: start, kill, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance.device.emulator import arm


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
                 python: str | None = None, startup_timeout: float = 10.0,
                 abi: str = "x86_64", arm_root: str | os.PathLike | None = None,
                 preinstalled: bool = False, noexec: bool = False, quota_mb: int | None = None):
        """A device as bare as a phone (busybox, no python3; ``abi="arm64-v8a"`` runs pushed
        programs under QEMU), ``noexec``/``quota_mb`` shaping its /data/local/tmp; or with
        ``preinstalled`` (implied by ``python``) a friendly one whose python3 is ``python`` or, for
        arm64-v8a, an aarch64 root's under QEMU (``arm_root``, default the cached root, built by
        :meth:`start` if missing; ArmRootError if it cannot be)."""
        self.sandbox, self.port = Path(sandbox), port or free_port()
        self.python, self.startup_timeout = python, startup_timeout
        self.abi, self.arm_root = abi, arm_root
        self.preinstalled = preinstalled or python is not None
        self.noexec, self.quota_mb = noexec, quota_mb
        # The device's stderr goes to a file, not a pipe that nobody drains during a run.
        self._log = tempfile.TemporaryFile()
        self.proc: subprocess.Popen | None = None

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "LoopbackDevice":
        cmd = [sys.executable, "-m", "conformance.device.emulator", "--port", str(self.port),
               "--sandbox", str(self.sandbox)]
        cmd += ["--abi", self.abi]
        if not self.preinstalled:
            cmd += ["--noexec"] * self.noexec
            cmd += ["--quota-mb", str(self.quota_mb)] if self.quota_mb else []
        else:
            cmd += ["--preinstalled"] + (["--python", self.python] if self.python else [])
            if self.abi != "x86_64":
                # Build (or find) the root here, where its progress shows, not within
                # startup_timeout.
                cmd += ["--arm-root", str(arm.ensure_root(self.arm_root))]
        root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log,
                                     start_new_session=True)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"loopback device exited with status {self.proc.returncode}: "
                                   f"{self._log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"loopback device did not listen on port {self.port}")

    def _log_tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no message"

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


