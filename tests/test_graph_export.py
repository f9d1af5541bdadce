"""Export verification, weight binding and op listing on real exports."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conformance.formats.onnx_export import ExportCache, ExportTarget, UnsupportedExport, export, support_verdict
from conformance.formats.graph import bind_weights, model_opset, op_types, weights_as_inputs
from conformance.models import SuperResolutionNet

TS17 = ExportTarget("torchscript", 17)


def run(model, *arrays):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, dict(zip([i.name for i in s.get_inputs()], arrays)))[0]


def test_superres_exports_conv_relu_depthtospace_and_reshape_at_opset9():
    m = SuperResolutionNet(3)
    x = torch.zeros(2, 1, 13, 17)
    assert op_types(export(m, (x,), TS17, dynamic=[(0, 2, 3)])) == {"Conv", "Relu", "DepthToSpace"}
    ops9 = op_types(export(m, (x,), ExportTarget("torchscript", 9), dynamic=[(0, 2, 3)]))
    assert {"Reshape", "Transpose"} <= ops9 and "DepthToSpace" not in ops9


def test_dynamic_axes_serve_other_shapes():
    m = torch.nn.Conv2d(2, 3, 3, padding=1).eval()
    model = export(m, (torch.zeros(2, 2, 13, 17),), TS17, dynamic=[(0, 2, 3)])
    x = np.random.default_rng(0).random((4, 2, 70, 5), dtype=np.float32)
    np.testing.assert_allclose(run(model, x), m(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_torchscript_refuses_opset_past_its_newest():
    with pytest.raises(UnsupportedExport, match="refuses opset 24"):
        export(torch.nn.ReLU(), (torch.zeros(2, 1, 3, 3),), ExportTarget("torchscript", 24))


@pytest.mark.slow
def test_dynamo_silent_opset_change_is_reported_unsupported():
    reason = support_verdict(ExportTarget("dynamo", 11))
    assert reason == "the dynamo exporter asked for opset 11 returns an opset-18 model"


def test_bind_weights_swaps_initializers_without_reexport():
    m = torch.nn.Conv2d(1, 2, 3).eval()
    model = export(m, (torch.zeros(2, 1, 8, 8),), TS17, dynamic=[(0, 2, 3)])
    new = {"weight": np.ones((2, 1, 3, 3), np.float32), "bias": np.float32([1, -1])}
    bound = bind_weights(model, new)
    x = np.ones((1, 1, 3, 3), np.float32)
    assert run(bound, x).ravel().tolist() == [10.0, 8.0]
    assert bind_weights(model, {"weight": np.ones((5, 5), np.float32)}) is None  # shape differs
    assert bind_weights(model, {"folded.away": np.ones(1, np.float32)}) is None


def test_weights_as_inputs_feeds_weights_at_run_time():
    m = torch.nn.Conv2d(1, 2, 3).eval()
    model = weights_as_inputs(export(m, (torch.zeros(2, 1, 8, 8),), TS17, dynamic=[(0, 2, 3)]), ["weight", "bias"])
    assert [i.name for i in model.graph.input] == ["input", "weight", "bias"]
    out = run(model, np.ones((1, 1, 3, 3), np.float32), np.ones((2, 1, 3, 3), np.float32), np.float32([0, 1]))
    assert out.ravel().tolist() == [9.0, 10.0]
    assert model_opset(model) == 17


def test_export_cache_exports_once_and_remembers_failures():
    cache, calls = ExportCache(), []

    def build():
        calls.append(1)
        return export(torch.nn.ReLU(), (torch.zeros(2, 1, 3, 3),), TS17)

    assert cache.get("k", build) is cache.get("k", build) and len(calls) == 1

    def refuse():
        raise UnsupportedExport("no")

    for _ in range(2):
        with pytest.raises(UnsupportedExport):
            cache.get("bad", refuse)


def test_dynamo_exports_share_one_torchlib_registry_and_give_the_same_model():
    from torch.onnx._internal.exporter import _registration

    from conformance.formats import onnx_export as export_mod

    original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    built = []

    def counting(cls, *args, **kwargs):
        built.append(1)
        return original.__func__(cls, *args, **kwargs)

    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU())
    x = torch.randn(1, 2, 7, 7)
    target = ExportTarget("dynamo", 18)
    _registration.ONNXRegistry.from_torchlib = classmethod(counting)
    try:
        export_mod._TORCHLIB_REGISTRIES.clear()
        first = export(module, (x,), target, dynamic=[(0, 2, 3)])
        second = export(module, (x,), target, dynamic=[(0, 2, 3)])
        assert len(built) == 1  # the second export reused the first one's registry
    finally:
        _registration.ONNXRegistry.from_torchlib = original
        export_mod._TORCHLIB_REGISTRIES.clear()
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is original  # torch left as it was
    assert first.graph == second.graph
    fresh = torch.onnx.export(module, (x,), dynamo=True, opset_version=18,
                              dynamic_shapes=({0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC,
                                               3: torch.export.Dim.DYNAMIC},)).model_proto
    assert [n.op_type for n in fresh.graph.node] == [n.op_type for n in first.graph.node]
