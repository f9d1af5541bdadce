"""conformance: cross-backend numerical conformance for PyTorch models exported to ONNX.

PyTorch eager is the reference; every backend under test runs the exported ONNX model and must
agree to ``decimal`` places (``numpy.testing.assert_almost_equal`` semantics).
"""

__version__ = "0.1.0"
