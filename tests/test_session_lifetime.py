"""A case's prepared sessions live as long as the case.

A runtime keeps the working memory of the largest input it ran (ONNX Runtime's arena, ncnn's
and MNN's pools). Kept for the whole run, the sessions of eight runtimes grew one random-profile
run past 24 GB once its camera-frame cases had run, and the kernel killed it. The case check
drops them when the case ends, passed or failed; the exported artifacts stay for later cases.
"""

from __future__ import annotations

import pytest

from conformance.backends import load_backend
from conformance.draw.operators import CONV2D
from conformance.engine.harness import Harness, Target
from conformance.engine.record import Recorder
from conformance.formats.onnx_export import ExportTarget
from conformance.pytest.casecheck import CaseCheck


def _check(tmp_path, backend: str):
    harness = Harness()
    held: list[int] = []
    session = harness._session

    def counting(*args, **kwargs):
        found = session(*args, **kwargs)
        held.append(len(harness._sessions))
        return found

    harness._session = counting
    record = Recorder().open("t", case="conv2d", kind="operator", backend=backend, exporter="torchscript", opset=17)
    check = CaseCheck(harness, record, case_timeout=None, feeds=("inputs",), reproducers=tmp_path)
    target = Target(load_backend(backend), ExportTarget("torchscript", 17))
    return harness, held, check, target


def test_a_passing_cases_sessions_are_dropped_and_its_artifacts_kept(tmp_path):
    harness, held, check, target = _check(tmp_path, "onnxruntime")
    check.drawn(CONV2D, target, max_examples=4)
    assert held and max(held) >= 1  # the case ran on prepared sessions
    assert harness._sessions == {}
    assert harness.exports.exports >= 1 and harness._fed_models  # kept for later cases


def test_a_failing_cases_sessions_are_dropped_too(tmp_path):
    harness, held, check, target = _check(tmp_path, "conformance.faults:OffBy2e3")
    with pytest.raises(pytest.fail.Exception, match="decimal=3"):
        check.drawn(CONV2D, target, max_examples=4)
    assert held and harness._sessions == {}
