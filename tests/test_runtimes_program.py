"""The torch-program runtimes (ExecuTorch, LiteRT) called as the core will call them:
``export(module, example_args, dynamic) -> bytes`` once, ``load(bytes)`` -> session, compared with
torch eager at decimal 3. Exports take seconds, so each is made once per module.

A runtime that is not installed skips with the reason; CI installs every extra.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.backends import BackendError, load_backend
from conformance.backends._runtime import Unsupported
from conformance.engine.compare import compare
from conformance.models import SuperResolutionNet
from conformance.draw.operators import ConvStructure, _build_conv
from conformance.draw.strategies import InputRecipe


def _runtime(name: str, *packages: str):
    for package in packages:
        pytest.importorskip(package, reason=f"the {name} runtime is not installed")
    return load_backend(name)


def _torch(module, *arrays):
    with torch.no_grad():
        return module(*(torch.from_numpy(a) for a in arrays)).numpy()


def _check(module, session, shape, scale="pixel"):
    x = InputRecipe(shape, scale, "integers" if scale == "pixel" else "uniform", 3, 0).materialize()
    result = compare(session.run([x])[0], _torch(module, x))
    assert result, f"{shape}: {result.summary()}"
    return result


@pytest.fixture(scope="module")
def superres():
    torch.manual_seed(0)
    return SuperResolutionNet(3).eval()


@pytest.fixture(scope="module")
def executorch():
    return _runtime("executorch", "executorch")


@pytest.fixture(scope="module")
def executorch_pte(executorch, superres):
    """One .pte with batch, height and width dynamic (bounded)."""
    return executorch.export(superres, (torch.zeros(2, 1, 13, 17),), [(0, 2, 3)])


def test_executorch_one_program_serves_many_shapes(executorch, executorch_pte, superres):
    session = executorch.load(executorch_pte)
    for shape in [(1, 1, 32, 32), (2, 1, 19, 27), (4, 1, 7, 5)]:
        _check(superres, session, shape)
    _check(superres, session, (1, 1, 24, 24), scale="unit")
    assert executorch.versions()["delegate"] == "XNNPACK"


def test_executorch_refuses_shapes_outside_its_bounds(executorch, executorch_pte):
    session = executorch.load(executorch_pte)
    with pytest.raises(Unsupported, match=r"input 0 of shape \(1, 1, 300, 8\) is outside the program's bounds"):
        session.run([np.zeros((1, 1, 300, 8), np.float32)])


def test_executorch_strided_conv_with_every_axis_dynamic(executorch):
    """A stride-2 conv guards its output size: a named Dim refused the export, AUTO narrows it."""
    conv = _build_conv(ConvStructure(3, 8, (3, 3), (2, 2), (0, 0), (1, 1), 1, True)).eval()
    session = executorch.load(executorch.export(conv, (torch.zeros(2, 3, 13, 17),), [(0, 2, 3)]))
    for shape in [(1, 3, 5, 5), (4, 3, 40, 3), (3, 3, 96, 61)]:
        _check(conv, session, shape, scale="unit")


def test_executorch_static_program_and_size_one_dynamic_axis(executorch):
    conv = _build_conv(ConvStructure(3, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)).eval()
    session = executorch.load(executorch.export(conv, (torch.zeros(1, 3, 10, 12),), None))
    _check(conv, session, (1, 3, 10, 12), scale="unit")
    with pytest.raises(Unsupported, match="outside the program's bounds"):
        session.run([np.zeros((1, 3, 11, 12), np.float32)])
    # torch.export would silently make a size-1 dynamic axis static: refused up front instead.
    with pytest.raises(BackendError, match="size 1 on dynamic axis 0; give a size from 2 to 4"):
        executorch.export(conv, (torch.zeros(1, 3, 10, 12),), [(0,)])


def test_executorch_portable_smoke(superres):
    """The portable kernels (no delegate): ~23 s per run at 224x224, so one small input."""
    portable = _runtime("executorch-portable", "executorch")
    session = portable.load(portable.export(superres, (torch.zeros(1, 1, 8, 8),), [(2, 3)]))
    _check(superres, session, (1, 1, 8, 8))
    assert "portable" in portable.versions()["delegate"]


@pytest.mark.parametrize("name", ["litert", "litert-reference"])
def test_litert_one_conversion_per_shape(name, superres):
    backend = _runtime(name, "litert_torch", "ai_edge_litert")
    assert backend.per_shape
    shape = (1, 1, 32, 32)
    session = backend.load(backend.export(superres, (torch.zeros(shape),), [(0, 2, 3)]))
    _check(superres, session, shape)
    _check(superres, session, shape, scale="unit")
    with pytest.raises(Unsupported, match=r"converted for input 0 of shape \(1, 1, 32, 32\), got \(1, 1, 33, 32\)"):
        session.run([np.zeros((1, 1, 33, 32), np.float32)])


def test_litert_pixel_shuffle_and_conv_ops():
    backend = _runtime("litert", "litert_torch", "ai_edge_litert")
    conv = _build_conv(ConvStructure(4, 18, (3, 3), (2, 1), (1, 1), (1, 1), 2, True))
    module = torch.nn.Sequential(conv, torch.nn.PixelShuffle(3)).eval()
    shape = (2, 4, 9, 10)
    _check(module, backend.load(backend.export(module, (torch.zeros(shape),), None)), shape, scale="unit")


def test_executorch_session_outlives_its_program_and_artifact(executorch, executorch_pte, superres):
    """The session keeps what its method points into: with the caller's references to the
    program bytes gone and the garbage collector run, it still runs (it crashed before)."""
    import gc

    session = executorch.load(bytearray(executorch_pte))  # a private copy nobody else holds
    gc.collect()
    for shape in [(1, 1, 12, 12), (2, 1, 9, 7)]:
        _check(superres, session, shape)
