"""PyTorch's outputs are computed once per example and shared by the runtimes that draw it.

Every runtime of a (case, format) draws the same examples, and the plugin runs those tests one
after another, so ONNX Runtime and its ORT format are judged against one computed reference.
A shared reference must never hide a fault: a faulty runtime judged against the references a
correct one used still fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import conformance.engine.harness as harness_module
from conformance.backends import load_backend
from conformance.draw.operators import CONV2D
from conformance.engine.harness import Harness, Target
from conformance.engine.record import Recorder
from conformance.engine.references import References
from conformance.formats.onnx_export import ExportTarget
from conformance.pytest.casecheck import CaseCheck

REPO = Path(__file__).resolve().parents[1]


def test_a_reference_is_computed_once_and_held_read_only():
    refs, calls = References(), []

    def compute():
        calls.append(1)
        return [np.ones(4, np.float32)]

    first, second = refs.get("k", compute), refs.get("k", compute)
    assert len(calls) == 1 and first[0] is second[0] and (refs.hits, refs.misses) == (1, 1)
    with pytest.raises(ValueError, match="read-only"):
        first[0][0] = 2.0  # a caller writing into it would change the next runtime's verdict


def test_the_store_keeps_the_most_recent_outputs_within_its_bytes():
    refs = References(max_bytes=3 * 400)
    for key in "abcd":
        refs.get(key, lambda: [np.zeros(100, np.float32)])  # 400 bytes each
    assert len(refs) == 3
    recomputed = []
    refs.get("a", lambda: recomputed.append(1) or [np.zeros(100, np.float32)])
    assert recomputed == [1]  # the oldest was dropped
    big = refs.get("big", lambda: [np.zeros(1000, np.float32)])
    assert big[0].flags.writeable and "big" not in refs._held  # larger than the store: not kept
    assert refs.get(["unhashable"], lambda: [np.zeros(1)])[0].shape == (1,)


def _case(harness: Harness, tmp_path, backend: str) -> tuple[CaseCheck, Target]:
    nodeid = f"cases/test_operators.py::test_operator[{backend}-torchscript-opset17-conv2d]"
    record = Recorder().open(nodeid, case="conv2d", kind="operator", backend=backend, exporter="torchscript", opset=17)
    check = CaseCheck(harness, record, case_timeout=None, feeds=("initializers",), reproducers=tmp_path)
    return check, Target(load_backend(backend), ExportTarget("torchscript", 17))


@pytest.fixture
def counted(monkeypatch):
    """The number of PyTorch float32 reference computations so far (not the float64 oracle a
    case computes once, on its closest pass)."""
    calls = []
    real = harness_module.torch_run

    def counting(module, arrays, dtype=torch.float32):
        calls.extend([1] if dtype == torch.float32 else [])
        return real(module, arrays, dtype)

    monkeypatch.setattr(harness_module, "torch_run", counting)
    return calls


def test_the_ort_format_reuses_the_references_onnx_runtime_computed(tmp_path, counted):
    harness = Harness()
    check, target = _case(harness, tmp_path, "onnxruntime")
    check.drawn(CONV2D, target, max_examples=5)
    computed = len(counted)
    check, target = _case(harness, tmp_path, "onnxruntime-ort")
    check.drawn(CONV2D, target, max_examples=5)
    assert computed >= 5 and len(counted) == computed  # every reference of the second runtime was shared
    assert harness.references.hits == computed


def test_a_faulty_runtime_still_fails_against_shared_references(tmp_path, counted):
    harness = Harness()
    check, target = _case(harness, tmp_path, "onnxruntime")
    check.drawn(CONV2D, target, max_examples=5)
    check, target = _case(harness, tmp_path, "conformance.faults:OffBy2e3")
    with pytest.raises(pytest.fail.Exception, match="decimal=3"):
        check.drawn(CONV2D, target, max_examples=5)
    assert harness.references.hits >= 1


@pytest.mark.slow
def test_the_runtimes_of_a_case_and_format_are_collected_side_by_side():
    found = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                            "cases/test_models.py", "-m", "parity", "-k", "test_model and not special",
                            "--backend", "onnxruntime", "--backend", "onnxruntime-ort", "--exporter", "torchscript",
                            "--opset", "9,17"], cwd=REPO, capture_output=True, text=True, timeout=300)
    ids = [line.split("[", 1)[1].rstrip("]") for line in found.stdout.splitlines() if "::test_model[" in line]
    assert ids == [f"{runtime}-torchscript-opset{opset}-{model}" for opset in (9, 17) for model in ("superres", "srresnet")
                   for runtime in ("onnxruntime", "onnxruntime-ort")], found.stdout + found.stderr
