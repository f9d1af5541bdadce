"""The reference evaluator's earlier public name (``--reference conformance.byom.onnx_reference``);
it lives in ``conformance.backends.onnx_reference``."""
from conformance.backends.onnx_reference import *  # noqa: F401,F403
from conformance.backends.onnx_reference import prepare  # noqa: F401
