"""ncnn (Tencent's mobile inference engine): ONNX converted by pnnx, run by ncnn's CPU path.

Two targets: ``ncnn`` converts with ``fp16=0`` (float32 weights) and runs with Winograd
convolution and fp16/bf16 storage and arithmetic off; ``ncnn-default`` converts with pnnx's
default ``fp16=1`` and runs with ncnn's default options (SuperResolutionNet off by ~0.14 at pixel
scale; ``fp16=0`` alone still leaves Winograd's ~1.7e-3).

pnnx is a command-line tool that writes its outputs next to its input, so each conversion runs
in a fresh scratch folder; conversions (~2 s) are cached by model bytes. ncnn has no batch axis:
a session feeds one sample at a time (axis 0 of the data inputs; weights fed as graph inputs
go whole) and stacks the outputs, which is how an application runs a batch through ncnn.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np
import onnx

from conformance.backends._runtime import (ConversionCache, Scratch, Unsupported, expect_inputs, failing,
                                           graph_inputs, load_module, require, run_tool, threads)
from conformance.backends.base import Backend, BackendError
from conformance.formats.artifact_cache import cached_files, versions

# The options turned off for the exact target: each trades float32 accuracy for speed.
_EXACT_OFF = ("use_winograd_convolution", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
              "use_bf16_storage", "use_bf16_packed")


def batched_inputs(model: onnx.ModelProto) -> list[bool]:
    """Which inputs carry the batch axis: the first (the data), and any other whose axis 0 is
    symbolic. Weights fed as graph inputs have static shapes and go to ncnn whole."""
    names = set(graph_inputs(model))
    inputs = [i for i in model.graph.input if i.name in names]
    return [k == 0 or _symbolic_first_axis(i) for k, i in enumerate(inputs)]


def _symbolic_first_axis(value: onnx.ValueInfoProto) -> bool:
    dims = value.type.tensor_type.shape.dim
    return bool(dims) and not dims[0].HasField("dim_value")


def unknown_layers(ncnn, param: str) -> list[str]:
    """Layer types in a ``.param`` file that this ncnn build has no implementation for."""
    with open(param) as f:
        lines = f.read().splitlines()[2:]  # magic number, then the layer and blob counts
    types = dict.fromkeys(line.split()[0] for line in lines if line.strip())
    return [t for t in types if ncnn.layer_to_index(t) < 0]


class NcnnSession:
    """One ``ncnn.Net``; an extractor per sample (extractors are cheap, single-use)."""

    def __init__(self, net, name: str, ranks: list[int], batched: list[bool]):
        self._net = net
        self._name = name
        self._ranks = ranks  # the ONNX outputs' ranks, batch axis included
        self._batched = batched  # per input: split along axis 0 (data) or fed whole (weights fed as inputs)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        expect_inputs(self._name, len(self._batched), inputs)
        arrays = [np.asarray(x) for x in inputs]
        sizes = {x.shape[0] for x, b in zip(arrays, self._batched) if b and x.ndim}
        if len(sizes) != 1:
            raise Unsupported(f"{self._name}: ncnn has no batch axis and the batched inputs disagree on their "
                              f"first dimension: {[x.shape for x in arrays]}")
        samples = [self._run_one([x[n] if b else x for x, b in zip(arrays, self._batched)])
                   for n in range(sizes.pop())]
        return [np.stack([s[i] for s in samples]) for i in range(len(self._ranks))]

    def _run_one(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        ncnn = load_module(self._name, "ncnn")
        with failing(self._name, "extract"):
            extractor = self._net.create_extractor()
            # ncnn.Mat(array) wraps the array's memory without owning it: a freed temporary read
            # back as garbage (2.7e34), and an in-place first layer (ReLU) on the borrowed memory
            # crashed. A clone is memory ncnn owns.
            for name, x in zip(self._net.input_names(), sample):
                array = np.ascontiguousarray(x, np.float32)  # alive until cloned
                extractor.input(name, ncnn.Mat(array).clone())
            outputs = []
            for name, rank in zip(self._net.output_names(), self._ranks):
                status, mat = extractor.extract(name)
                if status != 0:
                    raise BackendError(f"{self._name}: extract({name!r}) returned {status}")
                y = np.array(mat, copy=True)
                # ncnn drops leading unit axes (a 1xHxW blob may come back HxW): restore the rank.
                outputs.append(y.reshape((1,) * max(0, rank - 1 - y.ndim) + y.shape))
            return outputs


class NcnnBackend(Backend):
    """pnnx + ncnn; ``default=True`` keeps pnnx's fp16 weights and ncnn's default options."""

    format = "onnx"

    def __init__(self, *, default: bool = False, threads: int | None = None):
        self.name = "ncnn-default" if default else "ncnn"
        require(self.name, "ncnn", "ncnn", "pnnx")
        self.default = default
        self.threads = threads
        self._scratch = Scratch("ncnn")
        self.cache = ConversionCache()

    @property
    def fp16(self) -> int:
        return 1 if self.default else 0

    def convert(self, model: onnx.ModelProto) -> tuple[str, str]:
        """The ``(param, bin)`` paths of ``model``'s ncnn conversion (once per distinct model)."""
        data = model.SerializeToString()
        return self.cache.get(ConversionCache.key(data, f"fp16={self.fp16}"), lambda: self._kept(data))

    def _kept(self, data: bytes) -> tuple[str, str]:
        """The conversion from the disk cache of artifacts, else made by pnnx (and kept there)."""
        def produce():
            param, weights = self._convert(data)
            return {"model.ncnn.param": param, "model.ncnn.bin": weights}

        files = cached_files("pnnx", {**versions("pnnx"), "fp16": self.fp16}, data, produce, self._scratch.folder)
        return files["model.ncnn.param"], files["model.ncnn.bin"]

    def _convert(self, data: bytes) -> tuple[str, str]:
        pnnx = load_module(self.name, "pnnx")
        folder = self._scratch.folder()
        source = os.path.join(folder, "model.onnx")
        with open(source, "wb") as f:
            f.write(data)
        try:
            run_tool(self.name, "pnnx", [pnnx.EXEC_PATH, source, f"fp16={self.fp16}"], cwd=folder)
        except BackendError as exc:
            raise _unreleased_opset(self.name, str(exc)) or exc
        param, weights = os.path.join(folder, "model.ncnn.param"), os.path.join(folder, "model.ncnn.bin")
        if not os.path.exists(param):
            raise BackendError(f"{self.name}: pnnx wrote no ncnn model")
        for name in os.listdir(folder):  # pnnx's other outputs (pnnx IR, python, onnx) are not needed
            if name not in ("model.ncnn.param", "model.ncnn.bin"):
                os.unlink(os.path.join(folder, name))
        return param, weights

    def prepare(self, model: onnx.ModelProto) -> NcnnSession:
        param, weights = self.convert(model)
        ncnn = load_module(self.name, "ncnn")
        net = ncnn.Net()
        net.opt.num_threads = threads(self.threads)
        if not self.default:
            for option in _EXACT_OFF:
                setattr(net.opt, option, False)
        with failing(self.name, "load_param"):
            if net.load_param(param) != 0:
                unknown = unknown_layers(ncnn, param)
                if unknown:  # pnnx left torch operators in the graph (F.batch_norm with fed parameters)
                    raise Unsupported(f"{self.name}: ncnn has no layer for {', '.join(unknown)} (left by pnnx)")
                raise BackendError(f"{self.name}: load_param refused pnnx's param file")
        with failing(self.name, "load_model"):
            if net.load_model(weights) != 0:
                raise BackendError(f"{self.name}: load_model refused pnnx's weights")
        if len(net.input_names()) != len(graph_inputs(model)):
            raise Unsupported(f"{self.name}: pnnx kept {len(net.input_names())} of the model's "
                              f"{len(graph_inputs(model))} inputs")
        ranks = [len(o.type.tensor_type.shape.dim) for o in model.graph.output]
        return NcnnSession(net, self.name, ranks, batched_inputs(model))

    def variants(self) -> dict[str, Backend]:
        found = {"one-thread": NcnnBackend(default=self.default, threads=1)}
        if self.default:  # fp16 weights, Winograd and fp16 storage rewrite the graph's arithmetic
            found["no-graph-optimizations"] = NcnnBackend(default=False, threads=self.threads)
        return found

    def versions(self) -> dict[str, str]:
        ncnn = load_module(self.name, "ncnn")
        pnnx = load_module(self.name, "pnnx")
        settings = ("pnnx fp16=1, ncnn default options (Winograd, fp16 storage)" if self.default
                    else "pnnx fp16=0, Winograd and fp16/bf16 storage off")
        return {"ncnn": ncnn.__version__, "pnnx": getattr(pnnx, "__version__", "unknown"), "settings": settings,
                "threads": str(threads(self.threads))}

    def close(self) -> None:
        self._scratch.close()
        self.cache = ConversionCache()  # its paths pointed into the folder just removed


def _unreleased_opset(name: str, output: str) -> Unsupported | None:
    """pnnx reads ONNX through its own ONNX Runtime, which warns about an opset newer than it
    supports and then crashes (exit -11, seen with the dynamo exporter's opset 28 where pnnx's
    runtime stops at 26): a limit of the converter, so the case is skipped with it."""
    found = re.search(r"Opset (\d+) is under development.*?support for domain ai\.onnx is till opset (\d+)", output)
    if found is None:
        return None
    return Unsupported(f"{name}: pnnx (ncnn's converter) cannot read opset-{found[1]} models: its ONNX Runtime "
                       f"supports ai.onnx up to opset {found[2]} (it crashes on newer ones)")
