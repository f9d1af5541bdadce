"""Which runtimes a run tests when ``--backend`` is not given."""

import importlib.util

import pytest

from conformance.pytest import plugin


class _Config:
    def __init__(self, **options):
        self.options = {"backend": None, "model": [], **options}

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def test_executorch_is_a_default_runtime_where_installed():
    pytest.importorskip("executorch")
    backends, notes = plugin.default_backends(_Config(), [])
    assert backends == ["onnxruntime", "onnxruntime-ort", "executorch"] and notes == []


def test_without_executorch_the_header_says_why_it_is_left_out(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    backends, notes = plugin.default_backends(_Config(), [])
    assert backends == ["onnxruntime", "onnxruntime-ort"]
    assert len(notes) == 1 and "executorch is not installed" in notes[0] and "conformance[executorch]" in notes[0]


@pytest.mark.parametrize("options, devices", [({"model": ["m.onnx"]}, []), ({}, ["emulator-5554"])],
                         ids=["model-files", "device"])
def test_model_files_and_device_runs_keep_to_the_onnx_pair(options, devices):
    backends, notes = plugin.default_backends(_Config(**options), devices)
    assert backends == ["onnxruntime", "onnxruntime-ort"] and notes == []


def test_named_backends_are_taken_as_given():
    backends, notes = plugin.default_backends(_Config(backend=["tract,onnxruntime"], model=["m.onnx"]), ["x"])
    assert backends == ["tract", "onnxruntime"] and notes == []
