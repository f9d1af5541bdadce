"""``pytest --model=...`` and ``--register=...`` end to end, serial and under pytest-xdist.

Each run is a fresh interpreter in the repository, as a user runs the suite; the ``ci``
hypothesis profile makes runs derandomized (so serial and parallel runs draw the same examples)
and keeps them out of the example database.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from byom_helpers import divide_by_zero, matmul, save
from conftest import run_suite, verdicts

REPO = Path(__file__).resolve().parent.parent


def run_pytest(*args, reports: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
    """(process, verdict per test id) of a nested pytest run."""
    proc = run_suite(*args, "-rA", reports=reports, timeout=timeout)
    return proc, verdicts(proc)


def parity_cases(reports: Path) -> dict:
    return {c["nodeid"]: c for c in json.loads((reports / "parity.json").read_text())["cases"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return [save(matmul(), folder / "good.onnx", external=True), save(divide_by_zero(), folder / "div0.onnx")]


MODEL_ARGS = ["cases/test_onnx_models.py", "--backend", "onnxruntime", "--backend", "conformance.testing.misbehaving:Hang",
              "--backend", "conformance.testing.misbehaving:Wrong", "--case-timeout", "3"]


def _model_args(models):
    return MODEL_ARGS + [a for m in models for a in ("--model", m)]


@pytest.fixture(scope="module")
def serial(models, tmp_path_factory):
    reports = tmp_path_factory.mktemp("serial")
    proc, verdicts = run_pytest(*_model_args(models), reports=reports)
    return proc, verdicts, reports


def _id(model, backend):
    return f"cases/test_onnx_models.py::test_onnx_model[{model}-{backend}]"


def test_each_model_and_backend_gets_a_clean_verdict(serial):
    proc, verdicts, reports = serial
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    assert verdicts[_id("good", "onnxruntime")] == "PASSED"
    hang, wrong = "conformance.testing.misbehaving.Hang", "conformance.testing.misbehaving.Wrong"
    assert verdicts[_id("good", hang)] == "FAILED" and "run did not return within 3 s" in out
    assert verdicts[_id("good", wrong)] == "FAILED" and "parity fails at decimal=3 on output 'y'" in out
    for backend in ("onnxruntime", hang, wrong):
        assert verdicts[_id("div0", backend)] == "FAILED"
    assert "no example could be compared" in out
    cases = parity_cases(reports)
    assert cases[_id("good", "onnxruntime")]["outcome"] == "passed"
    assert cases[_id("good", "onnxruntime")]["kind"] == "onnx-file"
    assert cases[_id("good", wrong)]["failures"] >= 1
    assert (reports / "reproducers" / f"test_onnx_model_good-{wrong}" / "model.onnx").is_file()


@pytest.mark.slow
def test_xdist_gives_the_serial_verdicts_and_a_full_report(serial, models, tmp_path):
    _, serial_verdicts, serial_reports = serial
    proc, verdicts = run_pytest(*_model_args(models), "-n", "2", reports=tmp_path)
    assert verdicts == serial_verdicts, proc.stdout[-3000:]
    merged, alone = parity_cases(tmp_path), parity_cases(serial_reports)
    assert merged.keys() == alone.keys()
    for nodeid, case in alone.items():
        assert (merged[nodeid]["outcome"], merged[nodeid]["examples"]) == (case["outcome"], case["examples"])


@pytest.mark.slow
def test_a_missing_or_unreadable_model_is_one_usage_line(models, tmp_path):
    """Before: a missing --model failed as one test case per backend ("no such file")."""
    unreadable = tmp_path / "locked.onnx"
    unreadable.write_bytes(models[0].read_bytes())
    unreadable.chmod(0)
    if os.access(unreadable, os.R_OK) and Path("/proc/self/mem").exists():
        unreadable = Path("/proc/self/mem")  # running as root, every file is readable: not this one (EIO)
    for path, reason in ((tmp_path / "missing.onnx", "no such file"), (tmp_path, "not a file"),
                         (unreadable, "cannot read")):
        if reason == "cannot read" and unreadable.name != "mem" and os.access(unreadable, os.R_OK):
            continue  # running as root without /proc
        proc, _ = run_pytest("--model", path, "--backend", "onnxruntime", reports=tmp_path / "reports")
        assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ERROR: --model {path}: {reason}"), proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr


def test_bad_dim_option_is_a_usage_error():
    """Checked in process: a subprocess costs seconds of torch import for one line of output."""
    from types import SimpleNamespace

    from conformance.byom.model_file import ModelError
    from conformance.pytest.model_files_session import ByomSession

    options = {"model": [], "dim": ["N"], "reference": "onnxruntime", "case_timeout": 1.0, "max_elements": 10}
    with pytest.raises(ModelError, match="expected NAME=MIN:MAX"):
        ByomSession.from_config(SimpleNamespace(getoption=options.__getitem__))


REGISTRATION = '''
import torch
import conformance


class TinyMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x).softmax(-1)


conformance.register_module("tiny_mlp", TinyMLP, torch.zeros(2, 6), input_shapes=[(1, 6), (2, 6), (5, 6)])
'''


@pytest.mark.slow
def test_registered_module_runs_like_a_built_in_model(tmp_path):
    (tmp_path / "my_models.py").write_text(REGISTRATION)
    # Without --model the model-file case is deselected (not skipped), so only tiny_mlp runs.
    proc, verdicts = run_pytest("cases/test_models.py", "cases/test_onnx_models.py", "-k",
                                "(test_model and tiny_mlp) or test_onnx_model", "--register",
                                tmp_path / "my_models.py", "--exporter", "torchscript,dynamo", "--opset", "17",
                                "--backend", "onnxruntime", reports=tmp_path / "reports")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert sorted(verdicts.values()) == ["PASSED", "PASSED"], verdicts  # no SKIPPED test_onnx_model
    cases = parity_cases(tmp_path / "reports")
    assert {c["exporter"] for c in cases.values() if c["case"] == "tiny_mlp"} == {"torchscript", "dynamo"}


@pytest.mark.slow
def test_a_reference_also_under_test_is_refused_before_anything_runs(models, tmp_path):
    """Before: `pytest --model` compared ONNX Runtime with itself by default and always passed."""
    proc, _ = run_pytest("--model", models[0], "--backend", "onnxruntime", "--reference", "onnxruntime",
                         reports=tmp_path / "reports")
    assert proc.returncode == 4, proc.stdout[-2000:]
    assert "--reference onnxruntime is also under test" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc, verdicts = run_pytest("--model", models[0], "--backend", "onnxruntime", reports=tmp_path / "reports")
    assert proc.returncode == 0 and list(verdicts.values()) == ["PASSED"], proc.stdout[-2000:]


BATCH_ONE = '''
import torch
import conformance


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3))).softmax(-1)


# The most natural example: batch 1, on the axis the drawn shapes make dynamic.
conformance.register_module("tinynet", TinyNet, torch.zeros(1, 3, 16, 16), input_shapes=[(1, 3, 16, 16), (3, 3, 16, 16)])
'''


@pytest.mark.slow
def test_a_batch_one_example_works_on_every_registered_module_path(tmp_path):
    """Before: ExecuTorch refused the export ("example input 0 has size 1 on dynamic axis 0"):
    torch.export specializes sizes of 1. Now the export uses 2 there and batch 1 is still drawn."""
    for package in ("executorch", "litert_torch", "ai_edge_litert"):
        pytest.importorskip(package, reason="the executorch and litert extras are not installed")
    (tmp_path / "my_models.py").write_text(BATCH_ONE)
    proc, verdicts = run_pytest("cases/test_models.py", "-k", "tinynet", "--register", tmp_path / "my_models.py",
                                "--backend", "executorch", "--backend", "litert", "--backend", "onnxruntime",
                                "--exporter", "torchscript,dynamo", "--opset", "18", reports=tmp_path / "reports",
                                timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert sorted(verdicts.values()) == ["PASSED"] * 4, verdicts
    assert {k.split("[")[1].split("-tinynet")[0] for k in verdicts} == {
        "executorch-pte", "litert-tflite", "onnxruntime-torchscript-opset18", "onnxruntime-dynamo-opset18"}
