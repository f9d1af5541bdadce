"""Any third-party ONNX backend that follows the ONNX backend API (``onnx.backend.base``).

``--backend=MODULE`` names a module (``onnxruntime.backend``) or a class inside one
(``pkg.mod:Class`` or ``pkg.mod.Class``) with ``prepare(model, device="CPU") -> rep`` where
``rep.run(list_of_arrays)`` returns the outputs in order.
"""

from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np
import onnx

from conformance.backends.base import Backend, BackendError


def import_target(spec: str):
    """Import ``pkg.mod``, ``pkg.mod:Attr`` or ``pkg.mod.Attr``; BackendError when impossible."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if attr or "." not in module_name:
            raise BackendError(f"--backend={spec}: no module named {exc.name!r}") from None
        # ``pkg.mod.Class``: retry with the last part as an attribute.
        module_name, _, attr = module_name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc2:
            raise BackendError(f"--backend={spec}: no module named {exc2.name!r}") from None
    except Exception as exc:  # a module that fails while importing
        raise BackendError(f"--backend={spec}: importing it failed: {exc!r}") from None
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BackendError(f"--backend={spec}: module {module_name!r} has no {attr!r}") from None


class OnnxApiSession:
    def __init__(self, rep, name: str):
        self._rep = rep
        self._name = name

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        outputs = self._rep.run(list(inputs))
        return [np.asarray(o) for o in outputs]

    @property
    def notes(self) -> list[str]:
        """What the backend says it did to the model (``conformance.backends.onnx_reference``)."""
        return list(getattr(self._rep, "notes", []))


class OnnxApiBackend(Backend):
    """Adapts a module or class with the ONNX backend API to this suite's ``Backend``."""

    def __init__(self, spec: str, device: str = "CPU"):
        target = import_target(spec)
        if not callable(getattr(target, "prepare", None)):
            raise BackendError(
                f"--backend={spec}: {getattr(target, '__name__', target)!r} has no prepare(); "
                "an ONNX backend needs prepare(model, device) -> rep with rep.run(inputs)"
            )
        self.spec = spec
        self.device = device
        self._target = target
        self.name = spec.replace(":", ".")

    def prepare(self, model: onnx.ModelProto) -> OnnxApiSession:
        try:
            rep = self._target.prepare(model, device=self.device)
        except Exception as exc:
            raise BackendError(f"{self.name}: prepare failed: {type(exc).__name__}: {exc}", cause=exc) from exc
        return OnnxApiSession(rep, self.name)

    def variants(self) -> dict[str, Backend]:
        """A plug-in's own ``variants()`` (name -> module or class with the ONNX backend API),
        when it has one: how a runtime outside this package offers one thread, no graph
        optimizations and the like to the diagnosis."""
        offered = getattr(self._target, "variants", None)
        if not callable(offered):
            return {}
        return {name: OnnxApiBackend.wrapping(target, f"{self.name}[{name}]", self.device)
                for name, target in offered().items()}

    @classmethod
    def wrapping(cls, target, name: str, device: str = "CPU") -> "OnnxApiBackend":
        """An adapter for an already imported module or class (a plug-in's variant)."""
        backend = cls.__new__(cls)
        backend.spec, backend.device, backend._target, backend.name = name, device, target, name
        return backend

    def versions(self) -> dict[str, str]:
        root = self.spec.split(":")[0].split(".")[0]
        try:
            version = getattr(importlib.import_module(root), "__version__", "unknown")
        except Exception:
            version = "unknown"
        return {root: str(version)}
