"""The defaults of the bring-your-own-model options, apart from the modules that use them (which
import onnx): the pytest plugin names them in its help at every pytest start."""

#: Range of a symbolic dimension nobody gave a ``--dim`` for.
DEFAULT_DIM_RANGE = (1, 4)
#: Largest number of elements all inputs of one example may hold together (``--max-elements``).
DEFAULT_MAX_ELEMENTS = 1 << 24
#: The reference of `conformance check` and `pytest --model`: ONNX's own evaluator, never a
#: runtime under test.
DEFAULT_REFERENCE = "conformance.backends.onnx_reference"
