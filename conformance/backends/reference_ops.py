"""Operators the float64 oracle evaluates in onnx's reference evaluator's place (``new_ops``).

Two kinds (a third, kernels the evaluator gets wrong at every opset, in
``conformance.backends.reference_fixes``):

* Semantics the evaluator lacks. It implements Softmax, LogSoftmax and Hardmax at opset 13 only
  (one axis, default -1); before 13 they coerce the input to 2-D at ``axis`` (default 1). These
  replace the evaluator's only where the model's opset predates the change and the version
  converter could not upgrade the model. Its opset-9 BatchNormalization reads the ``momentum``
  attribute as training mode; before 14 a BatchNormalization with one output is inference: the
  BatchNormalization here (always used, for speed too) keeps each opset's meaning.
* Speed. The evaluator's Conv is an ``im2col`` with fancy indexing and its pools loop in Python
  (seconds per ImageNet-size layer). Here a Conv is one BLAS matrix product per kernel offset
  and a pool one vectorized maximum or sum per offset: the same sums, in the same precision.
  ConvTranspose is one product per kernel offset too (and takes the groups and ``output_shape``
  the evaluator's fails on).
  BatchNormalization in inference is one multiply-add per element, Relu one maximum (the
  evaluator's make three to five passes over every activation).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper
from onnx.reference.op_run import OpRun


def attributes(node) -> dict:
    """A node's attributes by name, as Python values."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _as_2d(x: np.ndarray, axis: int) -> np.ndarray:
    """Opset < 13's coercion: ``[prod(shape[:axis]), prod(shape[axis:])]``."""
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), -1)


class _Coerced2D(OpRun):
    op_domain = ""

    def _run(self, x, **_):
        if x.size == 0:
            return (x,)
        rows = _as_2d(x, attributes(self.onnx_node).get("axis", 1))
        return (self._rows(rows).reshape(x.shape).astype(x.dtype),)


class Softmax(_Coerced2D):
    """Softmax before opset 13."""

    @staticmethod
    def _rows(x):
        y = np.exp(x - x.max(axis=1, keepdims=True))
        return y / y.sum(axis=1, keepdims=True)


class LogSoftmax(_Coerced2D):
    """LogSoftmax before opset 13."""

    @staticmethod
    def _rows(x):
        shifted = x - x.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class Hardmax(_Coerced2D):
    """Hardmax before opset 13: 1 at the first maximum of each coerced row."""

    @staticmethod
    def _rows(x):
        y = np.zeros_like(x)
        y[np.arange(x.shape[0]), x.argmax(axis=1)] = 1
        return y


class _Fast(OpRun):
    """A faster kernel where it applies (``_fast`` returns None elsewhere: the evaluator's own
    implementation of the node's opset runs instead)."""

    op_domain = ""

    def _run(self, *inputs, **_):
        found = self._fast(attributes(self.onnx_node), *inputs)
        if found is not None:
            return (found,)
        if not hasattr(self, "_own"):
            from onnx.reference.ops import load_op

            own = load_op("", self.onnx_node.op_type, self.run_params["opsets"][""])
            self._own = own(self.onnx_node, self.run_params)
        return self._own.run(*inputs)


class BatchNormalization(_Fast):
    """BatchNormalization in inference as one multiply and one add per element (the per-channel
    factors first), at every opset. Before 14 a node with one output, or ``is_test`` (opset 6),
    is inference (the evaluator's opset-9 version reads ``momentum`` as training mode), and
    ``spatial=0`` (opsets 6-7) normalizes per element; training mode runs the evaluator's own."""

    def _fast(self, attrs, x, scale, bias, mean, var):
        outputs = [o for o in self.onnx_node.output if o]
        if self.run_params["opsets"][""] < 14:
            if len(outputs) > 1 and not attrs.get("is_test", 0):
                raise NotImplementedError("BatchNormalization in training mode (several outputs) before opset 14")
        elif attrs.get("training_mode", 0):
            return None
        shape = x.shape[1:] if attrs.get("spatial", 1) == 0 else (-1,) + (1,) * (x.ndim - 2)
        factor = np.asarray(scale) / np.sqrt(np.asarray(var) + attrs.get("epsilon", 1e-5))
        shift = np.asarray(bias) - np.asarray(mean) * factor
        y = x * factor.reshape(shape).astype(x.dtype)
        y += shift.reshape(shape).astype(x.dtype)
        return y


class Relu(OpRun):
    """Relu without the evaluator's extra copy of every activation (NaN stays NaN)."""

    op_domain = ""

    def _run(self, x, **_):
        return (np.maximum(x, x.dtype.type(0)),)


class Conv(_Fast):
    """Conv as one matrix product (numpy's BLAS) per kernel offset, summed in the input's
    precision: no im2col copy of the whole input, any number of spatial axes and groups."""

    @staticmethod
    def _fast(attrs, x, w, b=None):
        if x.dtype.kind != "f" or x.ndim < 3:
            return None
        kernel = list(w.shape[2:])
        x, out, strides, dilations = _windows(attrs, x, kernel, 0)
        n, groups = x.shape[0], int(attrs.get("group", 1))
        per_in, per_out = x.shape[1] // groups, w.shape[0] // groups
        wg = np.asarray(w, x.dtype).reshape(groups, per_out, per_in, *kernel)
        y = np.zeros((n, groups, per_out, math.prod(out)), x.dtype)
        for offset, view in _shifts(x, kernel, out, strides, dilations):
            xs = view.reshape(n, groups, per_in, -1)
            wk = wg[(...,) + offset]
            if per_in == 1:  # depthwise: a product per channel, not a 1x1 matrix product each
                y += wk[None, :, :, :] * xs
            else:
                y += np.matmul(wk, xs)
        y = y.reshape(n, -1, *out)
        if b is not None:
            y += np.asarray(b, x.dtype).reshape(-1, *([1] * len(out)))
        return y


class ConvTranspose(_Fast):
    """ConvTranspose as one BLAS product per kernel offset, added into the output at that
    offset's strided positions: any groups, and ``output_shape`` (the evaluator's fails on both
    groups of more than one channel and ``output_shape``)."""

    @staticmethod
    def _fast(attrs, x, w, b=None):
        if x.dtype.kind != "f" or x.ndim < 3:
            return None
        n, spatial, kernel = x.shape[0], x.ndim - 2, list(w.shape[2:])
        strides = list(attrs.get("strides", [1] * spatial))
        dilations = list(attrs.get("dilations", [1] * spatial))
        full = [s * (m - 1) + (k - 1) * d + 1 for m, k, s, d in zip(x.shape[2:], kernel, strides, dilations)]
        begin, size = _transposed_extent(attrs, x.shape[2:], full, strides)
        groups = int(attrs.get("group", 1))
        per_in, per_out = x.shape[1] // groups, w.shape[1]
        low = [min(0, first) for first in begin]
        high = [max(f, first + length) for f, first, length in zip(full, begin, size)]
        buffer = np.zeros((n, groups, per_out) + tuple(h - lo for h, lo in zip(high, low)), x.dtype)
        xs = x.reshape(n, groups, per_in, -1)
        wg = np.asarray(w, x.dtype).reshape(groups, per_in, per_out, *kernel)
        for offset in np.ndindex(*kernel):
            part = np.matmul(np.swapaxes(wg[(...,) + offset], 1, 2), xs).reshape(n, groups, per_out, *x.shape[2:])
            where = tuple(slice(o * d - lo, o * d - lo + s * (m - 1) + 1, s)
                          for o, d, lo, s, m in zip(offset, dilations, low, strides, x.shape[2:]))
            buffer[(slice(None),) * 3 + where] += part
        kept = tuple(slice(first - lo, first - lo + length) for first, lo, length in zip(begin, low, size))
        y = buffer[(slice(None),) * 3 + kept].reshape(n, groups * per_out, *size)
        if b is not None:
            y = y + np.asarray(b, x.dtype).reshape(-1, *([1] * spatial))
        return np.ascontiguousarray(y)


def _transposed_extent(attrs: dict, size, full, strides) -> tuple[list[int], list[int]]:
    """(the first element kept of the unpadded output, the output size) per spatial axis of a
    ConvTranspose, from ``pads`` and ``output_padding``, or ``output_shape`` / ``auto_pad``."""
    spatial = len(size)
    extra = list(attrs.get("output_padding", [0] * spatial))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    shape = list(attrs["output_shape"])[-spatial:] if "output_shape" in attrs else None
    if shape is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        shape = [m * s for m, s in zip(size, strides)]
    if shape is None:
        pads = list(attrs.get("pads", [0] * (2 * spatial))) if auto != "VALID" else [0] * (2 * spatial)
        return pads[:spatial], [f + e - pads[i] - pads[i + spatial] for i, (f, e) in enumerate(zip(full, extra))]
    begin = []
    for f, e, target in zip(full, extra, shape):
        total = f + e - target
        half = int(total / 2)  # the spec's division truncates toward zero
        begin.append(half if auto == "SAME_UPPER" else total - half)
    return begin, shape


class MaxPool(_Fast):
    """MaxPool as a maximum over kernel offsets (``ceil_mode=0``, the values output only)."""

    def _fast(self, attrs, x):
        if x.dtype.kind != "f" or len([o for o in self.onnx_node.output if o]) > 1 or attrs.get("ceil_mode", 0):
            return None
        kernel = list(attrs["kernel_shape"])
        xp, out, strides, dilations = _windows(attrs, x, kernel, -np.inf)
        y = np.full(xp.shape[:2] + tuple(out), -np.inf, x.dtype)
        for _, view in _shifts(xp, kernel, out, strides, dilations):
            np.maximum(y, view, out=y)
        return y


class AveragePool(_Fast):
    """AveragePool as a sum over kernel offsets (``ceil_mode=0``), divided by the kernel size or,
    without ``count_include_pad``, by the number of input elements in each window."""

    @staticmethod
    def _fast(attrs, x):
        if x.dtype.kind != "f" or attrs.get("ceil_mode", 0):
            return None
        kernel = list(attrs["kernel_shape"])
        xp, out, strides, dilations = _windows(attrs, x, kernel, 0)
        y = np.zeros(xp.shape[:2] + tuple(out), x.dtype)
        for _, view in _shifts(xp, kernel, out, strides, dilations):
            y += view
        if attrs.get("count_include_pad", 0):
            return y / math.prod(kernel)
        ones, _, _, _ = _windows(attrs, np.ones((1, 1) + x.shape[2:], x.dtype), kernel, 0)
        count = np.zeros((1, 1) + tuple(out), x.dtype)
        for _, view in _shifts(ones, kernel, out, strides, dilations):
            count += view
        return y / count


def _windows(attrs: dict, x: np.ndarray, kernel, fill):
    """``x`` padded with ``fill``, the output size, strides and dilations (``ceil_mode=0``)."""
    spatial = len(kernel)
    strides = list(attrs.get("strides", [1] * spatial))
    dilations = list(attrs.get("dilations", [1] * spatial))
    pads = _pads(attrs, x.shape[2:], kernel, strides, dilations)
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[i + spatial]) for i in range(spatial)]
    xp = np.pad(x, widths, constant_values=fill) if any(pads) else x
    out = [(xp.shape[2 + i] - (kernel[i] - 1) * dilations[i] - 1) // strides[i] + 1 for i in range(spatial)]
    return xp, out, strides, dilations


def _shifts(xp: np.ndarray, kernel, out, strides, dilations):
    """(kernel offset, the strided view of ``xp`` that offset multiplies), for every offset."""
    for offset in np.ndindex(*kernel):
        index = tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                      for o, d, s, n in zip(offset, dilations, strides, out))
        yield offset, xp[(slice(None), slice(None)) + index]


def _pads(attrs: dict, size, kernel, strides, dilations) -> list[int]:
    """Begin pads then end pads, from ``pads`` or ``auto_pad``."""
    spatial = len(kernel)
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, k, s, d in zip(size, kernel, strides, dilations):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return begin + end
    if auto == "VALID":
        return [0] * (2 * spatial)
    return list(attrs.get("pads", [0] * (2 * spatial)))


#: Replacements of the evaluator's old-opset semantics, by operator.
OLD_SEMANTICS = {"Softmax": Softmax, "LogSoftmax": LogSoftmax, "Hardmax": Hardmax,
                 "BatchNormalization": BatchNormalization}
#: Faster equivalents of the evaluator's kernels.
FAST = (Conv, ConvTranspose, MaxPool, AveragePool, BatchNormalization, Relu)
