"""Every bad input to ``conformance check`` gives a clear message and exit code 2 (or 1 for a
backend that fails), never a traceback or a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from byom_helpers import dangling_input, divide_by_zero, matmul, relu, save, sequence_input
from conformance.testing import misbehaving as testing
from conformance.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def check(tmp_path, capsys):
    """Run ``conformance check`` in process: (exit code, stdout + stderr)."""
    def run(*args):
        code = main(["check", *map(str, args), "--examples", "3", "--seed", "0",
                     "--reports", str(tmp_path / "reports")])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


@pytest.fixture(autouse=True)
def _release_hung_threads():
    testing.RELEASE.clear()
    yield
    testing.RELEASE.set()


def test_missing_file(check, tmp_path):
    code, out = check(tmp_path / "nope.onnx")
    assert code == 2 and "nope.onnx: no such file" in out


def test_not_onnx(check, tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n")
    code, out = check(path)
    assert code == 2 and "not an ONNX model" in out


def test_empty_file(check, tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    code, out = check(tmp_path / "empty.onnx")
    assert code == 2 and "empty file" in out


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_protobuf(check, tmp_path, keep):
    data = matmul().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    code, out = check(path)
    assert code == 2 and ("truncated" in out or "onnx.checker" in out), out


def test_fails_checker(check, tmp_path):
    code, out = check(save(dangling_input(), tmp_path / "bad.onnx"))
    assert code == 2 and "fails onnx.checker" in out and "nowhere" in out


def test_opset_a_backend_does_not_support(check, tmp_path):
    path = save(relu(opset=17), tmp_path / "relu17.onnx")
    code, out = check(path, "--backend", "onnxruntime", "--backend", "conformance.testing.misbehaving:Opset11")
    assert code == 1
    assert "PASS onnxruntime" in out
    assert "FAIL conformance.testing.misbehaving.Opset11" in out and "ai.onnx 17" in out and "unsupported opset" in out


def test_opset_the_reference_does_not_support(check, tmp_path):
    path = save(relu(opset=30), tmp_path / "relu30.onnx")
    code, out = check(path, "--reference", "onnxruntime", "--backend", "conformance.backends.onnx_reference")
    assert code == 2 and "the reference cannot prepare the model" in out and "ai.onnx 30" in out
    code, out = check(path)  # the default reference, onnx's evaluator, takes it
    assert code == 1 and "FAIL onnxruntime" in out and "ai.onnx 30" in out


def test_missing_external_data(check, tmp_path):
    path = save(matmul(), tmp_path / "ext.onnx", external=True)
    assert check(path)[0] == 0  # works with its data next to it
    data = tmp_path / "ext.onnx.data"
    data.write_bytes(data.read_bytes()[:10])
    code, out = check(path)
    assert code == 2 and "truncated copy" in out
    data.unlink()
    code, out = check(path)
    assert code == 2 and "missing external data file 'ext.onnx.data'" in out


@pytest.mark.parametrize("spec, message", [
    ("M=1:3", "no symbolic dimension 'M'; its symbolic dimensions: N"),
    ("x[1]=2:3", "that dimension is static (8)"),
    ("N=3:1", "need 1 <= MIN <= MAX"),
    ("N", "expected NAME=MIN:MAX"),
])
def test_dim_spec_that_does_not_match(check, tmp_path, spec, message):
    code, out = check(save(matmul(), tmp_path / "m.onnx"), "--dim", spec)
    assert code == 2 and message in out, out


def test_dim_spec_used(check, tmp_path):
    code, out = check(save(matmul(), tmp_path / "m.onnx"), "--dim", "N=5:6")
    assert code == 0 and "dims N=5:6" in out


def test_unsupported_input_kind(check, tmp_path):
    code, out = check(save(sequence_input(), tmp_path / "seq.onnx"))
    assert code == 2 and "input 'xs' is a sequence_type" in out


def test_nonfinite_reference(check, tmp_path):
    code, out = check(save(divide_by_zero(), tmp_path / "div0.onnx"))
    assert code == 2 and "NaN/Inf" in out and "no example could be compared" in out


@pytest.mark.parametrize("hanging, step", [("Hang", "run"), ("HangPrepare", "prepare")])
def test_hanging_backend_is_cut_off(check, tmp_path, hanging, step):
    start = time.monotonic()
    code, out = check(save(relu(), tmp_path / "r.onnx"), "--backend", f"conformance.testing.misbehaving:{hanging}",
                      "--backend", "onnxruntime", "--case-timeout", "0.5")
    assert time.monotonic() - start < 10
    assert code == 1 and f"{step} did not return within 0.5 s (--case-timeout)" in out
    assert "PASS onnxruntime" in out  # the next backend still runs


def test_huge_declared_shapes_refused(check, tmp_path):
    code, out = check(save(relu(shape=(100000, 100000)), tmp_path / "huge.onnx"))
    assert code == 2 and "over the --max-elements bound" in out
    code, out = check(save(matmul(), tmp_path / "m.onnx"), "--dim", "N=1:100000000")
    assert code == 2 and "--dim NAME=MIN:MAX" in out
    code, out = check(tmp_path / "m.onnx", "--max-elements", "16")
    assert code == 2 and "16" in out


@pytest.mark.parametrize("args, message", [
    (["--case-timeout", "0"], "must be positive"),
    (["--max-elements", "0"], "at least 1"),
    (["--backend", "no.such.module"], "no module named"),
])
def test_bad_options(check, tmp_path, args, message):
    code, out = check(save(relu(), tmp_path / "r.onnx"), *args)
    assert code == 2 and message in out


def test_real_command_line_has_no_traceback(tmp_path):
    """The installed entry point, as a user runs it: message on stderr, exit 2, no traceback."""
    (tmp_path / "junk.onnx").write_bytes(os.urandom(256))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "conformance", "check", str(tmp_path / "junk.onnx")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("conformance check: error:") and "Traceback" not in proc.stderr
