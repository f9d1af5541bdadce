"""conformance: cross-backend numerical conformance for PyTorch models.

PyTorch eager is the reference; every runtime under test runs the model in the format it takes
(an ONNX export, the ORT format, an ExecuTorch ``.pte``, a LiteRT ``.tflite``, on the host or on
a device over ADB) and must agree to ``decimal`` places (``numpy.testing.assert_almost_equal``
semantics).
"""

__version__ = "0.1.0"


def register_module(name, factory, example_input, **options):
    """Register a PyTorch module as a model case (see ``conformance.byom.register``)."""
    from conformance.byom.register import register_module as _register

    return _register(name, factory, example_input, **options)
