"""Kernels the float64 oracle uses in place of onnx's reference evaluator's at every opset: where
the evaluator gets the spec wrong, cannot run in float64, or lacks the operator (onnx 1.23).

* LRN: the evaluator's loops over the batch axis where the spec sums over channels; on a batch-1
  input every channel but the first was left unnormalized (AlexNet, ZFNet, GoogLeNet with real
  weights 1e-3 off, relative).
* LpNormalization: the evaluator's raises signed values to ``p`` (``p=1`` divided by their sum).
* MeanVarianceNormalization: the evaluator runs its function body, whose float32 epsilon a
  float64 graph refuses (the whole model fell back to float32).
* GlobalLpPool: the evaluator has none.
"""

from __future__ import annotations

import math

import numpy as np
from onnx.reference.op_run import OpRun

from conformance.backends.reference_ops import attributes


class LRN(OpRun):
    """LRN as the spec defines it: each element divided by ``(bias + alpha / size * S) ** beta``,
    ``S`` the sum of squares over the ``size`` channels around it (``floor((size - 1) / 2)``
    before, ``ceil((size - 1) / 2)`` after, clipped at the edges)."""

    op_domain = ""

    def _run(self, x, **_):
        attrs = attributes(self.onnx_node)
        size = int(attrs["size"])
        alpha, beta, bias = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0)
        widths = [(0, 0), ((size - 1) // 2, math.ceil((size - 1) / 2))] + [(0, 0)] * (x.ndim - 2)
        squares = np.pad(np.square(x), widths)
        total = np.zeros_like(x)
        for k in range(size):
            total += squares[:, k:k + x.shape[1]]
        return ((x / (bias + alpha / size * total) ** beta).astype(x.dtype),)


class LpNormalization(OpRun):
    """LpNormalization with the norm of absolute values: the evaluator's raises the signed
    values to ``p`` (with ``p=1`` it divides by their sum, not by the L1 norm)."""

    op_domain = ""

    def _run(self, x, **_):
        attrs = attributes(self.onnx_node)
        axis, p = attrs.get("axis", -1), attrs.get("p", 2)
        norm = np.sum(np.abs(x) ** p, axis=axis, keepdims=True) ** (1.0 / p)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.where(norm == 0, 0, x / norm).astype(x.dtype),)


class MeanVarianceNormalization(OpRun):
    """MeanVarianceNormalization as its function body defines it, ``(X - E[X]) / (sqrt(E[X^2] -
    E[X]^2) + 1e-9)``: the evaluator runs that body with a float32 epsilon, which a float64
    graph refuses (the whole model then fell back to float32)."""

    op_domain = ""

    def _run(self, x, **_):
        axes = tuple(attributes(self.onnx_node).get("axes", [0, 2, 3]))
        mean = x.mean(axis=axes, keepdims=True)
        std = np.sqrt((x * x).mean(axis=axes, keepdims=True) - mean * mean)
        return (((x - mean) / (std + 1e-9)).astype(x.dtype),)


class GlobalLpPool(OpRun):
    """GlobalLpPool, which the evaluator lacks: the ``p``-norm of each channel over every spatial
    axis."""

    op_domain = ""

    def _run(self, x, **_):
        p = attributes(self.onnx_node).get("p", 2)
        norm = np.sum(np.abs(x) ** p, axis=tuple(range(2, x.ndim)), keepdims=True) ** (1.0 / p)
        return (norm.astype(x.dtype),)


#: Kernels that put right what the evaluator gets wrong or lacks at every opset.
FIXED = (LRN, LpNormalization, MeanVarianceNormalization, GlobalLpPool)
