"""The ONNX-consuming runtimes catch what they should: each exact target holds decimal-3 parity on
SuperResolutionNet(3), and each ``-default`` target's divergence is measured on the tutorial
input and matches the magnitude recorded in issue 10 (where this CPU has the condition).

A runtime that is not installed skips with the reason; CI installs every extra.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
import torch

from conformance.backends import BackendError, load_backend
from conformance.engine.compare import compare, tolerance
from conformance.formats.onnx_export import ExportTarget, export
from conformance.formats.graph import weights_as_inputs
from conformance.models import SuperResolutionNet
from conformance.report import expected
from conformance.draw.strategies import InputRecipe

# name -> the Python package whose absence skips its tests
PACKAGES = {"openvino": "openvino", "tract": "tract", "mnn": "MNN", "ncnn": "ncnn"}
# Max abs error vs torch on the tutorial input at pixel scale, measured for issue 10 (another
# seed of the same orthogonal init): each -default target must land within a factor 4 of it.
ISSUE_MAGNITUDE = {"openvino-default": 1.98, "mnn-default": 0.145, "ncnn-default": 0.140}


@contextlib.contextmanager
def _backend(name: str):
    pytest.importorskip(PACKAGES[name.removesuffix("-default")], reason=f"the {name} runtime is not installed")
    backend = load_backend(name)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SuperResolutionNet(3).eval()


@pytest.fixture(scope="module")
def models(net):
    """SuperResolutionNet(3) from both exporters, batch/height/width dynamic."""
    example = (torch.zeros(2, 1, 13, 17),)
    return {exporter: export(net, example, ExportTarget(exporter, 17 if exporter == "torchscript" else 18),
                             dynamic=[(0, 2, 3)])
            for exporter in ("torchscript", "dynamo")}


def _torch(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def _pixels(shape, seed=0):
    return InputRecipe(shape, "pixel", "integers", seed, 0).materialize()


@pytest.mark.parametrize("name", ["openvino", "tract", "mnn", "ncnn"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_exact_target_holds_decimal_3(name, exporter, net, models):
    """Two shapes and a batch of two through one prepared model (dynamic shapes), pixel scale."""
    with _backend(name) as backend:
        session = backend.prepare(models[exporter])
        for shape in [(1, 1, 32, 32), (2, 1, 19, 27)]:
            x = _pixels(shape)
            result = compare(session.run([x])[0], _torch(net, x))
            assert result, f"{name} on {shape}: {result.summary()}"


@pytest.mark.parametrize("name", ["openvino", "tract", "mnn", "ncnn"])
def test_weights_fed_as_inputs(name, net, models):
    """The suite's second feed: every weight a graph input (another kernel path in most runtimes)."""
    fed = weights_as_inputs(models["torchscript"], list(net.state_dict()))
    weights = [v.numpy() for v in net.state_dict().values()]
    # A non-contiguous copy of each weight: the runtime must not keep a pointer to a temporary.
    weights = [np.asfortranarray(w) for w in weights]
    with _backend(name) as backend:
        session = backend.prepare(fed)
        for shape in [(2, 1, 9, 11), (1, 1, 1, 1)]:
            x = _pixels(shape, seed=1)
            result = compare(session.run([x] + weights)[0], _torch(net, x))
            assert result, f"{name} fed on {shape}: {result.summary()}"


def _default_condition(name: str) -> str:
    entries = [e for e in expected.load().xfails + expected.load().inactive if e.backend == name]
    assert len(entries) == 1, f"expected_failures.toml needs one entry for {name}"
    return entries[0].when


@pytest.mark.parametrize("name", sorted(ISSUE_MAGNITUDE))
def test_default_target_diverges_as_recorded(name, net, models):
    """The tutorial input (1x1x224x224, pixel scale): the default misses decimal 3 by the issue's
    magnitude where its recorded condition holds, while the exact sibling passes on the same input."""
    when = _default_condition(name)
    if not expected.condition_holds(when):
        pytest.skip(f"{name}'s recorded condition ({when}) does not hold on this CPU: its default is exact here")
    x = _pixels((1, 1, 224, 224))
    reference = _torch(net, x)
    with _backend(name) as backend:
        got = compare(backend.prepare(models["torchscript"]).run([x])[0], reference)
    with _backend(name.removesuffix("-default")) as backend:
        exact = compare(backend.prepare(models["torchscript"]).run([x])[0], reference)
    assert exact, exact.summary()
    assert not got and got.max_abs > tolerance(3)
    assert ISSUE_MAGNITUDE[name] / 4 < got.max_abs < ISSUE_MAGNITUDE[name] * 4, got.summary()


def test_tract_drops_the_dynamo_exporters_shape_symbols(models):
    from conformance.backends.tract import without_value_info

    model = models["dynamo"]
    assert len(model.graph.value_info) > 0  # the dynamo exporter annotates intermediates
    stripped = without_value_info(model)
    assert len(stripped.graph.value_info) == 0 and len(model.graph.value_info) > 0  # a copy
    assert list(stripped.graph.node) == list(model.graph.node)


def test_a_model_the_runtime_refuses_is_a_backend_error_with_its_message():
    """A graph every runtime must refuse (an operator that does not exist) fails in one line."""
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOperator", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    names = [n for n, p in PACKAGES.items() if _installed(p)]
    if not names:
        pytest.skip("no ONNX-consuming runtime is installed")
    for name in names:
        backend = load_backend(name)
        try:
            with pytest.raises(BackendError, match=f"^{name}: ") as info:
                backend.prepare(model).run([np.zeros((1, 2), np.float32)])
            assert "\n" not in str(info.value)
        finally:
            backend.close()


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


# What each runtime says when BatchNormalization's parameters arrive as graph inputs.
FED_BATCHNORM_LIMIT = {
    "tract": r"^tract: BatchNormalization needs constant .*Params are not const",
    "mnn": r"^mnn: MNNConvert needs BatchNormalization's parameters as constants .*gamma not valid",
    "ncnn": r"^ncnn: ncnn has no layer for F\.batch_norm \(left by pnnx\)$",
}


@pytest.mark.parametrize("name", sorted(FED_BATCHNORM_LIMIT))
def test_batchnorm_with_fed_parameters_is_a_named_limit(name):
    """A documented limit is reported as ``Unsupported`` carrying the runtime's own reason,
    while the same model with constant parameters runs."""
    from conformance.backends._runtime import Unsupported

    bn = torch.nn.BatchNorm2d(4).eval()
    model = export(bn, (torch.zeros(2, 4, 5, 7),), ExportTarget("torchscript", 17), dynamic=[(0, 2, 3)])
    initializers = {i.name for i in model.graph.initializer}
    fed = weights_as_inputs(model, [n for n in bn.state_dict() if n in initializers])
    with _backend(name) as backend:
        backend.prepare(model)  # constant parameters: fine
        with pytest.raises(Unsupported, match=FED_BATCHNORM_LIMIT[name]):
            backend.prepare(fed)


@pytest.mark.parametrize("name", ["openvino", "tract", "mnn", "ncnn"])
def test_in_place_first_layer_and_dynamic_channels(name):
    """A model whose first layer may run in place on the fed array (ncnn's ReLU crashed on a
    borrowed numpy buffer) with every axis dynamic: the caller's array is left untouched."""
    model = export(torch.nn.ReLU(), (torch.zeros(2, 3, 5, 7),), ExportTarget("torchscript", 17),
                   dynamic=[(0, 1, 2, 3)])
    with _backend(name) as backend:
        session = backend.prepare(model)
        for shape in [(2, 3, 5, 7), (1, 64, 1, 1), (3, 5, 3, 1)]:
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            before = x.copy()
            np.testing.assert_array_equal(session.run([x])[0], np.maximum(x, 0))
            np.testing.assert_array_equal(x, before)


def test_ncnn_names_an_opset_newer_than_its_converter_reads():
    """pnnx crashes on opsets past its own ONNX Runtime's (the dynamo exporter's newest): the
    case is skipped with that limit, not failed with a converter crash; one released opset
    lower, the same graph converts."""
    from conformance.backends._runtime import Unsupported
    from conformance.formats.onnx_export import newest_opset

    newest = newest_opset("dynamo")
    model = export(torch.nn.ReLU(), (torch.zeros(1, 2, 5, 5),), ExportTarget("dynamo", newest), dynamic=[(0, 2, 3)])
    with _backend("ncnn") as backend:
        try:
            backend.prepare(model)
        except Unsupported as exc:
            assert re.match(rf"^ncnn: pnnx \(ncnn's converter\) cannot read opset-{newest} models: its ONNX "
                            r"Runtime supports ai\.onnx up to opset \d+", str(exc)), exc
            supported = int(re.search(r"up to opset (\d+)", str(exc))[1])
            for entry in model.opset_import:
                if entry.domain in ("", "ai.onnx"):
                    entry.version = supported
            out = backend.prepare(model).run([np.float32([[[[-1.0, 2.0]]]]).repeat(2, 1)])
            np.testing.assert_array_equal(out[0], np.float32([[[[0.0, 2.0]]]]).repeat(2, 1))
        else:
            pytest.skip(f"this pnnx reads opset {newest}: nothing to name")


def test_tract_quantizes_by_the_reciprocal_of_the_scale():
    """A real divergence, recorded (expected_failures.toml, tract's int8 entries): tract's
    QuantizeLinear computes round(x * (1/scale)), the spec round(x / scale). At x = 217.257,
    scale 0.9988828 the quotient is 217.5 in float32 (the exact one 217.5000012): half to even
    gives 218, zero point -128 then 90; the reciprocal's product is 217.49998, so tract gives 89.
    Inputs drawn on rounding edges meet this; through a residual Add it moves a third of the
    outputs one step down (a bias the int8 verdict fails)."""
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    from conformance.engine.harness import prepare_model, run_session

    pytest.importorskip("tract")
    graph = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "q",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1])],
                              [numpy_helper.from_array(np.array(0.9988828, np.float32), "s"),
                               numpy_helper.from_array(np.array(-128, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    x = np.array([217.257], np.float32)
    assert ReferenceEvaluator(model).run(None, {"x": x})[0].tolist() == [90]
    for name, expected in (("onnxruntime", 90), ("tract", 89)):
        backend = load_backend(name)
        assert run_session(backend, prepare_model(backend, model), [x])[0].tolist() == [expected], name
