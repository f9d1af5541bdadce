"""LiteRT (TFLite): ``litert_torch.convert`` -> ``.tflite``, run by ``ai_edge_litert``'s interpreter.

Two targets: ``litert`` runs with the interpreter's default XNNPACK delegate (what an app gets),
``litert-reference`` with ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (TFLite's optimized builtin kernels, no
delegate; despite the target's name, not ``BUILTIN_REF``'s reference kernels).

One artifact serves one input shape (``per_shape``): converting with dynamic H/W fails
(PixelShuffle's view needs concrete sizes) and resizing a converted model fails inside XNNPACK,
so the core converts once per shape (3-5 s each) and a session refuses any other shape.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from conformance.backends._runtime import Unsupported, expect_inputs, failing, load_module, require, threads
from conformance.backends.base import ProgramBackend
from conformance.formats.onnx_export import quiet  # the converter's warnings and progress lines are noise

_SIGNATURE = "serving_default"


def _by_position(names) -> list[str]:
    """Signature names (``args_0``, ``output_1``) in positional order; litert names them so."""
    def position(name: str) -> int:
        found = re.search(r"(\d+)$", name)
        return int(found.group(1)) if found else 0

    return sorted(names, key=position)


class LiteRtSession:
    """The interpreter's ``serving_default`` signature: inputs and outputs by position."""

    def __init__(self, interpreter, name: str):
        self._name = name
        self._interpreter = interpreter
        self._ran = False  # the default delegate is applied as the first run allocates the tensors
        with failing(name, "get_signature_runner"):
            self._runner = interpreter.get_signature_runner(_SIGNATURE)
            details = self._runner.get_input_details()
        self._inputs = _by_position(details)
        self._shapes = [tuple(int(s) for s in details[n]["shape"]) for n in self._inputs]
        outputs = self._runner.get_output_details()
        self._outputs = _by_position(outputs)
        # An int8 model takes and gives int8 tensors (the app quantizes its input, as on a phone):
        # (dtype, scale, zero point) of each, from the model's own quantization parameters.
        self._in_q = [_quantization(details[n]) for n in self._inputs]
        self._out_q = [_quantization(outputs[n]) for n in self._outputs]

    def placement(self) -> dict[str, str] | None:
        """Each op of the model (``"op N (KIND)"``) -> ``XNNPACK`` when the interpreter's default
        delegate took it, ``builtin`` when it stayed on TFLite's own kernels
        (``conformance.backends.litert_placement``); None before the first run."""
        from conformance.backends.litert_placement import delegation

        if not self._ran:
            return None
        with failing(self._name, "read the delegated ops"):
            return delegation(self._interpreter)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        expect_inputs(self._name, len(self._inputs), inputs)
        for i, (x, shape) in enumerate(zip(inputs, self._shapes)):
            if tuple(x.shape) != shape:
                raise Unsupported(f"{self._name}: this .tflite was converted for input {i} of shape {shape}, "
                                  f"got {tuple(x.shape)} (LiteRT needs one conversion per shape)")
        inputs = [_quantize(x, q) for x, q in zip(inputs, self._in_q)]
        with failing(self._name, "invoke"):
            result = self._runner(**{n: np.ascontiguousarray(x) for n, x in zip(self._inputs, inputs)})
            self._ran = True
            return [_dequantize(np.array(result[n], copy=True), q) for n, q in zip(self._outputs, self._out_q)]


def _quantization(detail: dict):
    """(dtype, scale, zero point) of an integer tensor, None for a float one."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
        return None
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return dtype, float(scale), int(zero_point)


def _quantize(x: np.ndarray, q) -> np.ndarray:
    if q is None:
        return x
    dtype, scale, zero_point = q
    info = np.iinfo(dtype)
    # In float64: the app's own quantization of its input, exact at ties (half to even).
    return np.clip(np.rint(np.asarray(x, np.float64) / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, q) -> np.ndarray:
    if q is None:
        return y
    _, scale, zero_point = q
    return ((y.astype(np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


class LiteRtBackend(ProgramBackend):
    """LiteRT's interpreter with its default delegate, or its builtin kernels alone (``reference=True``)."""

    format = "tflite"
    per_shape = True

    def __init__(self, *, reference: bool = False, threads: int | None = None):
        self.name = "litert-reference" if reference else "litert"
        require(self.name, "litert", "litert_torch", "ai_edge_litert")
        self.reference = reference
        self.threads = threads

    def export(self, module, example_args: tuple, dynamic: Sequence[Sequence[int]] | None = None) -> bytes:
        """The ``.tflite`` for ``example_args``' shapes (``dynamic`` is ignored: see the module doc)."""
        import torch

        litert_torch = load_module(self.name, "litert_torch")
        with quiet(), torch.no_grad(), failing(self.name, "litert_torch.convert"):
            return bytes(litert_torch.convert(module.eval(), tuple(example_args)).model_content())

    def artifact_settings(self) -> dict:
        """What changes the ``.tflite`` (its disk cache key): the converter, not the kernels that
        run it, so ``litert`` and ``litert-reference`` share their conversions."""
        from conformance.formats.artifact_cache import versions

        return versions("litert-torch", "ai-edge-litert")

    #: The PT2E quantizer whose converted modules ``export_int8`` takes (``formats.quantize``).
    pt2e_quantizer = "litert"

    def export_int8(self, converted, example_args: tuple) -> bytes:
        """The int8 ``.tflite`` of a module PT2E-quantized with litert-torch's own ``PT2EQuantizer``
        (static: the converter folds its quantize/dequantize pairs into int8 TFLite ops)."""
        import torch

        litert_torch = load_module(self.name, "litert_torch")
        from litert_torch.quantize import pt2e_quantizer as pq, quant_config

        quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
        with quiet(), torch.no_grad(), failing(self.name, "litert_torch.convert (int8)"):
            model = litert_torch.convert(converted, tuple(example_args),
                                         quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
            return bytes(model.model_content())

    def load(self, artifact: bytes) -> LiteRtSession:
        interpreter = load_module(self.name, "ai_edge_litert.interpreter")
        options = {"num_threads": threads(self.threads)}
        if self.reference:
            options["experimental_op_resolver_type"] = interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        with failing(self.name, "Interpreter"):
            session = interpreter.Interpreter(model_content=artifact, **options)
        return LiteRtSession(session, self.name)

    def variants(self) -> dict[str, "LiteRtBackend"]:
        found = {"one-thread": LiteRtBackend(reference=self.reference, threads=1)}
        if not self.reference:
            found["no-delegate"] = LiteRtBackend(reference=True, threads=self.threads)
        return found

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        kernels = ("builtin kernels, no delegate (BUILTIN_WITHOUT_DEFAULT_DELEGATES)" if self.reference
                   else "default XNNPACK delegate")
        return {"ai-edge-litert": version("ai-edge-litert"), "litert-torch": version("litert-torch"),
                "kernels": kernels, "threads": str(threads(self.threads)), "shapes": "one conversion per shape"}
