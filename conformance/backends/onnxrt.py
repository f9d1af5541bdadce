"""ONNX Runtime through its native InferenceSession API (the default backend under test)."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np
import onnx

from conformance.backends.base import Backend, BackendError


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


class OrtSession:
    """One InferenceSession; inputs are fed by position in model-input order.

    ``profiled(prefix)`` makes a twin of the session with profiling on (same model, options and
    providers): ``placement`` runs it once on the smallest inputs run to read where each node ran.
    """

    def __init__(self, session, name: str, *, profiled: Callable[[str], object] | None = None):
        self._session = session
        self._input_names = [i.name for i in session.get_inputs()]
        self._name = name
        self._profiled = profiled
        # The smallest inputs run so far, for placement()'s run (a reference, no copy): one
        # session serves many drawn shapes, and a 1080p frame would cost seconds more.
        self._smallest: tuple[int, Sequence[np.ndarray]] | None = None

    def placement(self) -> dict[str, str] | None:
        """Each node of the optimized graph (``"name (op)"``) -> the execution provider that ran
        it, from a profiled run of a twin session on the smallest inputs run (None before any)."""
        if self._profiled is None or self._smallest is None:
            return None
        from conformance.backends.ort_placement import profiled_placement

        return profiled_placement(self._profiled, dict(zip(self._input_names, self._smallest[1])), self._name)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._input_names):
            raise BackendError(
                f"{self._name}: model takes {len(self._input_names)} inputs, got {len(inputs)}"
            )
        feed = dict(zip(self._input_names, inputs))
        size = sum(np.size(x) for x in inputs)
        if self._smallest is None or size < self._smallest[0]:
            self._smallest = (size, inputs)
        return self._session.run(None, feed)


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime with one execution provider (CPU unless told otherwise)."""

    runs_at_once = "session"  # InferenceSession.run is documented thread-safe

    def __init__(self, provider: str = "CPUExecutionProvider", *, threads: int | None = None,
                 optimizations: bool = True):
        providers = available_providers()
        if provider not in providers:
            raise BackendError(
                f"ONNX Runtime provider {provider!r} is not in this build; "
                f"available: {', '.join(providers)}"
            )
        self.provider = provider
        self.threads = threads
        self.optimizations = optimizations  # False: ORT_DISABLE_ALL (no graph rewrite)
        short = provider.removesuffix("ExecutionProvider").lower()
        self.name = "onnxruntime" if short == "cpu" else f"onnxruntime-{short}"
        if not optimizations:  # no graph rewrites (fusions, constant folding), each node by its own kernel
            self.name += " (no optimizations)"

    def prepare(self, model: onnx.ModelProto) -> OrtSession:
        data = model.SerializeToString()
        try:
            session = self._session(data)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise BackendError(f"{self.name}: cannot prepare model: {exc}", cause=exc) from exc
        return OrtSession(session, self.name, profiled=functools.partial(self._session, data))

    def _session(self, data: bytes, profile_prefix: str | None = None):
        """The InferenceSession of ``data``; with ``profile_prefix``, profiling into that path."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings would flood the test output
        if self.threads:
            options.intra_op_num_threads = self.threads
        if not self.optimizations:
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        if profile_prefix:
            options.enable_profiling, options.profile_file_prefix = True, profile_prefix
        return onnxruntime.InferenceSession(data, options, providers=[self.provider])

    def variants(self) -> dict[str, Backend]:
        return {"one-thread": OnnxRuntimeBackend(self.provider, threads=1, optimizations=self.optimizations),
                "no-graph-optimizations": OnnxRuntimeBackend(self.provider, threads=self.threads,
                                                             optimizations=False)}

    def versions(self) -> dict[str, str]:
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__, "provider": self.provider}
