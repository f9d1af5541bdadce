"""A case's example shape is a hint for the export, not a constraint, and a static deployment is
exported static on every format.

``torch.export`` (the dynamo exporter, ExecuTorch, LiteRT) specializes a size of 1, so a batch-1
example (a user's most natural one) is exported at 2; an axis the module fixes (a Conv's channels,
which a registered strategy of shapes leaves dynamic by default) is exported static instead of
failing the export. Real exports, tiny modules: a few seconds in all (the dynamo exporter's).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.backends.base import ProgramBackend
from conformance.draw.operators import RELU
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe
from conformance.engine.harness import Example, Harness, Target
from conformance.formats.onnx_export import (
    ExportTarget,
    ProgramFormat,
    UnsupportedExport,
    export,
    export_at_example,
    fixed_axes,
)


class OneChannel(torch.nn.Module):
    """A grayscale model: its input's channel axis can only be 1."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def dims(model) -> list:
    """The model input's dims: a name where symbolic, the size where fixed."""
    return [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


def recording(module, target, calls: list):
    def run(args, dynamic):
        calls.append((tuple(args[0].shape), dynamic))
        return export(module, args, target, dynamic=dynamic)
    return run


def runs_like_torch(model, module, shape):
    import onnxruntime as ort

    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, module(torch.from_numpy(x)).numpy(), atol=1e-5)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_a_batch_one_example_is_exported_at_two_and_batch_stays_dynamic(exporter):
    module = torch.nn.Linear(4, 2).eval()
    calls = []
    model = export_at_example(recording(module, ExportTarget(exporter, 18), calls), module, (1, 4), (0,))
    assert calls == [((2, 4), [(0,)])]
    assert isinstance(dims(model)[0], str) and dims(model)[1] == 4, dims(model)
    for batch in (1, 3):
        runs_like_torch(model, module, (batch, 4))


@pytest.mark.parametrize("exporter, channels, shape", [
    ("torchscript", 1, (1, 1, 8, 8)),  # 2 channels cannot run: a size-1 fixed axis
    ("dynamo", 1, (1, 1, 8, 8)),
    ("dynamo", 3, (2, 3, 8, 8)),  # the dynamo exporter refuses a dynamic axis the model fixes
])
def test_an_axis_the_module_fixes_is_exported_static_at_the_example_size(exporter, channels, shape):
    module = OneChannel(channels).eval()
    calls = []
    model = export_at_example(recording(module, ExportTarget(exporter, 18), calls), module, shape, (0, 1, 2, 3))
    assert calls[-1] == ((2, channels, 8, 8), [(0, 2, 3)]) and len(calls) == 2, calls
    got = dims(model)
    assert got[1] == channels and all(isinstance(got[a], str) for a in (0, 2, 3)), got
    runs_like_torch(model, module, (3, channels, 5, 11))


def test_fixed_axes_are_those_the_module_cannot_vary():
    assert fixed_axes(OneChannel(1), (1, 1, 8, 8), (0, 1, 2, 3)) == (1,)
    assert fixed_axes(OneChannel(3), (2, 3, 8, 8), (0, 2, 3)) == ()
    assert fixed_axes(torch.nn.Linear(4, 2), (1, 4), (0, 1)) == (1,)
    assert fixed_axes(OneChannel(3), (2, 1, 8, 8), (0, 1)) == ()  # not even the example runs: no guess


def test_an_export_error_the_shapes_do_not_explain_is_raised_as_it_was():
    calls = []

    def broken(args, dynamic):
        calls.append(dynamic)
        raise ValueError("the exporter broke")

    with pytest.raises(ValueError, match="the exporter broke"):
        export_at_example(broken, torch.nn.Linear(4, 2), (1, 4), (0,))
    assert calls == [[(0,)]]  # the module runs at any batch: nothing to retry

    def refuses(args, dynamic):
        calls.append(dynamic)
        raise UnsupportedExport("the torchscript exporter refuses opset 99")

    calls.clear()
    with pytest.raises(UnsupportedExport):
        export_at_example(refuses, OneChannel(1), (1, 1, 8, 8), (0, 1, 2, 3))
    assert len(calls) == 1  # a refused opset is no shape problem


class _Recording(ProgramBackend):
    """A program runtime (TorchScript tracing) that records the shape and dynamic axes of each export."""

    name, format = "recording", "ts-program"

    def __init__(self):
        self.exports = []

    def export(self, module, example_args, dynamic):
        import io

        self.exports.append((tuple(example_args[0].shape), dynamic))
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(module.eval(), example_args, check_trace=False), buffer)
        return buffer.getvalue()

    def load(self, artifact):
        import io

        program = torch.jit.load(io.BytesIO(artifact))

        class Session:
            def run(self, inputs):
                with torch.no_grad():
                    return [program(torch.from_numpy(np.ascontiguousarray(inputs[0]))).numpy()]
        return Session()


def _example(static: bool) -> Example:
    return Example((), WeightRecipe("pytorch-default", 0.0, 0), InputRecipe((1, 3, 6, 9), "unit", "uniform", 0, 0),
                   "initializers", Deployment(static, 2))


def test_a_static_deployment_exports_a_static_program():
    """The tutorial's static deployment on a program runtime (ExecuTorch) once ran the dynamic
    program: the artifact's key and export ignored the deployment."""
    backend = _Recording()
    harness = Harness()
    for static in (False, True, True):
        assert harness.run(RELU, Target(backend, ProgramFormat("ts-program")), _example(static)).result
    assert backend.exports == [((2, 3, 5, 7), [(0, 1, 2, 3)]), ((1, 3, 6, 9), None)]  # one each


def test_executorch_static_deployment_has_no_dynamic_size_arithmetic():
    """A dynamic program keeps ExecuTorch's prim ops (sym_size, size products) outside the delegate;
    the static one, as the tutorial and a phone app export it, has none."""
    pytest.importorskip("executorch")
    from conformance.backends.executorch import ExecutorchBackend
    from conformance.draw.model_cases import SUPERRES

    example = Example(2, WeightRecipe("orthogonal-relu", 0.0, 1), InputRecipe((1, 1, 12, 12), "unit", "uniform", 1, 0),
                      "initializers", Deployment(True, 1))
    outcome = Harness().run(SUPERRES, Target(ExecutorchBackend(), ProgramFormat("pte")), example)
    assert outcome.result
    nodes = outcome.placement()
    assert set(nodes.values()) == {"XnnpackBackend"}, nodes


@pytest.fixture
def gray():
    """A grayscale module registered as a user would: a batch-1 example and a strategy of shapes,
    which leaves every axis dynamic by default (the channel axis too, which the Conv fixes at 1)."""
    from hypothesis import strategies as st

    from conformance.byom.register import register_module, unregister

    shapes = st.tuples(st.integers(1, 3), st.just(1), st.integers(4, 12), st.integers(4, 12))
    yield register_module("gray_hint", OneChannel, torch.zeros(1, 1, 8, 8), input_shapes=shapes)
    unregister("gray_hint")


def _targets():
    from conformance.backends.onnxrt import OnnxRuntimeBackend

    yield Target(OnnxRuntimeBackend(), ExportTarget("torchscript", 18))
    yield Target(OnnxRuntimeBackend(), ExportTarget("dynamo", 18))
    try:
        from conformance.backends.executorch import ExecutorchBackend
    except ImportError:
        return
    yield Target(ExecutorchBackend(), ProgramFormat("pte"))


def test_a_registered_batch_one_module_runs_every_drawn_shape_from_one_export(gray):
    """Before: a batch-1 example failed every export of this module (ExecuTorch refused size 1 on a
    dynamic axis; exported at 2 on every dynamic axis, the Conv refused 2 channels)."""
    recipe = WeightRecipe("pytorch-default", 0.0, 0)
    for target in _targets():
        harness = Harness()
        for shape in ((1, 1, 8, 8), (3, 1, 5, 11), (2, 1, 12, 4)):
            example = Example(0, recipe, InputRecipe(shape, "unit", "uniform", 0, 0), "initializers",
                              Deployment(False, 2))
            outcome = harness.run(gray, target, example)
            assert outcome.result, (target, shape, outcome.result)
        assert harness.exports.exports == 1, target  # one dynamic artifact served every shape
