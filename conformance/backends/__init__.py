"""Backends under test: ONNX Runtime (built in), ONNX-backend-API plug-ins, ADB devices."""

from __future__ import annotations

from conformance.backends.base import Backend, BackendError, Session


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


__all__ = ["Backend", "BackendError", "Session", "load_backend"]
