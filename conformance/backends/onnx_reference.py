"""ONNX's own reference evaluator (``onnx.reference``) as a float64 oracle, with the ONNX backend API.

A second implementation independent of ONNX Runtime, written in numpy from the operator specs,
made fit to judge a runtime:

* right: a model at an old opset is first brought to the newest one by onnx's version converter
  (the evaluator implements most operators at their newest version only); where the converter
  cannot, ``conformance.backends.reference_ops`` covers the operators whose semantics changed,
  and ``reference_fixes`` replaces the evaluator's kernels that are wrong at every opset;
* an oracle: the graph is evaluated in float64 (``conformance.backends.reference_model.to_float64``)
  where it allows, so a correct float32 runtime differs from it by its own rounding only, and its
  outputs come back in float64;
* fast enough: Conv and the pools run as one BLAS product or vectorized reduction per kernel
  offset (``conformance.backends.reference_ops``) instead of the evaluator's im2col and Python
  loops, and large weights are fed beside the graph (``reference_model.detach_weights``) so
  that preparing it copies none of them.

Use it as ``--backend conformance.backends.onnx_reference`` or ``--reference`` (the default of
``conformance check`` and ``pytest --model``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx

from conformance.backends.reference_model import (changed_ops, default_opset, detach_weights, precision_bound,
                                                  spell_out_resize, split_constants, to_float64, upgrade)
from conformance.backends.reference_fixes import FIXED
from conformance.backends.reference_ops import FAST, OLD_SEMANTICS

#: The reference of `conformance check` and `pytest --model`: ONNX's own evaluator, never a
#: runtime under test.

__version__ = onnx.__version__


#: The names this evaluator goes by as a ``--reference`` (its earlier home's too).
NAMES = (__name__, "conformance.byom.onnx_reference")


class ReferenceRep:
    """A model prepared for ``onnx.reference.ReferenceEvaluator``; runs inputs in model order.

    ``notes`` says what was done to the model (opset conversion, old semantics covered, the
    precision it runs in); ``precision`` is ``"float64"`` when the oracle runs in double.
    """

    def __init__(self, model: onnx.ModelProto, *, float64: bool = True):
        initializers = {i.name for i in model.graph.initializer}
        self._names = [i.name for i in model.graph.input if i.name not in initializers]
        # Weights travel beside the graph, so that converting and widening it copies no weights.
        light, self._weights = detach_weights(model)
        self._declared = {name: w.dtype for name, w in self._weights.items()}
        self._weights_wide = False
        self._model, converted = upgrade(light)
        self._model = spell_out_resize(self._model, default_opset(model))
        self.notes = [converted] if converted else []
        old = changed_ops(self._model)
        if old:
            self.notes.append(f"{', '.join(old)} at opset {default_opset(self._model)} semantics")
        self._ops = list(FAST + FIXED) + [OLD_SEMANTICS[op] for op in old]
        bound = precision_bound(self._model)
        self._wide = None
        if float64 and not bound:
            try:
                self._wide = self._evaluator(to_float64(self._model))
            except Exception as exc:  # the evaluator refuses the double graph: judge in float32
                self.notes.append(f"float32 kept: float64 failed ({type(exc).__name__}: {str(exc)[:120]})")
        elif float64:
            self.notes.append(f"float32 kept: {', '.join(bound)} tie the graph to its types")
        self._narrow = None if self._wide is not None else self._evaluator(self._model)

    @property
    def precision(self) -> str:
        return "float64" if self._wide is not None else "as declared"

    def _evaluator(self, model: onnx.ModelProto) -> "_Evaluator":
        constants, rest = split_constants(model)
        return _Evaluator(rest, constants, self._ops)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._names):
            raise ValueError(f"the model takes {len(self._names)} inputs, got {len(inputs)}")
        if self._wide is not None:
            try:
                return self._run(self._wide, [_widen(x) for x in inputs], self._weights_in(wide=True))
            except Exception as exc:  # an operator the evaluator has no double kernel for
                self.notes.append(f"float32 kept: float64 failed ({type(exc).__name__}: {str(exc)[:120]})")
                self._wide = None
        if self._narrow is None:
            self._narrow = self._evaluator(self._model)
        return self._run(self._narrow, list(inputs), self._weights_in(wide=False))

    def _weights_in(self, *, wide: bool) -> dict[str, np.ndarray]:
        """The detached weights in the precision the evaluator runs in. One copy is kept (an
        ImageNet model's are 0.5 GB in float64): widening is exact, so narrowing back is too."""
        if wide != self._weights_wide:
            self._weights = {name: _widen(w) if wide else w.astype(self._declared[name])
                             for name, w in self._weights.items()}
            self._weights_wide = wide
        return self._weights

    def _run(self, evaluator: "_Evaluator", inputs: list[np.ndarray], weights) -> list[np.ndarray]:
        return evaluator.run({**weights, **dict(zip(self._names, inputs))})


class _Evaluator:
    """``onnx.reference.ReferenceEvaluator`` over the graph's non-constant part; the values that
    depend on no input are computed on the first run and fed to every run after it."""

    def __init__(self, model: onnx.ModelProto, constants: onnx.ModelProto | None, ops: list):
        from onnx.reference import ReferenceEvaluator

        self._main = ReferenceEvaluator(model, new_ops=ops)
        self._constants = None if constants is None else ReferenceEvaluator(constants, new_ops=ops)
        self._names = [o.name for o in constants.graph.output] if constants is not None else []
        self._values: dict[str, np.ndarray] | None = None

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        from threadpoolctl import threadpool_limits

        # numpy warns about overflow in branches np.where then discards (Sigmoid, Softplus...).
        # One BLAS thread: the evaluator's products are many and small, and OpenBLAS threads that
        # wait for a busy core (runtimes, pytest-xdist workers) made them 10-20x slower.
        with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
            if self._values is None:
                made = self._constants.run(None, {}) if self._constants is not None else []
                self._values = dict(zip(self._names, made))
            outputs = self._main.run(None, {**self._values, **feeds})
        return [np.asarray(o) for o in outputs]


def _widen(x) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype.kind == "f" else x


def second_reference(reference_name: str):
    """The second reference beside the default one: ONNX Runtime (CPU) with its graph
    optimizations off, each node by its own kernel. None beside any other reference, or
    where ONNX Runtime's CPU provider is missing."""
    from conformance.backends.base import BackendError
    from conformance.backends.onnxrt import OnnxRuntimeBackend

    if reference_name not in NAMES:
        return None
    try:
        return OnnxRuntimeBackend(optimizations=False)
    except BackendError:
        return None


def prepare(model: onnx.ModelProto, device: str = "CPU", **_) -> ReferenceRep:
    """The ONNX backend API's ``prepare``: CPU only."""
    if device.upper() != "CPU":
        raise ValueError(f"onnx.reference runs on CPU only, not {device!r}")
    return ReferenceRep(model)


def supports_device(device: str) -> bool:
    return device.upper() == "CPU"
