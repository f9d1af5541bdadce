"""Where each node ran: OpenVINO's execution precision per node, ExecuTorch's delegate per op,
read from the runtimes themselves and kept in the case's record."""

import pytest
import torch

from conformance.draw.model_cases import SUPERRES
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe
from conformance.engine.harness import Example, Harness, Target
from conformance.formats.onnx_export import ExportTarget

EXAMPLE = Example(3, WeightRecipe("orthogonal-relu", 0.0, 1), InputRecipe((1, 1, 12, 12), "unit", "uniform", 1, 0),
                  "initializers", Deployment(False, 1))


def placement(backend, export):
    outcome = Harness().run(SUPERRES, Target(backend, export), EXAMPLE)  # bf16 may fail parity: no matter
    assert outcome.placement is not None
    return outcome.placement()


@pytest.mark.parametrize("default", [False, True], ids=["pinned-f32", "default-hint"])
def test_openvino_names_the_precision_of_every_conv(default):
    pytest.importorskip("openvino")
    from conformance.backends.openvino import OpenVinoBackend

    backend = OpenVinoBackend(default=default)
    nodes = placement(backend, ExportTarget("torchscript", 17))
    convs = {name: p for name, p in nodes.items() if name.endswith("/Conv")}
    assert len(convs) == 4, nodes  # SuperResolutionNet's four convolutions, each named
    expected = {backend.precision()}  # f32 pinned; the CPU plugin's default (bf16 here) otherwise
    assert set(convs.values()) == expected, nodes


@pytest.mark.parametrize("delegate", ["xnnpack", None], ids=["xnnpack", "portable"])
def test_executorch_says_which_ops_the_delegate_took(delegate):
    pytest.importorskip("executorch")
    from conformance.backends.executorch import ExecutorchBackend
    from conformance.formats.onnx_export import ProgramFormat

    backend = ExecutorchBackend(delegate=delegate)
    nodes = placement(backend, ProgramFormat(backend.format))
    convs = {op: where for op, where in nodes.items() if "convolution" in op}
    assert len(convs) == 4, nodes
    assert set(convs.values()) == ({"XnnpackBackend"} if delegate else {"portable"}), nodes


def test_executorch_placement_survives_the_artifact_cache(tmp_path):
    """A ``.pte`` read back from the disk cache was never lowered in this process: where its ops
    run comes from the cache too (it was lost once, in a second run with a warm cache)."""
    pytest.importorskip("executorch")
    from conformance.backends.executorch import ExecutorchBackend
    from conformance.formats import artifact_cache
    from conformance.formats.onnx_export import ProgramFormat

    before = artifact_cache.active()
    try:
        artifact_cache.configure(tmp_path / "cache")
        first = placement(ExecutorchBackend(), ProgramFormat("pte"))  # lowered here, stored
        again = placement(ExecutorchBackend(), ProgramFormat("pte"))  # a new backend: read from the cache
        assert artifact_cache.active().hits >= 1
    finally:
        artifact_cache.restore(before)
    assert again == first and any(where == "XnnpackBackend" for where in again.values()), again
