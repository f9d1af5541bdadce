"""SRResNet's structure, and the ONNX ops it exports to (BatchNorm folded into Conv in eval mode)."""

from __future__ import annotations

import collections
import io
import warnings

import onnx
import pytest
import torch

from conformance.models.srresnet import SRResNet, batchnorms, prelus


def test_paper_configuration():
    model = SRResNet()
    assert not model.training and model.upscale_factor == 4
    assert sum(p.numel() for p in model.parameters()) == 1_550_659  # 16 blocks of 64 channels
    assert len(batchnorms(model)) == 2 * 16 + 1 and len(prelus(model)) == 1 + 16 + 2
    assert all(p.num_parameters == 64 for p in prelus(model))  # per-channel slopes


@pytest.mark.parametrize("n_blocks,channels", [(0, 4), (2, 8)])
def test_shapes(n_blocks, channels):
    model = SRResNet(n_blocks=n_blocks, channels=channels, in_channels=1, out_channels=2)
    with torch.no_grad():
        assert model(torch.rand(2, 1, 5, 7)).shape == (2, 2, 20, 28)


@pytest.mark.parametrize("kwargs", [{"n_blocks": -1}, {"channels": 0}, {"in_channels": 0}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SRResNet(**kwargs)


def test_torchscript_export_folds_batchnorm():
    model = SRResNet(n_blocks=2, channels=8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation warning
        torch.onnx.export(model, (torch.rand(1, 3, 6, 6),), buffer, dynamo=False, opset_version=17)
    graph = onnx.load_from_string(buffer.getvalue()).graph
    # Identity: the exporter deduplicates equal initializers (fresh PReLU slopes are all 0.25).
    ops = collections.Counter(n.op_type for n in graph.node if n.op_type != "Identity")
    # 1 head + 2*2 block + 1 tail + 2 upsample + 1 out convs; 2 block skips + 1 global skip.
    assert ops == {"Conv": 9, "PRelu": 5, "Add": 3, "DepthToSpace": 2}
