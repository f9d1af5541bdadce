"""A warm run makes nothing again: the exporters' support verdicts, the cat pipeline's ONNX
export and ExecuTorch programs, and the int8 cases' quantized models (PT2E's QDQ file, ONNX
Runtime's ``quantize_static``, PT2E's ExecuTorch program) are each built twice through a fresh
cache object on one folder (as two runs would), the second time with every exporter, quantizer
and lowering made to raise: it reads them back, byte for byte the same. With the cache off
(``--no-cache``) each is made afresh and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.backends import load_backend
from conformance.draw import model_cases, operators
from conformance.draw.quantization import QuantExample, QuantInputRecipe, QuantRecipe
from conformance.draw.strategies import InputRecipe, WeightRecipe
from conformance.engine.harness import Harness, Target
from conformance.engine.qharness import QuantHarness
from conformance.formats import artifact_cache, onnx_export, quantize
from conformance.formats.onnx_export import ExportTarget, support_verdict
from conformance.formats.quantize import ORT_STATIC, PT2E, QuantFormat
from conformance.models.superres import SuperResolutionNet
from conformance.pipeline import runners


class Rebuilt(AssertionError):
    """An artifact was made again where the cache holds it."""


@pytest.fixture
def passes(tmp_path, monkeypatch):
    """``start(n)``: begin pass n on a fresh cache object over one folder (a new run's, with the
    in-process memo of verdicts cleared); from pass 2 on, anything that builds raises."""
    before = artifact_cache.active()

    def start(n: int) -> artifact_cache.ArtifactCache:
        support_verdict.cache_clear()
        if n > 1:
            forbid(monkeypatch)
        return artifact_cache.configure(tmp_path / "artifacts")

    yield start
    support_verdict.cache_clear()
    artifact_cache.restore(before)


def forbid(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise Rebuilt("made again on a warm cache")

    for owner, name in [(onnx_export, "_export_torchscript"), (onnx_export, "export_dynamo"),
                        (quantize, "export_dynamo"), (quantize, "pt2e_quantize"), (quantize, "ort_quantize")]:
        monkeypatch.setattr(owner, name, refuse)
    try:
        from conformance.backends.executorch import ExecutorchBackend
    except ImportError:
        return
    monkeypatch.setattr(ExecutorchBackend, "_lower", refuse)


def test_export_support_verdicts_are_kept(passes):
    targets = [ExportTarget("dynamo", 9), ExportTarget("torchscript", 17)]
    verdicts = []
    for n in (1, 2):
        cache = passes(n)
        verdicts.append([support_verdict(t) for t in targets])
    assert verdicts[0] == verdicts[1]
    assert "returns an opset-18 model" in verdicts[0][0] and verdicts[0][1] is None
    assert cache.hits == 2 and cache.stored == 0


def test_the_pipeline_export_is_kept(passes):
    torch.manual_seed(0)
    model = SuperResolutionNet(upscale_factor=3)
    made = []
    for n in (1, 2):
        passes(n)
        made.append(runners.export_dynamic(model).SerializeToString())
    assert made[0] == made[1]


def test_the_pipeline_programs_are_kept(passes, monkeypatch):
    pytest.importorskip("executorch")
    torch.manual_seed(0)
    model = SuperResolutionNet(upscale_factor=3)
    y = np.random.default_rng(0).random((1, 1, 12, 12), dtype=np.float32)
    programs, outputs, real = [], [], runners.load_program
    monkeypatch.setattr(runners, "load_program", lambda backend, artifact: programs.append(artifact)
                        or real(backend, artifact))
    for n in (1, 2):
        cache = passes(n)
        backend = load_backend("executorch")
        try:
            outputs.append(runners.program_runner(backend, model)(y))
        finally:
            backend.close()
    assert programs[0] == programs[1] and np.array_equal(outputs[0], outputs[1])
    assert cache.hits == 1


def _example(spec, structure, shape):
    return spec, QuantExample(structure, WeightRecipe("orthogonal-relu", 0.0, 1),
                              QuantRecipe(per_channel=True, count=4, range=1.0, distribution="uniform", seed=1),
                              QuantInputRecipe(InputRecipe(shape, "unit", "uniform", 3, 0), "none", 1.0))


def _twice(passes, spec, example, target_of):
    """The artifact of ``example`` made in two passes, each with a fresh harness and backend."""
    made = []
    for n in (1, 2):
        passes(n)
        target = target_of()
        try:
            made.append(QuantHarness(Harness()).artifact(spec, target, example))
        finally:
            target.backend.close()
    return made


@pytest.mark.parametrize("fmt, spec, structure, shape", [
    (ORT_STATIC, operators.CONV2D, operators.CONV_POOL[0], (1, 1, 16, 16)),
    (ORT_STATIC, model_cases.SUPERRES, 3, (1, 1, 24, 24)),
    (PT2E, operators.CONV2D, operators.CONV_POOL[0], (1, 1, 16, 16)),
], ids=["quantize_static-conv2d", "quantize_static-superres", "pt2e-qdq-conv2d"])
def test_quantized_models_are_kept(passes, fmt, spec, structure, shape):
    if fmt == PT2E:
        pytest.importorskip("executorch")
    spec, example = _example(spec, structure, shape)
    first, second = _twice(passes, spec, example, lambda: Target(load_backend("onnxruntime"), QuantFormat(fmt)))
    assert first.model.SerializeToString() == second.model.SerializeToString()
    assert (first.input_q, first.output_q, first.ops) == (second.input_q, second.output_q, second.ops)
    x = np.full(shape, 0.25, np.float32)
    assert all(np.array_equal(a, b) for a, b in zip(first.reference(x), second.reference(x)))


def test_the_quantized_program_is_lowered_once(passes, monkeypatch):
    pytest.importorskip("executorch")
    spec, example = _example(operators.CONV2D, operators.CONV_POOL[0], (1, 1, 16, 16))
    quantize_again = quantize.pt2e_quantize
    made = []
    for n in (1, 2):
        cache = passes(n)
        if n > 1:  # the converted module is the program's reference: it is made in every run
            monkeypatch.setattr(quantize, "pt2e_quantize", quantize_again)
        target = Target(load_backend("executorch"), QuantFormat(PT2E, 0))
        try:
            made.append(QuantHarness(Harness()).artifact(spec, target, example))
        finally:
            target.backend.close()
    assert made[0].program == made[1].program and cache.hits == 1
    assert (made[0].input_q, made[0].output_q, made[0].ops) == (made[1].input_q, made[1].output_q, made[1].ops)


def test_no_cache_makes_everything_afresh_and_keeps_nothing(tmp_path, monkeypatch):
    before = artifact_cache.active()
    artifact_cache.configure(tmp_path / "artifacts", enabled=False)  # what --no-cache sets
    probes, real = [], onnx_export._probe
    monkeypatch.setattr(onnx_export, "_probe", lambda target: probes.append(target) or real(target))
    spec, example = _example(operators.CONV2D, operators.CONV_POOL[0], (1, 1, 16, 16))
    try:
        for _ in range(2):
            support_verdict.cache_clear()
            assert support_verdict(ExportTarget("torchscript", 17)) is None
            target = Target(load_backend("onnxruntime"), QuantFormat(ORT_STATIC))
            assert QuantHarness(Harness()).artifact(spec, target, example).model is not None
    finally:
        support_verdict.cache_clear()
        artifact_cache.restore(before)
    assert len(probes) == 2 and not (tmp_path / "artifacts").exists()
