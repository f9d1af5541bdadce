"""A third-party runtime that takes a torch program plugs in through ``--backend`` like an ONNX
one: its format names the targets, the core exports through it (cached) and runs its sessions."""

import json

import pytest

from conformance.backends import ProgramBackend, load_backend


def test_a_class_with_export_and_load_is_a_program_runtime():
    backend = load_backend("tests.torchscript_runtime:TorchScriptRuntime")
    assert isinstance(backend, ProgramBackend)
    assert backend.format == "torchscript-program" and backend.per_shape is False


@pytest.mark.slow
def test_program_runtime_runs_the_cases_and_its_fault_is_caught(suite, tmp_path):
    select = ("cases/test_operators.py", "-m", "parity", "-k", "test_operator and (relu or conv2d) and not prelu")
    good = suite(*select, "--backend", "tests.torchscript_runtime:TorchScriptRuntime")
    assert good.returncode == 0, good.stdout[-3000:]
    cases = json.loads((tmp_path / "reports" / "parity.json").read_text())["cases"]
    assert {(c["case"], c["exporter"], c["outcome"]) for c in cases} == {
        ("relu", "torchscript-program", "passed"), ("conv2d", "torchscript-program", "passed")}
    assert "test_operator[tests.torchscript_runtime.TorchScriptRuntime-torchscript-program-relu]" in \
        {c["nodeid"].split("::")[-1] for c in cases}
    bad = suite(*select, "--backend", "tests.torchscript_runtime:SlopedRuntime")
    assert bad.returncode == 1 and "parity fails at decimal=3" in bad.stdout, bad.stdout[-3000:]


def test_a_program_runtime_fault_is_localized_to_its_layer():
    """Each layer exported alone through the runtime: the first wrong alone is the faulty conv3,
    the layers before it are checked and right, and none after it is exported."""
    import numpy as np
    import torch

    from conformance.localize.program import localize_program
    from conformance.models import SuperResolutionNet

    torch.manual_seed(0)
    module = SuperResolutionNet(upscale_factor=2).eval()
    x = np.random.default_rng(0).random((1, 1, 9, 9), dtype=np.float32)
    for runtime, first in (("NarrowConvOff", "conv3"), ("TorchScriptRuntime", None)):
        backend = load_backend(f"tests.torchscript_runtime:{runtime}")
        found = localize_program(module, [x], lambda leaf, args: backend.load(backend.export(leaf, args, None)))
        checked = [layer.layer for layer in found.layers]
        if first is None:
            # every leaf once, at its first call (the one ReLU module serves all four convs)
            assert found.first_diverging is None and checked == ["conv1", "relu", "conv2", "conv3", "conv4",
                                                                  "pixel_shuffle"]
            assert found.describe().startswith("no layer is wrong alone (6 exported alone through the runtime")
        else:
            assert found.first_diverging.layer == first and checked[-1] == first
            assert checked[:3] == ["conv1", "relu", "conv2"]  # checked before it, right alone
            assert found.describe().startswith("first diverging layer: conv3 (Conv2d): max abs error 0.05")


@pytest.mark.slow
def test_a_failing_model_on_a_program_runtime_names_its_layer(suite, tmp_path):
    run = suite("cases/test_models.py", "-m", "parity", "-k", "test_model and superres and not special and not frames",
                "--backend", "tests.torchscript_runtime:NarrowConvOff")
    assert run.returncode == 1, run.stdout[-3000:]
    assert "first diverging layer: conv3 (Conv2d): max abs error 0.05 alone" in run.stdout, run.stdout[-3000:]
    cases = json.loads((tmp_path / "reports" / "parity.json").read_text())["cases"]
    found = [c["localization"] for c in cases if c["outcome"] == "failed"]
    assert found and found[0]["first_diverging"] == "conv3"
