"""OpenVINO (Intel's inference runtime) on its CPU plugin, reading the ONNX model directly.

Two targets: ``openvino`` pins ``INFERENCE_PRECISION_HINT=f32``; ``openvino-default`` keeps the
plugin's default, which is bf16 on a CPU with AVX512_BF16 or AMX (SuperResolutionNet is then off
by ~2 at pixel scale) and f32 elsewhere. The header names the precision actually in force.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx

from conformance.backends._runtime import expect_inputs, failing, graph_inputs, load_module, require, threads
from conformance.backends.base import Backend


#: Runtime-graph layers that move data rather than compute an ONNX node's values.
_PLUMBING = {"Const", "Reorder", "Parameter", "Output", "Input", "Result"}


class OpenVinoSession:
    """One compiled model and one infer request (reused: creating one per run costs time)."""

    def __init__(self, compiled, name: str, n_inputs: int):
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._name = name
        self._n_inputs = n_inputs

    def placement(self) -> dict[str, str]:
        """ONNX node -> the precision the CPU plugin runs it in (its runtime graph's
        ``runtimePrecision``: bf16 under the default hint on a CPU with AVX512_BF16 or AMX)."""
        found = {}
        with failing(self._name, "get_runtime_model"):
            for op in self._compiled.get_runtime_model().get_ordered_ops():
                info = op.get_rt_info()
                kind = info["layerType"].astype(str)
                if kind in _PLUMBING:
                    continue
                for node in filter(None, info["originalLayersNames"].astype(str).split(",")):
                    found[node] = info["runtimePrecision"].astype(str)
        return found

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        expect_inputs(self._name, self._n_inputs, inputs)
        with failing(self._name, "infer"):
            result = self._request.infer([np.ascontiguousarray(x) for x in inputs])
            # The request owns its output buffers and overwrites them on the next run: copy.
            return [np.array(result[port], copy=True) for port in self._compiled.outputs]


class OpenVinoBackend(Backend):
    """OpenVINO's CPU plugin; ``default=True`` keeps the plugin's default inference precision."""

    format = "onnx"

    def __init__(self, *, default: bool = False, threads: int | None = None):
        self.name = "openvino-default" if default else "openvino"
        require(self.name, "openvino", "openvino")
        self.default = default
        self.threads = threads
        self._core = None

    def _config(self) -> dict[str, str]:
        config = {"INFERENCE_NUM_THREADS": str(threads(self.threads))}
        if not self.default:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        return config

    def core(self):
        if self._core is None:
            ov = load_module(self.name, "openvino")
            self._core = ov.Core()
        return self._core

    def prepare(self, model: onnx.ModelProto) -> OpenVinoSession:
        core = self.core()
        with failing(self.name, "read_model"):
            ov_model = core.read_model(model.SerializeToString(), b"")
        with failing(self.name, "compile_model"):
            compiled = core.compile_model(ov_model, "CPU", self._config())
        return OpenVinoSession(compiled, self.name, len(graph_inputs(model)))

    def variants(self) -> dict[str, Backend]:
        found = {"one-thread": OpenVinoBackend(default=self.default, threads=1)}
        if self.default:  # the default precision hint is the plugin's rewrite (bf16 on this CPU)
            found["no-graph-optimizations"] = OpenVinoBackend(default=False, threads=self.threads)
        return found

    def precision(self) -> str:
        """The inference precision in force: the pinned f32, or the CPU plugin's default here."""
        if not self.default:
            return "f32"
        with failing(self.name, "get_property"):
            return self.core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()  # "bf16", "f32"

    def versions(self) -> dict[str, str]:
        ov = load_module(self.name, "openvino")
        hint = self.precision() + (" (the CPU plugin's default here)" if self.default else " (pinned)")
        return {"openvino": ov.get_version().split("-")[0], "device": "CPU",
                "INFERENCE_PRECISION_HINT": hint, "threads": str(threads(self.threads))}

    def close(self) -> None:
        self._core = None
