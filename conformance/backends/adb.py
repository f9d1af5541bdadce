"""An Android device (or anything adb reaches) as a backend: ``--device=SERIAL``.

One long-lived runner per device (``conformance/device/runner.py``, pushed to the work folder
and started through ``adb shell``) is reached over ``adb forward``; each distinct model is
pushed once (its content hash is its file name) and loaded once, then every example is one
request/response on that socket, not three adb process launches.

Failure policy: if the runner cannot start, or the device stops answering, the backend keeps
that one error and every later call raises it at once, instead of one timeout per example.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shlex
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from conformance.backends.base import Backend, BackendError
from conformance.device.adb import Adb, AdbError, shell_join
from conformance.device.client import RunnerClient, RunnerGone, RunnerProcess, RunnerRefused

DEFAULT_DEVICE_DIR = "/data/local/tmp/conformance"
RUNNER_SOURCE = Path(__file__).resolve().parents[1] / "device" / "runner.py"


class AdbDeviceBackend(Backend):
    """Runs models on the device ``serial`` (``HOST:PORT`` serials are connected on first use)."""

    measures_own_latency = True

    def __init__(self, serial: str, *, adb: str | Adb | None = None,
                 device_dir: str = DEFAULT_DEVICE_DIR, runner_cmd: str | None = None,
                 timeout: float = 30.0, session_options: dict | None = None):
        self.serial, self.timeout = serial, timeout
        self.name = "adb-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", serial)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        # xdist workers sharing a device each get their own folder (and runner).
        self.device_dir = posixpath.join(device_dir, worker) if worker else device_dir
        self.runner_cmd, self.session_options = runner_cmd, session_options or {}
        self._error: BackendError | None = None
        self._client: RunnerClient | None = None
        self._process: RunnerProcess | None = None
        self._host_port: int | None = None
        self._hello: dict = {}
        self._loaded: dict[str, dict] = {}
        self._lock = threading.RLock()
        try:
            self.adb = adb if isinstance(adb, Adb) else Adb(adb, timeout=timeout)
        except AdbError as exc:
            self.adb, self._error = None, BackendError(f"{self.name}: {exc}")

    # -- the Backend API ---------------------------------------------------------------------
    def prepare(self, model: onnx.ModelProto) -> "AdbSession":
        """Push the model (once per content) and load it in the runner (once)."""
        data = model.SerializeToString()
        rel = f"models/{hashlib.sha256(data).hexdigest()[:24]}.onnx"
        with self._lock:
            self._ensure_started()
            if rel not in self._loaded:
                self._push_bytes(data, rel)
                reply, _ = self._call({"op": "load", "path": rel,
                                       "options": self.session_options}, step="load")
                self._loaded[rel] = reply
        return AdbSession(self, rel, self._loaded[rel])

    def versions(self) -> dict[str, str]:
        """Device facts (getprop) and the runtime on the device, for report headers."""
        facts = {"device": self.serial}
        try:
            with self._lock:
                self._ensure_started()
                facts.update({f"device_{k}": v for k, v in self.adb.device_facts(self.serial)
                              .items()})
        except (AdbError, BackendError) as exc:
            return dict(facts, device_error=str(exc))
        hello = self._hello
        facts[f"{hello.get('runtime', 'runtime')} (device)"] = hello.get("runtime_version", "?")
        facts["device_runner"] = f"{hello.get('runner', '?')} protocol {hello.get('protocol')}"
        return facts

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.request({"op": "bye"}, timeout=2)
                except (RunnerGone, RunnerRefused):
                    pass
            self._teardown()

    # -- runner lifecycle --------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._error is not None:
            raise self._error
        if self._client is not None:
            return
        try:
            self._start()
        except (AdbError, BackendError, RunnerGone) as exc:
            self._teardown()
            hint = self._runner_hint() if isinstance(exc, RunnerGone) else ""
            self._error = BackendError(f"{self.name}: cannot start the on-device runner: "
                                       f"{_strip(exc, self.name)}{hint}")
            raise self._error from None

    def _start(self) -> None:
        self.adb.ensure_device(self.serial)
        self.adb.shell(self.serial, ["mkdir", "-p", posixpath.join(self.device_dir, "models")],
                       step="mkdir")
        if self.runner_cmd is None:
            self.adb.push(self.serial, str(RUNNER_SOURCE),
                          posixpath.join(self.device_dir, "runner.py"))
            command = ["python3", posixpath.join(self.device_dir, "runner.py")]
        else:
            command = shlex.split(self.runner_cmd)
        line = (f"cd {shlex.quote(self.device_dir)} && exec "
                + shell_join(command + ["--dir", self.device_dir, "--port", "0",
                                        "--watch-stdin"]))
        self._process = RunnerProcess(self.adb.popen(["shell", line], serial=self.serial))
        device_port = self._process.wait_ready(self.timeout)
        self._host_port = self.adb.forward(self.serial, device_port)
        self._client = RunnerClient(self._host_port, self.timeout)
        self._hello, _ = self._client.request({"op": "hello", "protocol": 1})

    def _runner_hint(self) -> str:
        if self.runner_cmd is not None:
            return f" (runner command: {self.runner_cmd!r})"
        return (". The device needs python3 with numpy and onnxruntime on its PATH, "
                "or a native runner given with --device-runner")

    def _teardown(self) -> None:
        client, process, port = self._client, self._process, self._host_port
        self._client = self._process = self._host_port = None
        self._loaded.clear()
        if client is not None:
            client.close()
        if process is not None:
            process.stop(grace=2)
        if port is not None and self.adb is not None:
            try:
                self.adb.remove_forward(self.serial, port)
            except AdbError:
                pass

    # -- requests ----------------------------------------------------------------------------
    def _push_bytes(self, data: bytes, rel: str) -> None:
        with tempfile.TemporaryDirectory(prefix="conformance-adb-") as tmp:
            local = os.path.join(tmp, "model.onnx")
            with open(local, "wb") as f:
                f.write(data)
            try:
                self.adb.push(self.serial, local, posixpath.join(self.device_dir, rel))
            except AdbError as exc:
                raise BackendError(f"{self.name}: {exc}") from None

    def _call(self, header: dict, arrays: Sequence[np.ndarray] = (), *, step: str,
              timeout: float | None = None) -> tuple[dict, list[np.ndarray]]:
        """One request to the runner; a dead device poisons the backend with one message."""
        with self._lock:
            self._ensure_started()
            try:
                return self._client.request(header, arrays, timeout=timeout)
            except RunnerRefused as exc:
                raise BackendError(f"{self.name}: {step} failed on the device: {exc}") from None
            except RunnerGone as exc:
                why = [self._process.why_dead()] if self._process else []
                self._error = BackendError(
                    f"{self.name}: the device stopped answering during {step} ({exc}; "
                    + "; ".join(why + [self._device_state()])
                    + "). Later calls on this device fail at once.")
                self._teardown()
                raise self._error from None

    def _device_state(self) -> str:
        try:
            states = {d.serial: d.state for d in self.adb.devices()}
        except AdbError as exc:
            return f"adb devices failed: {exc.adb_message}"
        if self.serial not in states:
            return "adb no longer lists the device"
        return f"adb lists the device as {states[self.serial]}"


class AdbSession:
    """A model loaded in the device's runner."""

    def __init__(self, backend: AdbDeviceBackend, path: str, info: dict):
        self.backend, self.path = backend, path
        self.input_names = [arg["name"] for arg in info.get("inputs", [])]
        self.output_names = [arg["name"] for arg in info.get("outputs", [])]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs for ``inputs`` (model-input order), computed on the device."""
        _, outputs = self.backend._call({"op": "run", "session": self.path},
                                        [np.asarray(x) for x in inputs], step="run")
        return [np.array(x) for x in outputs]  # writable copies, detached from the wire buffer

    def time(self, inputs: Sequence[np.ndarray], warmup: int = 3,
             iterations: int = 20) -> list[float]:
        """Per-iteration seconds measured on the device, after ``warmup`` untimed runs."""
        runs = max(1, warmup + iterations)
        reply, _ = self.backend._call(
            {"op": "time", "session": self.path, "warmup": warmup, "iterations": iterations},
            [np.asarray(x) for x in inputs], step="time",
            timeout=self.backend.timeout * max(1.0, runs / 10))
        return [float(t) for t in reply["times"]]


def _strip(exc: Exception, name: str) -> str:
    text = str(exc)
    return text[len(name) + 2:] if text.startswith(name + ": ") else text
