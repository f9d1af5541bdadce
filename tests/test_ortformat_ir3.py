"""The ORT-format backend on an IR-3 model that lists its initializers as graph inputs (onnx's
own ``light_bvlc_alexnet``): the conversion used to turn three of them into required inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from conformance.backends.onnxrt import OnnxRuntimeBackend
from conformance.backends.ortformat import OrtFormatBackend, constant_initializers

ALEXNET = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_bvlc_alexnet.onnx"


@pytest.mark.skipif(not ALEXNET.is_file(), reason="this onnx build ships no light models")
def test_ir3_model_runs_in_ort_format_with_its_one_input():
    model = onnx.load(str(ALEXNET))
    assert model.ir_version == 3 and len(model.graph.input) == 18  # 1 input + 17 initializers
    backend = OrtFormatBackend()
    try:
        session = backend.prepare(model)
        x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
        got = session.run([x])[0]
    finally:
        backend.close()
    expected = OnnxRuntimeBackend().prepare(model).run([x])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_only_ir3_initializer_inputs_are_rewritten():
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[w])
    ir3 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=3)
    fixed = constant_initializers(ir3)
    assert [i.name for i in fixed.graph.input] == ["x"] and fixed.ir_version == 4
    assert [i.name for i in ir3.graph.input] == ["x", "w"]  # the caller's model is untouched
    ir7 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=7)
    assert constant_initializers(ir7) is ir7  # overridable initializers from IR 4 on: left alone


def test_initializers_that_became_inputs_are_named_with_the_cause():
    from types import SimpleNamespace

    from conformance.backends.base import BackendError
    from conformance.backends.ortformat import _check_inputs

    model = onnx.load(str(ALEXNET)) if ALEXNET.is_file() else pytest.skip("no light models")
    session = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name=n) for n in ("data_0", "conv4_b_0__SHAPE")])
    with pytest.raises(BackendError, match=r"turned initializer\(s\) conv4_b_0__SHAPE into required inputs "
                                           r"\(the model, IR version 3, also lists its initializers"):
        _check_inputs(model, session, "onnxruntime-ort")
