"""MNN (Alibaba's mobile inference engine): ONNX converted with MNNConvert, run by its CPU backend.

Two targets: ``mnn`` runs at high precision with Winograd convolution off (hint
WINOGRAD_MEMORY_LEVEL=0), ``mnn-default`` with MNN's defaults, whose Winograd 3x3 convolution puts
SuperResolutionNet off by ~0.15 at pixel scale whatever the precision setting.

The converter is called through its extension module (``_tools.mnnconvert``) in a child process,
never through the ``mnnconvert`` script: the script's logger first reaches for a remote service
and, without the aliyun SDK, runs ``pip install`` itself. Conversions are cached by model bytes.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np
import onnx

from conformance.backends._runtime import (ConversionCache, Scratch, Unsupported, expect_inputs, failing,
                                           graph_inputs, graph_outputs, load_module, require, run_tool, threads)
from conformance.backends.base import Backend, BackendError
from conformance.formats.artifact_cache import cached_files, versions

#: ``MNN::Interpreter::HintMode::WINOGRAD_MEMORY_LEVEL``: 0 turns Winograd convolution off.
WINOGRAD_MEMORY_LEVEL = 3
_CONVERT = "import sys, _tools; _tools.mnnconvert(sys.argv)"


class MnnSession:
    """An ``MNN.nn`` module with mutable input shapes; NCHW in, NCHW out."""

    def __init__(self, module, name: str, n_inputs: int, manager=None):
        self._module = module
        self._manager = manager  # the runtime the module runs on: kept as long as the module
        self._name = name
        self._n_inputs = n_inputs

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        expect_inputs(self._name, self._n_inputs, inputs)
        if any(np.asarray(x).dtype != np.float32 for x in inputs):
            raise Unsupported(f"{self._name}: this backend feeds float32 inputs only")
        F = load_module(self._name, "MNN.expr")
        with failing(self._name, "forward"):
            # Kept alive until the outputs are read: MNN may evaluate lazily from the arrays' memory.
            arrays = [np.ascontiguousarray(x) for x in inputs]
            feeds = [F.const(a, list(a.shape), F.NCHW) for a in arrays]
            outputs = self._module.forward(feeds)
            # Outputs may come back in MNN's packed NC4HW4 layout: convert before reading.
            return [np.array(F.convert(y, F.NCHW).read(), copy=True) for y in outputs]


class MnnBackend(Backend):
    """MNN's CPU backend; ``default=True`` keeps MNN's default precision and Winograd."""

    format = "onnx"

    def __init__(self, *, default: bool = False, threads: int | None = None):
        self.name = "mnn-default" if default else "mnn"
        require(self.name, "mnn", "MNN", "_tools")
        self.default = default
        self.threads = threads
        self._scratch = Scratch("mnn")
        self.cache = ConversionCache()

    def convert(self, model: onnx.ModelProto) -> str:
        """The path of the ``.mnn`` conversion of ``model`` (converted once per distinct model)."""
        data = model.SerializeToString()
        return self.cache.get(ConversionCache.key(data), lambda: self._kept(data))

    def _kept(self, data: bytes) -> str:
        """The conversion from the disk cache of artifacts, else made by MNNConvert (and kept there)."""
        files = cached_files("MNNConvert", versions("MNN"), data, lambda: {"model.mnn": self._convert(data)},
                             self._scratch.folder)
        return files["model.mnn"]

    def _convert(self, data: bytes) -> str:
        source, target = self._scratch.file(".onnx"), self._scratch.file(".mnn")
        with open(source, "wb") as f:
            f.write(data)
        try:
            run_tool(self.name, "MNNConvert", [sys.executable, "-c", _CONVERT, "-f", "ONNX", "--modelFile", source,
                                               "--MNNModel", target, "--bizCode", "conformance"],
                     cwd=os.path.dirname(source))
        except BackendError as exc:
            if "BatchNorm's gamma not valid" in str(exc):  # parameters fed as graph inputs: a known limit
                raise Unsupported(f"{self.name}: MNNConvert needs BatchNormalization's parameters as constants "
                                  f"({exc})") from None
            raise
        finally:
            os.unlink(source)
        if not os.path.exists(target):  # MNNConvert reports some refusals only in its log
            raise BackendError(f"{self.name}: MNNConvert wrote no model")
        return target

    def _runtime_manager(self):
        nn = load_module(self.name, "MNN.nn")
        config = {"backend": "CPU", "numThread": threads(self.threads)}
        if not self.default:
            config["precision"] = "high"
        with failing(self.name, "create_runtime_manager"):
            manager = nn.create_runtime_manager((config,))
            if not self.default:
                manager.set_hint(WINOGRAD_MEMORY_LEVEL, 0)
        return manager

    def prepare(self, model: onnx.ModelProto) -> MnnSession:
        path = self.convert(model)
        nn = load_module(self.name, "MNN.nn")
        inputs = graph_inputs(model)
        manager = self._runtime_manager()
        with failing(self.name, "load_module_from_file"):
            module = nn.load_module_from_file(path, inputs, graph_outputs(model),
                                              runtime_manager=manager, shape_mutable=True)
        if module is None:
            raise BackendError(f"{self.name}: load_module_from_file returned nothing")
        return MnnSession(module, self.name, len(inputs), manager)

    def variants(self) -> dict[str, Backend]:
        found = {"one-thread": MnnBackend(default=self.default, threads=1)}
        if self.default:  # Winograd and low precision rewrite the convolutions
            found["no-graph-optimizations"] = MnnBackend(default=False, threads=self.threads)
        return found

    def versions(self) -> dict[str, str]:
        mnn = load_module(self.name, "MNN")
        settings = ("MNN defaults (precision normal, Winograd on)" if self.default
                    else "precision high, Winograd off (WINOGRAD_MEMORY_LEVEL=0)")
        return {"MNN": mnn.version(), "backend": "CPU", "settings": settings, "threads": str(threads(self.threads))}

    def close(self) -> None:
        self._scratch.close()
        self.cache = ConversionCache()  # its paths pointed into the folder just removed
