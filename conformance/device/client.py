"""Host side of the runner protocol: start the runner through adb, reach it, send requests.

The framing itself lives in :mod:`conformance.device.runner` (the file that goes to the device),
so host and device can never disagree about it; see ``docs/device-runner-protocol.md``.
"""

from __future__ import annotations

import collections
import itertools
import os
import selectors
import socket
import subprocess
import threading
import time
from typing import Sequence

import numpy as np

from conformance.device import runner as wire


class RunnerGone(Exception):
    """The runner (or the device under it) stopped answering."""


class RunnerTimeout(RunnerGone):
    """No reply within the timeout: the runner may be busy, not dead (the connection is out of
    step with it either way, so it must be restarted)."""


class RunnerRefused(Exception):
    """The runner answered ``ok: false``: the request failed, the runner is fine."""


class RunnerClient:
    """One TCP connection to a runner (through ``adb forward``); one request at a time."""

    def __init__(self, host_port: int, timeout: float):
        self.timeout = timeout
        try:
            self.sock = socket.create_connection(("127.0.0.1", host_port), timeout=timeout)
        except OSError as exc:
            raise RunnerGone(f"cannot connect to the forwarded port {host_port}: {exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rfile = self.sock.makefile("rb")
        self._wfile = self.sock.makefile("wb")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def request(self, header: dict, arrays: Sequence[np.ndarray] = (),
                timeout: float | None = None) -> tuple[dict, list[np.ndarray]]:
        """Send one request and wait for its reply (at most ``timeout`` seconds)."""
        header = dict(header, id=next(self._ids))
        with self._lock:
            self.sock.settimeout(timeout or self.timeout)
            try:
                wire.write_message(self._wfile, header, arrays)
                message = wire.read_message(self._rfile)
            except socket.timeout:
                raise RunnerTimeout(f"no answer within {timeout or self.timeout:g} s") from None
            except (OSError, EOFError, ValueError) as exc:
                raise RunnerGone(f"connection lost ({exc})") from None
        if message is None:
            raise RunnerGone("the connection was closed")
        reply, outputs = message
        if reply.get("id") != header["id"]:
            raise RunnerGone(f"reply {reply.get('id')} to request {header['id']}")
        if not reply.get("ok"):
            raise RunnerRefused(reply.get("error") or "unknown error")
        return reply, outputs

    def close(self) -> None:
        for f in (self._wfile, self._rfile, self.sock):
            try:
                f.close()
            except OSError:
                pass


class RunnerProcess:
    """The ``adb shell`` that keeps the runner alive; closing its stdin ends the runner."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self._stderr = collections.deque(maxlen=40)

    def wait_ready(self, timeout: float) -> int:
        """The device port from the runner's ready line; RunnerGone with its words if it dies."""
        deadline, buf = time.monotonic() + timeout, b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RunnerGone(f"the runner did not start within {timeout:g} s")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        line = buf.decode("utf-8", "replace").strip().splitlines()[:1]
        line = line[0] if line else ""
        if line.startswith(wire.READY):
            self._drain()
            return int(line.split()[-1])
        raise RunnerGone(self._startup_failure(line))

    def _startup_failure(self, first_line: str) -> str:
        """What the runner said before it died: exit status, its error line, stderr."""
        try:
            status = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        words = first_line.replace(wire.FAILED, "").strip() or " | ".join(err.splitlines()[-5:])
        return f"the runner exited with status {status}" + (f": {words}" if words else "")

    def why_dead(self) -> str:
        """Why a running runner stopped (for mid-run failures)."""
        try:
            # A lost device ends `adb shell` too, a moment after the socket closes.
            status = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "adb shell, which holds the runner, is still running"
        time.sleep(0.05)  # let the stderr pump catch adb's last words
        tail = " | ".join(list(self._stderr)[-5:])
        return f"adb shell ended with status {status}" + (f": {tail}" if tail else "")

    def _drain(self) -> None:
        # Keep reading both pipes: a full pipe would block the runner (ORT warnings, say).
        for pipe, keep in ((self.proc.stdout, False), (self.proc.stderr, True)):
            threading.Thread(target=self._pump, args=(pipe, keep), daemon=True).start()

    def _pump(self, pipe, keep: bool) -> None:
        for line in iter(pipe.readline, b""):
            if keep and line.strip():
                self._stderr.append(line.decode("utf-8", "replace").strip())

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
