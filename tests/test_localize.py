"""Localization: a fault seeded in one layer is named, upstream of everything it disturbs.

Models: SuperResolutionNet and SRResNet (BatchNorm folded into Conv, PReLU, residual Adds), each
exported by TorchScript at opset 17, by dynamo at 18 (node metadata kept) and by dynamo at 17
(its down-conversion drops the metadata: only parameter names lead to modules).
"""

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from conformance.testing import fault_base, faults
from conformance.backends.onnxrt import OnnxRuntimeBackend
from conformance.engine.compare import compare
from conformance.formats.onnx_export import ExportTarget, export
from conformance.localize.layermap import map_nodes
from conformance.localize.onnx_graph import LocalizationError, localize, max_abs_error, plot_profile
from conformance.models.srresnet import SRResNet
from conformance.models.superres import SuperResolutionNet
from conformance.draw.strategies import InputRecipe, WeightRecipe

ORT = OnnxRuntimeBackend().prepare
TARGETS = {"ts17": ExportTarget("torchscript", 17), "dynamo18": ExportTarget("dynamo", 18),
           "dynamo17": ExportTarget("dynamo", 17)}
MODELS = {
    # name: (module factory, input recipe); pixel-scale photo crops for the tutorial's network
    "superres": (lambda: SuperResolutionNet(3), InputRecipe((2, 1, 12, 13), "pixel", "photo", 1, 0, "chelsea")),
    "srresnet": (lambda: SRResNet(2, 8), InputRecipe((1, 3, 8, 9), "unit", "photo", 2, 0, "astronaut")),
}
_CACHE = {}


def exported(model_name: str, export_id: str):
    """(module with drawn weights, its export, inputs): built once per module run."""
    key = (model_name, export_id)
    if key not in _CACHE:
        factory, recipe = MODELS[model_name]
        module = factory().eval()
        weights = WeightRecipe("pytorch-default", 0.0, 11).materialize(module)  # BN stats drawn too
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
        x = recipe.materialize()
        model = export(module, (torch.from_numpy(x),), TARGETS[export_id], dynamic=[(0, 2, 3)])
        _CACHE[key] = module, model, x
    return _CACHE[key]


CASES = [(m, t) for m in MODELS for t in TARGETS]


@pytest.mark.parametrize("model_name, export_id", CASES)
def test_a_correct_runtime_has_no_diverging_layer(model_name, export_id):
    module, model, x = exported(model_name, export_id)
    result = localize(model, [x], ORT, module=module)
    assert result and result.first_diverging is None and result.first_over is None
    assert result.reference == "torch" and len(result.layers) >= len(model.graph.node) - 5
    assert max(layer.share for layer in result.layers) < 0.5
    assert result.describe().startswith("no diverging layer")


@pytest.mark.parametrize("model_name, export_id", CASES)
def test_a_fault_in_any_single_node_is_named_and_nothing_before_it(model_name, export_id):
    module, model, x = exported(model_name, export_id)
    for node in model.graph.node:
        if node.op_type in ("Constant", "Shape"):
            continue
        result = localize(model, [x], faults.perturbed_node(node.name).prepare, module=module)
        first = result.first_diverging
        assert first is not None and first.node == node.name, (node.name, result.describe())
        before = result.layers[:result.layers.index(first)]
        assert all(layer.share < 1 for layer in before), node.name
        # Later layers over the tolerance inherited the error: right alone on the reference's inputs.
        assert not any(layer.diverges for layer in result.layers if layer is not first)


EXPECTED_LAYER = {  # (model, ONNX op, occurrence) -> the module path the message must name
    ("superres", "Conv", 1): "conv2",
    ("srresnet", "Conv", 6): "upsample.0.conv",
}


@pytest.mark.parametrize("model_name, export_id", CASES)
def test_the_message_names_the_module(model_name, export_id):
    module, model, x = exported(model_name, export_id)
    for (name, op, occurrence), path in EXPECTED_LAYER.items():
        if name != model_name:
            continue
        node = [n for n in model.graph.node if n.op_type == op][occurrence]
        result = localize(model, [x], faults.perturbed_node(node.name, 0.41).prepare, module=module)
        assert result.first_diverging.module == path
        assert result.describe().startswith(f"first diverging layer: {path} ({op} {node.name}): "
                                            f"max abs error 0.41 alone on the reference's inputs")


def test_torchscript_scopes_map_every_call_of_a_reused_module():
    module, model, _ = exported("superres", "ts17")
    mapped = map_nodes(model, module)
    by_name = {model.graph.node[i].name: key for i, key in mapped.items()}
    assert by_name["/relu/Relu"] == ("relu", 0) and by_name["/relu_2/Relu"] == ("relu", 2)
    assert by_name["/conv4/Conv"] == ("conv4", 0)


@pytest.mark.parametrize("model_name", list(MODELS))
def test_dynamo_at_opset_17_still_names_activation_layers(model_name):
    """Its down-conversion drops the scope metadata; execution order names ReLU/PReLU/shuffle."""
    module, model, x = exported(model_name, "dynamo17")
    by_op = {}
    for layer in localize(model, [x], ORT, module=module).layers:
        by_op.setdefault(layer.op_type, []).append(layer.layer)
    if model_name == "superres":
        assert by_op["Relu"] == ["relu"] * 3 and by_op["DepthToSpace"] == ["pixel_shuffle"]
    else:
        assert by_op["PRelu"] == ["head.1", "blocks.0.prelu", "blocks.1.prelu", "upsample.0.prelu", "upsample.1.prelu"]
        assert by_op["DepthToSpace"] == ["upsample.0.shuffle", "upsample.1.shuffle"]


def test_folded_batchnorm_is_compared_with_the_batchnorm_output():
    """The exported Conv holds conv1 + bn1: its reference is bn1's output, not conv1's."""
    module, model, x = exported("srresnet", "ts17")
    result = localize(model, [x], ORT, module=module)
    conv = next(layer for layer in result.layers if layer.node == "/blocks/blocks.0/conv1/Conv")
    assert conv.module == "blocks.0.conv1" and conv.share < 0.5
    with torch.no_grad():
        raw = module.blocks[0].conv1(module.head(torch.from_numpy(x))).numpy()
        folded = module.blocks[0].bn1(torch.from_numpy(raw)).numpy()
    assert np.abs(raw - folded).max() > 0.1  # the BatchNorm matters: mapping to conv1 would fail


@pytest.mark.parametrize("model_name", list(MODELS))
def test_a_bare_model_is_compared_with_the_reference_runtime(model_name):
    _, model, x = exported(model_name, "ts17")
    clean = localize(model, [x], ORT)
    assert clean and clean.reference == "reference runtime"
    node = [n for n in model.graph.node if n.op_type == "Conv"][2]
    result = localize(model, [x], faults.perturbed_node(node.name).prepare)
    assert result.first_diverging.node == node.name and result.first_diverging.module is None


class FusedOnly:
    """Wrong only when a node runs inside a larger graph (as a fusion bug would be)."""

    def __init__(self, node: str):
        self._faulty = faults.perturbed_node(node)

    def prepare(self, model):
        return (self._faulty if len(model.graph.node) > 1 else fault_base.Fault).prepare(model)


def test_a_fault_of_the_whole_graph_is_not_blamed_on_a_node():
    module, model, x = exported("superres", "ts17")
    result = localize(model, [x], FusedOnly("/conv3/Conv").prepare, module=module)
    assert not result and result.first_diverging is None
    assert result.first_over.node == "/conv3/Conv"
    assert "no layer is wrong alone" in result.describe() and "conv3" in result.describe()


def test_a_runtime_that_cannot_run_intermediates_gives_one_line():
    _, model, x = exported("superres", "ts17")

    def refuses(model):
        raise RuntimeError("outputs must be\nthe declared ones")

    with pytest.raises(LocalizationError, match=r"^the runtime cannot run the model .*outputs must be$"):
        localize(model, [x], refuses)


class DropsExtraOutputs:
    """A runtime that only returns the model's declared first output."""

    @staticmethod
    def prepare(model):
        session = ORT(model)
        return type("S", (), {"run": lambda self, xs: session.run(xs)[:1]})()


def test_a_runtime_that_drops_marked_outputs_or_a_module_that_cannot_run_gives_one_line():
    module, model, x = exported("superres", "ts17")
    with pytest.raises(LocalizationError, match=r"returned 1 outputs for 8 marked ones$"):
        localize(model, [x], DropsExtraOutputs.prepare)
    with pytest.raises(LocalizationError, match=r"^the torch module cannot run on the model's 2 inputs"):
        localize(model, [x, x], lambda m: type("S", (), {"run": lambda self, xs: ORT(m).run(xs[:1])})(),
                 module=module)


def test_the_profile_plot_is_a_png_with_one_bar_per_layer(tmp_path):
    import matplotlib.image

    module, model, x = exported("srresnet", "ts17")
    result = localize(model, [x], faults.perturbed_node("/tail/tail.0/Conv").prepare, module=module)
    path = plot_profile(result, tmp_path / "profile.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    # Wider for more layers: the plot grows with the model.
    small = localize(*exported("superres", "ts17")[1:2], [exported("superres", "ts17")[2]], ORT)
    assert matplotlib.image.imread(plot_profile(small, tmp_path / "s.png")).shape[1] <= image.shape[1]


_any_float = st.floats(width=32, allow_nan=True, allow_infinity=True)


@given(arrays(np.float32, 12, elements=_any_float), arrays(np.float32, 12, elements=_any_float))
def test_the_fast_profile_error_is_compares(a, e):
    assert max_abs_error(a, e) == compare(a, e).max_abs
