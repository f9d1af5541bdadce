"""An Android device (or anything adb reaches) as a backend: ``--device=SERIAL``.

One long-lived runner per device (``conformance/device/runner.py``, pushed to the work folder
and started through ``adb shell`` with the runtime bundle for the device's ABI, itself pushed
once: :mod:`conformance.device.bundle`, :mod:`conformance.device.install`) is reached over
``adb forward``; each distinct model is pushed once (its content hash is its file name) and
loaded once, then every example is one request/response on that socket, not three adb process
launches.

Failure policy: if the runner cannot start, or the device stops answering (connection refused
or closed, the runner crashed, an adb push that fails on a device adb no longer lists), the
backend keeps that one error, naming the test during which the device went, and every later call
raises it at once, instead of one timeout per example.

What the device changes: with ``host_diff`` (the default) every ``run`` also runs the same program
through the same runtime on this host (ONNX Runtime, or LiteRT for a ``.tflite``) and keeps the
difference as :attr:`AdbDeviceBackend.last_host_diff` (and the worst since the last
:meth:`AdbDeviceBackend.pop_host_diff`), so an ARM device's kernels can be told apart from the
host's x86 ones.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shlex
import sys
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from conformance.backends.base import Backend, BackendError
from conformance.backends.host_diff import HostDiff, host_diff
from conformance.device.adb import Adb, AdbError, shell_join
from conformance.device.packages import FetchError
from conformance.device.client import (RunnerClient, RunnerGone, RunnerProcess, RunnerRefused,
                                       RunnerTimeout)

DEFAULT_DEVICE_DIR = "/data/local/tmp/conformance"
#: Request timeouts are this many times longer on an emulator (``ro.kernel.qemu=1``): the ARM
#: loopback device runs SuperResolutionNet at 224x224 in 30-40 s under QEMU, a phone in 50 ms.
EMULATOR_TIMEOUT_SCALE = 10
RUNNER_SOURCE = Path(__file__).resolve().parents[1] / "device" / "runner.py"


class AdbDeviceBackend(Backend):
    """Runs models on the device ``serial`` (``HOST:PORT`` serials are connected on first use)."""

    runs_at_once = "none"  # one connection to one runner: its calls are serialized

    measures_own_latency = True

    def __init__(self, serial: str, *, adb: str | Adb | None = None,
                 device_dir: str = DEFAULT_DEVICE_DIR, runner_cmd: str | None = None,
                 timeout: float = 30.0, session_options: dict | None = None,
                 host_diff: bool = True, progress=None):
        """``progress``: called with one line per step of a runtime bundle's push (default:
        stderr)."""
        self.serial, self.timeout = serial, timeout
        self._timeout = timeout  # as given; ``timeout`` is scaled up on an emulator
        self.name = "adb-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", serial)
        self.place = f"adb:{serial}"  # where a target runs (records and reports)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        # xdist workers sharing a device each get their own folder (and runner).
        self.device_dir = posixpath.join(device_dir, worker) if worker else device_dir
        self.base_dir = device_dir  # the runtime bundle is shared by the workers
        self.progress = progress or _say
        self.bundle_root: str | None = None  # where the runtime bundle is, once installed
        self.bundle = None
        self.runner_cmd, self.session_options = runner_cmd, session_options or {}
        self._error: BackendError | None = None
        self._client: RunnerClient | None = None
        self._process: RunnerProcess | None = None
        self._host_port: int | None = None
        self._hello: dict = {}
        self._loaded: dict[str, dict] = {}
        self._lock = threading.RLock()
        self.host_diff = host_diff
        self._host_sessions: dict[str, object] = {}
        self.last_host_diff: HostDiff | None = None
        self._worst_host_diff: HostDiff | None = None
        try:
            self.adb = adb if isinstance(adb, Adb) else Adb(adb, timeout=timeout)
        except AdbError as exc:
            self.adb, self._error = None, BackendError(f"{self.name}: {exc}")

    # -- the Backend API ---------------------------------------------------------------------
    def prepare(self, model: onnx.ModelProto) -> "AdbSession":
        """Push the model (once per content) and load it in the runner (once)."""
        data = model.SerializeToString()
        rel = f"models/{hashlib.sha256(data).hexdigest()[:24]}.onnx"
        return AdbSession(self, rel, self._ensure_loaded(rel, data), data)

    def _ensure_loaded(self, rel: str, data: bytes) -> dict:
        """The runner's ``load`` reply for ``rel``; pushed and loaded if this runner lacks it
        (the first time, or after a restart)."""
        with self._lock:
            self._ensure_started()
            if rel not in self._loaded:
                try:
                    self._push_bytes(data, rel)
                except AdbError as exc:
                    raise self._adb_failed(exc, "push") from None
                reply, _ = self._call({"op": "load", "path": rel,
                                       "options": self.session_options}, step="load")
                self._loaded[rel] = reply
            return self._loaded[rel]

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
        if hello.get("machine"):
            facts["device_machine"] = hello["machine"]  # what the runner's CPU executes
        return facts

    @property
    def runner_info(self) -> dict:
        """The runner's ``hello`` reply (runtime, versions, ``machine``...); empty before start."""
        return dict(self._hello)

    @property
    def lost(self) -> BackendError | None:
        """The error that made this device unusable (every later call raises it), or None."""
        return self._error

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
        except (AdbError, BackendError, RunnerGone, FetchError) as exc:
            self._teardown()
            hint = self._runner_hint() if isinstance(exc, RunnerGone) else ""
            self._error = BackendError(f"{self.name}: cannot start the on-device runner: "
                                       f"{_strip(exc, self.name)}{hint}")
            raise self._error from None

    def _start(self) -> None:
        self.adb.ensure_device(self.serial)
        if self.adb.getprop(self.serial, "ro.kernel.qemu") == "1":
            self.timeout = self._timeout * EMULATOR_TIMEOUT_SCALE
        self.adb.shell(self.serial, ["mkdir", "-p", posixpath.join(self.device_dir, "models")],
                       step="mkdir")
        # Pushed even beside a --device-runner: "python3 runner.py" is a Termux user's runner.
        self.adb.push(self.serial, str(RUNNER_SOURCE), posixpath.join(self.device_dir, "runner.py"))
        if self.runner_cmd is None:
            start = self._install_bundle()
        else:
            start = "exec " + shell_join(shlex.split(self.runner_cmd))
        line = (f"cd {shlex.quote(self.device_dir)} && {start} "
                + shell_join(["--dir", self.device_dir, "--port", "0", "--watch-stdin"]))
        self._process = RunnerProcess(self.adb.popen(["shell", line], serial=self.serial))
        device_port = self._process.wait_ready(self.timeout)
        self._host_port = self.adb.forward(self.serial, device_port)
        self._client = RunnerClient(self._host_port, self.timeout)
        self._hello, _ = self._client.request({"op": "hello", "protocol": 1})

    def _install_bundle(self) -> str:
        """Push the runtime bundle for the device's ABI (once per device and bundle); the
        shell words that start the runner with it."""
        from conformance.device import bundle, install

        abi = self.adb.getprop(self.serial, "ro.product.cpu.abi")
        found = bundle.ensure(abi, say=self.progress)
        self.bundle_root = install.install(self.adb, self.serial, self.base_dir, found,
                                           self.progress)
        self.bundle = found
        return install.runner_command(self.bundle_root, found, self.device_dir, "runner.py")

    def _runner_hint(self) -> str:
        if self.runner_cmd is not None:
            return f" (runner command: {self.runner_cmd!r})"
        if self.bundle_root:
            return f" (the runtime bundle in {self.bundle_root})"
        return ""

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
            self.adb.push(self.serial, local, posixpath.join(self.device_dir, rel))

    def _call(self, header: dict, arrays: Sequence[np.ndarray] = (), *, step: str,
              timeout: float | None = None) -> tuple[dict, list[np.ndarray]]:
        """One request to the runner; a dead device poisons the backend with one message."""
        with self._lock:
            self._ensure_started()
            try:
                return self._client.request(header, arrays, timeout=timeout)
            except RunnerRefused as exc:
                raise BackendError(f"{self.name}: {step} failed on the device: {exc}") from None
            except RunnerTimeout as exc:
                if self._process is not None and self._process.alive and self._listed():
                    # Busy, not gone: this call fails, the next one starts a fresh runner.
                    self._teardown()
                    raise BackendError(f"{self.name}: {step} failed on the device: {exc} (the "
                                       "runner was stopped; the next call starts a new one)"
                                       ) from None
                why = [self._process.why_dead()] if self._process else []
                raise self._gone(f"the device stopped answering during {step} ({exc}; "
                                 + "; ".join(why + [self._device_state()]) + ")") from None
            except RunnerGone as exc:
                why = [self._process.why_dead()] if self._process else []
                raise self._gone(f"the device stopped answering during {step} ({exc}; "
                                 + "; ".join(why + [self._device_state()]) + ")") from None

    def _adb_failed(self, exc: AdbError, step: str) -> BackendError:
        """An adb step failed: the device is gone if adb no longer lists it as usable."""
        if self._listed():
            return BackendError(f"{self.name}: {exc}")
        return self._gone(f"{step} failed ({exc.adb_message}; {self._device_state()})")

    def _listed(self) -> bool:
        """True when adb lists the device as usable (state ``device``)."""
        return self._device_state() == _LISTED

    def _gone(self, what: str) -> BackendError:
        """Poison the backend: ``what`` happened; every later call raises this at once."""
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        where = f" in {test}" if test else ""
        self._error = BackendError(f"{self.name}: device lost{where}: {what}. "
                                   "Later calls on this device fail at once.")
        self._teardown()
        return self._error

    # -- the same model on this host ---------------------------------------------------------
    def variants(self) -> dict[str, Backend]:
        """The device's runtime (ONNX Runtime) on this host, with the device's thread setting."""
        from conformance.backends.onnxrt import OnnxRuntimeBackend

        return {"host": OnnxRuntimeBackend(threads=self.session_options.get("intra_op_num_threads"))}

    def pop_host_diff(self) -> HostDiff | None:
        """The largest device-vs-host difference since the last call (e.g. over one test's
        examples), then forget it. None when nothing was compared."""
        with self._lock:
            worst, self._worst_host_diff = self._worst_host_diff, None
        return worst

    def _note_host_diff(self, path: str, model: bytes, inputs: list[np.ndarray],
                        outputs: list[np.ndarray]) -> None:
        if not self.host_diff:
            return
        try:
            run, name = self._host_session(path, model)
            diff = host_diff(outputs, run(inputs), name)
        except Exception:  # the host's own failure is no verdict on the device
            diff = None
        with self._lock:
            self.last_host_diff = diff
            worst = self._worst_host_diff
            if diff is not None and (worst is None or diff.max_abs > worst.max_abs):
                self._worst_host_diff = diff

    def _host_session(self, path: str, model: bytes):
        """The same program on this host, once per model: ONNX Runtime with the device's
        session options, or LiteRT for a ``.tflite``. (run(inputs) -> outputs, its name)."""
        import platform

        if path not in self._host_sessions:
            if path.endswith(".tflite"):
                from importlib.metadata import version

                from conformance.backends.litert import LiteRtBackend

                session = LiteRtBackend().load(model)
                name = f"litert {version('ai-edge-litert')}"
            else:
                import onnxruntime as ort

                options = ort.SessionOptions()
                for key, value in self.session_options.items():
                    setattr(options, key, value)
                ort_session = ort.InferenceSession(model, options,
                                                   providers=["CPUExecutionProvider"])
                names = [arg.name for arg in ort_session.get_inputs()]
                session = _OrtRun(ort_session, names)
                name = f"onnxruntime {ort.__version__}"
            self._host_sessions[path] = (session.run, f"{name} on {platform.machine()}")
        return self._host_sessions[path]

    def _device_state(self) -> str:
        try:
            states = {d.serial: d.state for d in self.adb.devices()}
        except AdbError as exc:
            return f"adb devices failed: {exc.adb_message}"
        if self.serial not in states:
            return "adb no longer lists the device"
        return f"adb lists the device as {states[self.serial]}"


_LISTED = "adb lists the device as device"


class _OrtRun:
    def __init__(self, session, names):
        self.session, self.names = session, names

    def run(self, inputs):
        return self.session.run(None, dict(zip(self.names, inputs)))


class AdbSession:
    """A model loaded in the device's runner."""

    def __init__(self, backend: AdbDeviceBackend, path: str, info: dict, model: bytes):
        self.backend, self.path, self._model = backend, path, model
        self.input_names = [arg["name"] for arg in info.get("inputs", [])]
        self.output_names = [arg["name"] for arg in info.get("outputs", [])]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs for ``inputs`` (model-input order), computed on the device; with
        ``host_diff`` the backend's :attr:`~AdbDeviceBackend.last_host_diff` is updated."""
        arrays = [np.asarray(x) for x in inputs]
        self.backend._ensure_loaded(self.path, self._model)
        _, outputs = self.backend._call({"op": "run", "session": self.path}, arrays, step="run")
        outputs = [np.array(x) for x in outputs]  # writable copies, detached from the wire buffer
        self.backend._note_host_diff(self.path, self._model, arrays, outputs)
        return outputs

    def time(self, inputs: Sequence[np.ndarray], warmup: int = 3,
             iterations: int = 20) -> list[float]:
        """Per-iteration seconds measured on the device, after ``warmup`` untimed runs."""
        runs = max(1, warmup + iterations)
        self.backend._ensure_loaded(self.path, self._model)
        reply, _ = self.backend._call(
            {"op": "time", "session": self.path, "warmup": warmup, "iterations": iterations},
            [np.asarray(x) for x in inputs], step="time",
            timeout=self.backend.timeout * max(1.0, runs / 10))
        return [float(t) for t in reply["times"]]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _strip(exc: Exception, name: str) -> str:
    text = str(exc)
    return text[len(name) + 2:] if text.startswith(name + ": ") else text
