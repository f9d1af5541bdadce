"""Bad command-line input is a usage error naming the culprit, never a traceback."""

import pytest

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("args, message", [
    (("--backend", "no.such.module"), "--backend=no.such.module: no module named 'no'"),
    (("--backend", "json"), "--backend=json: 'json' has no prepare()"),
    (("--backend", "conformance.faults:Nope"), "module 'conformance.faults' has no 'Nope'"),
    (("--exporter", "tflite"), "--exporter 'tflite' is unknown; valid: torchscript, dynamo"),
    (("--opset", "99"), "--opset '99' is not a valid opset; valid: 7-"),
    (("--opset", "x"), "--opset 'x' is not a valid opset"),
    (("--ort-provider", "NoSuchExecutionProvider"), "is not in this build; available: "),
    (("--decimal", "40"), "--decimal 40 is out of range"),
])
def test_usage_error(pytester, args, message):
    result = pytester.runpytest_inprocess("-p", "conformance.plugin", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err, err
    assert "Traceback" not in err + result.stdout.str()
