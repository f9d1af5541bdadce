"""A model's inputs as data: names, dtypes, static and symbolic dimensions, and their bounds.

Symbolic dimensions (``dim_param`` such as ``"batch"``, or dimensions with neither a value nor
a name) are drawn from a range: ``--dim NAME=MIN:MAX`` or the default 1-4. An unnamed dimension
is called ``INPUT[AXIS]`` so that it can be given a range too. Dimensions that share a name are
drawn once and shared, as the model's author declared.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Union

import numpy as np
import onnx
from onnx import helper

from conformance.byom.model_file import ModelError

Dim = Union[int, str]  # a static size, or the name of a symbolic dimension

from conformance.byom.defaults import DEFAULT_DIM_RANGE, DEFAULT_MAX_ELEMENTS  # noqa: E402,F401

_SUPPORTED_KINDS = "bool, integer and floating-point tensors"


@dataclass(frozen=True)
class InputSpec:
    """One graph input the caller must feed."""

    name: str
    dtype: np.dtype
    dims: tuple[Dim, ...]

    def shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The concrete shape once every symbolic dimension has a size."""
        return tuple(d if isinstance(d, int) else sizes[d] for d in self.dims)

    def describe(self) -> str:
        return f"{self.name}: {self.dtype.name}[{', '.join(map(str, self.dims))}]"


def read_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The inputs a caller feeds (graph inputs that are not initializers), in model order."""
    initializers = {init.name for init in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue  # an initializer listed as an input (IR < 4 models) has a default value
        specs.append(_read_one(value))
    return specs


def _read_one(value: onnx.ValueInfoProto) -> InputSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise ModelError(f"input {value.name!r} is a {kind or 'untyped value'}; "
                         f"only {_SUPPORTED_KINDS} can be drawn")
    tensor = value.type.tensor_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    except (KeyError, TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        name = onnx.TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type else "undefined"
        raise ModelError(f"input {value.name!r} has element type {name}; only {_SUPPORTED_KINDS} can be drawn")
    if not tensor.HasField("shape"):
        raise ModelError(f"input {value.name!r} declares no shape (not even its rank); "
                         "give the model a shape with onnx.tools.update_model_dims or similar")
    dims: list[Dim] = []
    for axis, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value >= 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or f"{value.name}[{axis}]")
    return InputSpec(value.name, dtype, tuple(dims))


def symbolic_dims(specs: Iterable[InputSpec]) -> list[str]:
    """Every symbolic dimension name, in order of first appearance."""
    return list(dict.fromkeys(d for s in specs for d in s.dims if isinstance(d, str)))


_DIM_SPEC = re.compile(r"^(?P<name>[^=]+)=(?P<lo>\d+)(?::(?P<hi>\d+))?$")


def parse_dim_specs(values: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``["batch=1:8", "seq=16"]`` -> ``{"batch": (1, 8), "seq": (16, 16)}``; ModelError if malformed."""
    ranges: dict[str, tuple[int, int]] = {}
    for raw in values:
        match = _DIM_SPEC.match(raw.strip())
        if not match:
            raise ModelError(f"--dim {raw!r}: expected NAME=MIN:MAX or NAME=SIZE (for example batch=1:8)")
        lo = int(match["lo"])
        hi = int(match["hi"]) if match["hi"] is not None else lo
        if not 1 <= lo <= hi:
            raise ModelError(f"--dim {raw!r}: need 1 <= MIN <= MAX")
        ranges[match["name"].strip()] = (lo, hi)
    return ranges


def resolve_ranges(specs: list[InputSpec], given: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """A range for every symbolic dimension; a ``--dim`` naming no symbolic dimension is an error."""
    names = symbolic_dims(specs)
    static = {f"{s.name}[{axis}]": d for s in specs for axis, d in enumerate(s.dims) if isinstance(d, int)}
    for name in given:
        if name in names:
            continue
        if name in static:
            raise ModelError(f"--dim {name}: that dimension is static ({static[name]}) in the model")
        known = ", ".join(names) or "none (every dimension is static)"
        raise ModelError(f"--dim {name}: the model has no symbolic dimension {name!r}; its symbolic dimensions: {known}")
    return {name: given.get(name, DEFAULT_DIM_RANGE) for name in names}


def largest_example(specs: list[InputSpec], ranges: Mapping[str, tuple[int, int]]) -> int:
    """Elements of all inputs together at the top of every range (what memory must hold)."""
    top = {name: hi for name, (lo, hi) in ranges.items()}
    return sum(math.prod(s.shape(top)) for s in specs)


def check_size(specs: list[InputSpec], ranges: Mapping[str, tuple[int, int]], max_elements: int) -> None:
    """Refuse models whose declared (or ``--dim``-bounded) inputs exceed ``max_elements``."""
    total = largest_example(specs, ranges)
    if total <= max_elements:
        return
    biggest = max(specs, key=lambda s: math.prod(s.shape({n: hi for n, (lo, hi) in ranges.items()})))
    raise ModelError(
        f"inputs would hold up to {total:,} elements (largest: {biggest.describe()}), over the "
        f"--max-elements bound of {max_elements:,}; lower the symbolic dimensions with "
        f"--dim NAME=MIN:MAX or raise --max-elements")
