"""The ``--weights`` pytest option (conformance.pytest.weights) through pytester."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest
import torch

from conformance.models.superres import SuperResolutionNet
from conformance.models.weights import SHIPPED

pytest_plugins = ["pytester"]

# The inner test prints a fingerprint of the weights it got: the sum of conv1's weights.
PRINTS_WEIGHTS = """
def test_weights(superres_weights):
    print("conv1 sum", round(float(superres_weights["conv1.weight"].sum()), 4))
"""


def fingerprint(state: dict) -> str:
    return f"conv1 sum {round(float(state['conv1.weight'].sum()), 4)}"


@pytest.fixture
def run(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # URL downloads cache here
    pytester.makepyfile(test_w=PRINTS_WEIGHTS)

    def run(*args):
        return pytester.runpytest_inprocess("-p", "conformance.pytest.weights",
                                            "-p", "no:cacheprovider", "-s", *args)

    return run


@pytest.fixture
def checkpoint(tmp_path):
    """A SuperResolutionNet(3) checkpoint other than the shipped one, named with its hash."""
    torch.manual_seed(1)
    state = SuperResolutionNet(3).state_dict()
    tmp = tmp_path / "ckpt.pth"
    torch.save(state, tmp)
    path = tmp_path / f"sr-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:10]}.pth"
    tmp.rename(path)
    return path, state


def test_default_is_the_shipped_checkpoint(run):
    result = run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{fingerprint(torch.load(SHIPPED, weights_only=True))}*"])


def test_a_path(run, checkpoint):
    result = run(f"--weights={checkpoint[0]}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{fingerprint(checkpoint[1])}*"])


def test_an_http_url_on_loopback(run, checkpoint):
    handler = functools.partial(_QuietHandler, directory=str(checkpoint[0].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{checkpoint[0].name}"
        result = run("--weights", url)
    finally:
        httpd.shutdown()
        httpd.server_close()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{fingerprint(checkpoint[1])}*"])


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.pth", "--weights: weights file not found: *missing.pth"),
    (lambda d: _write(d / "junk.pth", b"not a checkpoint"), "--weights: weights file *junk.pth is not a "
                                                              "readable PyTorch checkpoint*"),
    (lambda d: _save(d / "x2.pth", SuperResolutionNet(2).state_dict()),
     "--weights: *is not a checkpoint for SuperResolutionNet(upscale_factor=3)*conv4.bias*"),
])
def test_bad_weights_are_one_usage_error(run, tmp_path, make, message):
    result = run(f"--weights={make(tmp_path)}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _save(path, state):
    torch.save(state, path)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass
