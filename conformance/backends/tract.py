"""tract (Sonos' pure-Rust inference engine) on the ONNX model, with symbolic input shapes.

tract loads ONNX from a file only. Before loading, the model's ``value_info`` is dropped: the
dynamo exporter annotates intermediate values with its own shape symbols (``s77``), which tract
then fails to unify with the sizes it infers ("Impossible to unify Sym(s77) with Val(1)");
tract infers every intermediate shape itself, so nothing is lost. A known limit stays a limit:
BatchNormalization whose scale/bias/mean/var arrive as graph inputs fails ("Params are not
const"), reported with tract's own message.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import onnx

from conformance.backends._runtime import (Scratch, Unsupported, expect_inputs, failing, graph_inputs, load_module,
                                           require)
from conformance.backends.base import Backend


def without_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without intermediate shape annotations (see the module docstring)."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.graph.value_info[:]
    return stripped


class TractSession:
    def __init__(self, runnable, name: str, n_inputs: int):
        self._runnable = runnable
        self._name = name
        self._n_inputs = n_inputs

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        expect_inputs(self._name, self._n_inputs, inputs)
        with failing(self._name, "run"):
            outputs = self._runnable.run([np.ascontiguousarray(x) for x in inputs])
            return [t.to_numpy() for t in outputs]


class TractBackend(Backend):
    """tract's default pipeline: load, analyse, declutter and optimize (``into_runnable``)."""

    name = "tract"
    format = "onnx"

    def __init__(self) -> None:
        require(self.name, "tract", "tract")
        self._scratch = Scratch("tract")

    def prepare(self, model: onnx.ModelProto) -> TractSession:
        tract = load_module(self.name, "tract")
        path = self._scratch.file(".onnx")
        onnx.save(without_value_info(model), path)
        try:
            with failing(self.name, "load"):
                inference_model = tract.onnx().load(path)
            with failing(self.name, "into_model"):
                try:
                    typed = inference_model.into_model()
                except tract.TractError as exc:
                    if "Params are not const" in str(exc):  # a documented limit, not a wrong number
                        raise Unsupported(f"{self.name}: BatchNormalization needs constant parameters "
                                          f"(tract: {' | '.join(str(exc).split(chr(10)))})") from exc
                    raise
            with failing(self.name, "into_runnable"):
                runnable = typed.into_runnable()
        finally:
            os.unlink(path)  # tract has read the file: nothing refers to it any more
        return TractSession(runnable, self.name, len(graph_inputs(model)))

    def versions(self) -> dict[str, str]:
        tract = load_module(self.name, "tract")
        return {"tract": tract.version(), "pipeline": "into_model + into_runnable (declutter, optimize)",
                "value_info": "dropped"}

    def close(self) -> None:
        self._scratch.close()
