"""Self-contained reproducers in the ONNX test-data layout.

``DIR/model.onnx`` plus ``DIR/test_data_set_0/input_N.pb`` and ``output_N.pb`` (TensorProto,
the PyTorch reference outputs): the layout ONNX's own backend tests and ``onnx_test_runner``
read, so any tool can replay a failure.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import numpy_helper


def reproducer_dir(root: Path, nodeid: str) -> Path:
    """A readable folder name for a test id (``cases/test_operators.py::test_operator[conv2d-...]``)."""
    name = nodeid.split("::")[-1]
    return root / re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def write_reproducer(directory: Path, model: onnx.ModelProto, inputs: Sequence[np.ndarray],
                     outputs: Sequence[np.ndarray]) -> Path:
    """Write the reproducer atomically (a half-written folder is never left behind)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    data = tmp / "test_data_set_0"
    data.mkdir()
    onnx.save(model, str(tmp / "model.onnx"))
    names_in = [i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}]
    names_out = [o.name for o in model.graph.output]
    for i, array in enumerate(inputs):
        _save(data / f"input_{i}.pb", array, names_in[i] if i < len(names_in) else f"input_{i}")
    for i, array in enumerate(outputs):
        _save(data / f"output_{i}.pb", array, names_out[i] if i < len(names_out) else f"output_{i}")
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def _save(path: Path, array: np.ndarray, name: str) -> None:
    path.write_bytes(numpy_helper.from_array(np.asarray(array), name).SerializeToString())


def read_test_data(directory: Path) -> tuple[onnx.ModelProto, list[tuple[list[np.ndarray], list[np.ndarray]]]]:
    """Load ``model.onnx`` and every ``test_data_set_*`` (inputs, expected outputs) of a folder."""
    model = onnx.load(str(directory / "model.onnx"))
    sets = []
    for data in sorted(directory.glob("test_data_set_*")):
        def load(kind):
            files = sorted(data.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
            return [numpy_helper.to_array(onnx.load_tensor(str(f))) for f in files]

        sets.append((load("input"), load("output")))
    return model, sets
