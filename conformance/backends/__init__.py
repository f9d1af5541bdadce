"""Backends under test: ONNX Runtime (built in), the optional runtimes, ONNX-backend-API
plug-ins, ADB devices."""

from __future__ import annotations

import importlib

from conformance.backends._runtime import Unsupported
from conformance.backends.base import Backend, BackendError, ProgramBackend, Session

#: The optional runtimes by command-line name: (module, class, keyword arguments). Each module
#: imports its runtime lazily; a missing package is one ``BackendError`` naming the extra.
RUNTIMES: dict[str, tuple[str, str, dict]] = {
    "openvino": ("openvino", "OpenVinoBackend", {}),
    "openvino-default": ("openvino", "OpenVinoBackend", {"default": True}),
    "tract": ("tract", "TractBackend", {}),
    "mnn": ("mnn", "MnnBackend", {}),
    "mnn-default": ("mnn", "MnnBackend", {"default": True}),
    "ncnn": ("ncnn", "NcnnBackend", {}),
    "ncnn-default": ("ncnn", "NcnnBackend", {"default": True}),
    "executorch": ("executorch", "ExecutorchBackend", {}),
    "executorch-portable": ("executorch", "ExecutorchBackend", {"delegate": None}),
    "litert": ("litert", "LiteRtBackend", {}),
    "litert-reference": ("litert", "LiteRtBackend", {"reference": True}),
}


def load_runtime(name: str) -> Backend:
    """The optional runtime called ``name`` (a key of ``RUNTIMES``), with its settings."""
    module, cls, kwargs = RUNTIMES[name]
    return getattr(importlib.import_module(f"conformance.backends.{module}"), cls)(**kwargs)


def load_backend(spec: str, *, ort_provider: str = "CPUExecutionProvider") -> Backend:
    """Build a backend from a command-line name.

    ``onnxruntime`` is the built-in ONNX Runtime backend (``ort_provider`` picks the execution
    provider); ``onnxruntime-ort`` runs each model's ORT-format (mobile) conversion; a name in
    ``RUNTIMES`` is an optional runtime (OpenVINO, tract, MNN, ncnn, ExecuTorch, LiteRT); anything
    else is a plug-in: an ONNX-backend-API module or class (``onnxruntime.backend``,
    ``pkg.mod:Class``), or one with ``export``/``load`` taking a torch program
    (``conformance.backends.program_api``). Raises ``BackendError`` with a one-line message when it cannot.
    """
    if spec in ("onnxruntime", "ort"):
        from conformance.backends.onnxrt import OnnxRuntimeBackend

        return OnnxRuntimeBackend(ort_provider)
    if spec == "onnxruntime-ort":  # the ORT-format (mobile) conversion, run by ONNX Runtime
        from conformance.backends.ortformat import OrtFormatBackend

        return OrtFormatBackend()
    if spec in RUNTIMES:
        return load_runtime(spec)
    from conformance.backends.onnx_api import OnnxApiBackend, import_target
    from conformance.backends.program_api import ProgramApiBackend, is_program_runtime

    target = import_target(spec)
    if is_program_runtime(target):  # export/load: a runtime that takes a torch program
        return ProgramApiBackend(spec, target)
    return OnnxApiBackend(spec)


__all__ = ["RUNTIMES", "Backend", "BackendError", "ProgramBackend", "Session", "Unsupported", "load_backend",
           "load_backends", "load_runtime"]

def load_backends(names, *, ort_provider: str = "CPUExecutionProvider", devices=(),
                  adb: str | None = None, device_dir: str | None = None,
                  runner_cmd: str | None = None, device_timeout: float = 30.0,
                  device_progress=None, device_runtimes=("onnxruntime",)) -> list[Backend]:
    """The backends the command line names (``--backend``, repeated names once), then one ADB
    device backend per ``--device``. Every device serial is checked (a ``HOST:PORT`` one is
    connected) up front, so a wrong serial is one ``BackendError`` listing what adb sees.
    ``device_runtimes`` picks each device's targets: ``onnxruntime``, ``litert``."""
    backends = [load_backend(name, ort_provider=ort_provider) for name in dict.fromkeys(names)]
    serials = list(dict.fromkeys(devices))
    if not serials:
        return backends
    unknown = sorted(set(device_runtimes) - {"onnxruntime", "litert"})
    if unknown:
        raise BackendError(f"--device-runtime {unknown[0]}: unknown; choose onnxruntime or litert")
    from conformance.backends.adb import DEFAULT_DEVICE_DIR, AdbDeviceBackend
    from conformance.device.adb import Adb, AdbError

    try:
        client = Adb(adb, timeout=device_timeout)
        for serial in serials:
            client.ensure_device(serial)
    except AdbError as exc:
        raise BackendError(f"--device: {exc}") from None
    for serial in serials:
        device = AdbDeviceBackend(serial, adb=client, device_dir=device_dir or DEFAULT_DEVICE_DIR,
                                  runner_cmd=runner_cmd, timeout=device_timeout,
                                  progress=device_progress)
        backends += [device] if "onnxruntime" in device_runtimes else []
        if "litert" in device_runtimes:
            from conformance.backends.adb_litert import AdbLiteRtBackend

            backends.append(AdbLiteRtBackend(device))  # a usage error when LiteRT is missing here
    return backends
