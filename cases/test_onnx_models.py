"""User ONNX files (``pytest --model=MODEL.onnx``) on every backend, against the reference.

Inputs are drawn from each model's declared inputs (``--dim`` bounds symbolic dimensions); see
``conformance.byom``. Without ``--model`` this case is deselected.
"""

import pytest


@pytest.mark.parity
def test_onnx_model(onnx_model, model_backend, byom, parity):
    byom.check(onnx_model, model_backend, parity)
