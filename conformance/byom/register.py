"""Registering a user's PyTorch module as a model case (``conformance.register_module``).

A registered module becomes a ``conformance.draw.spec.Case`` of kind ``model``: the built-in model
cases' test (``cases/test_models.py``) runs it on every target, both exporters and every opset,
with drawn weights and inputs, exactly like SuperResolutionNet. Register from a ``conftest.py``
or from a module named with ``pytest --register=MODULE``, before the cases are collected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hypothesis import strategies as st

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_REGISTRY: dict = {}  # name -> Case, in registration order
_QUANTIZE: dict = {}  # name -> "drawn" or a folder of .npy calibration inputs


def register_module(name: str, factory: Callable[[], "torch.nn.Module"], example_input, *,
                    input_shapes=None, dynamic: Sequence[int] | None = None,
                    scales: Sequence[str] = ("unit",), replace: bool = False, quantize=False):
    """Register ``factory()`` (a ``torch.nn.Module`` taking one float tensor) as model case ``name``.

    ``example_input`` is a float tensor (or a shape) the module accepts; it is exported at that
    shape, taken as a hint: a size of 1 on a dynamic axis is exported at 2 (``torch.export``
    would make it static), and an axis the module cannot vary is exported static. ``input_shapes`` optionally draws other shapes: a hypothesis strategy of shape tuples
    or a list of shapes; ``dynamic`` lists the axes left symbolic in the export (default: none
    without ``input_shapes``; the axes that differ for a list; every axis for a strategy).
    ``scales`` are the input scales drawn: ``unit`` ([0, 1) and N(0, 1/16)) and/or ``pixel``
    (0-255). Weights are drawn, as for the built-in models. ``quantize`` asks for int8 cases
    too (``cases/test_quantized.py``, with ``--quantized``): ``True`` draws the calibration set,
    a folder path calibrates on its ``.npy`` files (each an input of the shape quantized).
    Returns the ``Case``.
    """
    from conformance.draw.spec import Case

    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"register_module: name {name!r} must be letters, digits, '_', '.' or '-'")
    if name in _builtin_names() or (name in _REGISTRY and not replace):
        raise ValueError(f"register_module: a model case named {name!r} exists (pass replace=True to replace it)")
    if not callable(factory):
        raise TypeError(f"register_module({name!r}): factory must be a callable returning a torch.nn.Module")
    shape = _shape_of(name, example_input)
    draw, axes = _shapes(name, shape, input_shapes, dynamic)
    bad = set(scales) - {"unit", "pixel"}
    if not scales or bad:
        raise ValueError(f"register_module({name!r}): scales must be 'unit' and/or 'pixel', got {list(scales)}")
    case = Case(
        name=name, kind="model", covers=frozenset(),
        structures=lambda: st.just(0), build=lambda _: _build(name, factory),
        input_shapes=lambda _: draw, example_shape=lambda _: shape, pool=(0,),
        dynamic=axes, scales=tuple(scales),
        describe=lambda _: f"{name} (registered: {getattr(factory, '__qualname__', factory)!s})",
    )
    _REGISTRY[name] = case
    _QUANTIZE.pop(name, None)
    if quantize:
        _QUANTIZE[name] = _calibration_request(name, quantize)
    return case


def quantized_cases() -> tuple:
    """The registered cases that asked to be quantized."""
    return tuple(case for name, case in _REGISTRY.items() if name in _QUANTIZE)


def calibration_recipes(name: str):
    """The quantization recipes of case ``name``: None (drawn) unless it gave a folder."""
    folder = _QUANTIZE.get(name)
    if not isinstance(folder, Path):
        return None
    from conformance.draw.quantization import FolderCalibration

    return st.builds(FolderCalibration, st.just(str(folder)), st.booleans())


def _calibration_request(name: str, quantize):
    if quantize is True:
        return "drawn"
    folder = Path(quantize)
    if not folder.is_dir() or not any(folder.glob("*.npy")):
        raise ValueError(f"register_module({name!r}): quantize must be True or a folder of .npy calibration "
                         f"inputs; {str(folder)!r} has none")
    return folder


def registered_cases() -> tuple:
    """Every registered model case, in registration order."""
    return tuple(_REGISTRY.values())


def unregister(name: str) -> None:
    """Forget a registered case (tests use it to clean up)."""
    _REGISTRY.pop(name, None)
    _QUANTIZE.pop(name, None)


def _builtin_names() -> set[str]:
    from conformance.draw.model_cases import MODELS

    return {c.name for c in MODELS}


def _build(name: str, factory):
    import torch

    module = factory()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"registered model {name!r}: factory returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _shape_of(name: str, example_input) -> tuple[int, ...]:
    import torch

    if isinstance(example_input, torch.Tensor):
        if not example_input.is_floating_point():
            raise TypeError(f"register_module({name!r}): example_input must be a float tensor, "
                            f"got {example_input.dtype}")
        return tuple(example_input.shape)
    if isinstance(example_input, (tuple, list)) and example_input and all(
            isinstance(d, int) and d > 0 for d in example_input):
        return tuple(example_input)
    raise TypeError(f"register_module({name!r}): example_input must be a float tensor or a shape, "
                    f"got {type(example_input).__name__}")


def _shapes(name: str, shape: tuple[int, ...], input_shapes, dynamic):
    """The shape strategy and the symbolic axes."""
    if input_shapes is None:
        return st.just(shape), tuple(dynamic or ())
    if isinstance(input_shapes, st.SearchStrategy):
        return input_shapes, tuple(range(len(shape)) if dynamic is None else dynamic)
    shapes = [tuple(s) for s in _as_list(name, input_shapes)]
    if any(len(s) != len(shape) for s in shapes):
        raise ValueError(f"register_module({name!r}): every input shape must have rank {len(shape)}")
    axes = tuple(a for a in range(len(shape)) if any(s[a] != shape[a] for s in shapes))
    return st.sampled_from(shapes), tuple(axes if dynamic is None else dynamic)


def _as_list(name: str, shapes: Iterable) -> list:
    shapes = list(shapes)
    if not shapes:
        raise ValueError(f"register_module({name!r}): input_shapes is empty")
    return shapes
