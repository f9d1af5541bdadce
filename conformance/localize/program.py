"""Where a failing model first goes wrong on a runtime that takes a torch program (ExecuTorch,
LiteRT, a program plug-in).

Such runtimes expose no intermediates through the APIs the suite calls, so the ONNX method
(every intermediate marked, ``localize.py``) has nothing to read. Instead each leaf module of the
torch model, in the order the forward pass calls it, is exported alone through the runtime (at
the shape it saw), run on the input PyTorch gave it, and compared with PyTorch's output of that
layer. The first layer wrong alone is the first diverging layer; the walk stops there (each
export costs seconds on ExecuTorch and LiteRT, and only a failing case pays for it). A layer the
runtime cannot export alone is noted and passed over.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch

from conformance.engine.compare import tolerance
from conformance.localize.onnx_graph import EACH_LAYER_ALONE, LayerError, Localization, max_abs_error

#: ``(module, example_args) -> session`` with ``session.run(arrays) -> arrays``: the runtime's
#: own export and load, under the case's deadline.
ExportAndLoad = Callable[[torch.nn.Module, tuple], object]


def leaf_calls(module: torch.nn.Module, inputs: Sequence[np.ndarray]) -> list[tuple[str, torch.nn.Module, tuple, torch.Tensor]]:
    """``(path, leaf, args, output)`` for each leaf module's first call in a float32 forward
    pass of ``module`` (eval mode) on ``inputs``, in call order; leaves whose arguments or
    output are not plain tensors are left out."""
    calls: dict[str, tuple] = {}
    hooks = []

    def hook(path):
        def record(leaf, args, output):
            if path not in calls and args and all(isinstance(a, torch.Tensor) for a in args) \
                    and isinstance(output, torch.Tensor):
                calls[path] = (path, leaf, tuple(a.detach().clone() for a in args), output.detach().clone())
        return record

    for path, leaf in module.named_modules():
        if path and not any(True for _ in leaf.children()):
            hooks.append(leaf.register_forward_hook(hook(path)))
    try:
        with torch.no_grad():
            module.eval()(*(torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in inputs))
    finally:
        for handle in hooks:
            handle.remove()
    return list(calls.values())


def localize_program(module: torch.nn.Module, inputs: Sequence[np.ndarray], export_and_load: ExportAndLoad,
                     *, decimal: int = 3) -> Localization:
    """The first layer of ``module`` that is wrong alone on the runtime ``export_and_load``
    reaches, with each layer checked before it (see the module docstring)."""
    start = time.perf_counter()
    tol = tolerance(decimal)
    layers: list[LayerError] = []
    notes: list[str] = []
    for path, leaf, args, expected in leaf_calls(module, inputs):
        try:
            session = export_and_load(leaf, args)
            actual = session.run([a.numpy() for a in args])
        except Exception as exc:  # a layer the runtime cannot take alone: say so, go on
            notes.append(f"{path} ({type(leaf).__name__}) not run alone: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}")
            continue
        error = max_abs_error(np.asarray(actual[0]), expected.numpy(), decimal) if len(actual) else float("inf")
        layer = LayerError(path, path, "", type(leaf).__name__, error, error / tol, isolated=error, tolerance=tol)
        layers.append(layer)
        if layer.diverges:
            break
    return Localization(layers, decimal, EACH_LAYER_ALONE,
                        seconds=time.perf_counter() - start, notes=notes)
