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
