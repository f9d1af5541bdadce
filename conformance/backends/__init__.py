"""Backends under test: ONNX Runtime (built in), ONNX-backend-API plug-ins, ADB devices."""

from __future__ import annotations

from conformance.backends.base import Backend, BackendError, ProgramBackend, Session


def load_backend(spec: str, *, ort_provider: str = "CPUExecutionProvider") -> Backend:
    """Build a backend from a command-line name.

    ``onnxruntime`` is the built-in ONNX Runtime backend (``ort_provider`` picks the execution
    provider); ``onnxruntime-ort`` runs each model's ORT-format (mobile) conversion; anything
    else is an ONNX-backend-API module or class (``onnxruntime.backend``, ``pkg.mod:Class``). Raises ``BackendError`` with a one-line message when it cannot.
    """
    if spec in ("onnxruntime", "ort"):
        from conformance.backends.onnxrt import OnnxRuntimeBackend

        return OnnxRuntimeBackend(ort_provider)
    if spec == "onnxruntime-ort":  # the ORT-format (mobile) conversion, run by ONNX Runtime
        from conformance.backends.ortformat import OrtFormatBackend

        return OrtFormatBackend()
    from conformance.backends.onnx_api import OnnxApiBackend

    return OnnxApiBackend(spec)


__all__ = ["Backend", "BackendError", "ProgramBackend", "Session", "load_backend", "load_backends"]

def load_backends(names, *, ort_provider: str = "CPUExecutionProvider", devices=(),
                  adb: str | None = None, device_dir: str | None = None,
                  runner_cmd: str | None = None, device_timeout: float = 30.0) -> list[Backend]:
    """The backends the command line names (``--backend``, repeated names once), then one ADB
    device backend per ``--device``. Every device serial is checked (a ``HOST:PORT`` one is
    connected) up front, so a wrong serial is one ``BackendError`` listing what adb sees."""
    backends = [load_backend(name, ort_provider=ort_provider) for name in dict.fromkeys(names)]
    serials = list(dict.fromkeys(devices))
    if not serials:
        return backends
    from conformance.backends.adb import DEFAULT_DEVICE_DIR, AdbDeviceBackend
    from conformance.device.adb import Adb, AdbError

    try:
        client = Adb(adb, timeout=device_timeout)
        for serial in serials:
            client.ensure_device(serial)
    except AdbError as exc:
        raise BackendError(f"--device: {exc}") from None
    return backends + [
        AdbDeviceBackend(serial, adb=client, device_dir=device_dir or DEFAULT_DEVICE_DIR,
                         runner_cmd=runner_cmd, timeout=device_timeout)
        for serial in serials
    ]
