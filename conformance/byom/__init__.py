"""Bring your own model: check any ONNX file, or register any PyTorch module as a case.

* ``conformance check MODEL.onnx`` and ``pytest --model=MODEL.onnx`` (``conformance.byom.model_check``)
  read the model's inputs, draw inputs with hypothesis, run ONNX Runtime CPU (or ``--reference``)
  as the reference and every backend under test, and assert decimal-N parity.
* ``conformance.register_module(...)`` (``conformance.byom.register``) turns a PyTorch module
  into a model case exported with both exporters, run by ``cases/test_models.py``.
"""
