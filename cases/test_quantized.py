"""Operators and models quantized to int8 the way phones run them, on every runtime that takes
the format, judged in quantization steps of each output's scale (``conformance.engine.qcompare``):
every element within ``qtol`` steps (default 1) and no bias. ``--quantized`` runs them all; the
default run runs a small share (``conformance.pytest.quantized``)."""

import pytest

from conformance.byom.register import calibration_recipes, quantized_cases
from conformance.draw.model_cases import MODELS
from conformance.draw.operators import OPERATORS
from conformance.pytest import quantized
from conformance.pytest.plugin import activate

CASES = OPERATORS + MODELS


def pytest_generate_tests(metafunc):
    if "qtarget" not in metafunc.fixturenames:
        return
    session = activate(metafunc.config)
    everything = metafunc.config.getoption("quantized")
    kind = "model" if metafunc.function.__name__ == "test_quantized_model" else "operator"
    pairs = [(case, target) for case in CASES + quantized_cases() if case.kind == kind
             for target in quantized.quant_targets(session.backends)
             if quantized.selected(case.name, target, everything or case in quantized_cases())]
    metafunc.parametrize("case,qtarget", pairs, ids=[f"{t.id}-{c.name}" for c, t in pairs])


@pytest.mark.parity
def test_quantized_operator(case, qtarget, parity, request):
    everything = request.config.getoption("quantized")
    parity.quantized(case, qtarget, max_examples=quantized.examples("operator", qtarget, everything),
                     pooled=quantized.pooled(qtarget))


@pytest.mark.parity
def test_quantized_model(case, qtarget, parity, request):
    everything = request.config.getoption("quantized")
    parity.quantized(case, qtarget, max_examples=quantized.examples("model", qtarget, everything),
                     pooled=quantized.pooled(qtarget), recipes=calibration_recipes(case.name))
