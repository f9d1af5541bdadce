"""What hypothesis draws for int8 cases, QDQ graph reading, and qtol entries in the data file."""

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from onnx import TensorProto, helper, numpy_helper

from conformance.draw.quantization import (QuantInputRecipe, QuantRecipe, half_steps, past_range,
                                           quant_inputs, quant_recipes)
from conformance.draw.strategies import InputRecipe
from conformance.formats.quantize import QdqReference, onnx_qparams, require_quantized
from conformance.formats.onnx_export import UnsupportedExport
from conformance.report import expected


def test_half_steps_sit_exactly_between_two_steps_inside_the_range():
    x = np.random.default_rng(0).uniform(-3, 3, size=1000).astype(np.float32)
    scale, zp = 0.0137, 11
    h = half_steps(x, scale, zp, -128, 127)
    ratio = h.astype(np.float64) / scale
    assert np.allclose(ratio - np.floor(ratio), 0.5, atol=1e-4)
    q = np.floor(ratio) + zp
    assert q.min() >= -128 and q.max() <= 126


def test_past_range_values_saturate_on_their_own_side():
    x = np.array([0.5, -0.5, 0.0], np.float32)
    scale, zp = 0.01, -28
    p = past_range(x, scale, zp, -128, 127, np.random.default_rng(1))
    q = np.round(p / scale) + zp
    assert q[0] > 127 * 1.4 and q[1] < -128 * 1.4 and q[2] > 127


def test_recipes_make_their_calibration_and_edges():
    recipe = QuantRecipe(per_channel=True, count=3, range=0.5, distribution="uniform", seed=4)
    arrays = recipe.calibration((1, 2, 3, 3), "pixel")
    assert len(arrays) == 3 and all(a.dtype == np.float32 and a.max() <= 127.5 for a in arrays)
    base = InputRecipe((1, 2, 3, 3), "unit", "uniform", 5, 0)
    assert np.array_equal(QuantInputRecipe(base, "half-steps", 1.0).materialize(), base.materialize())  # no scale yet
    moved = QuantInputRecipe(base, "half-steps", 1.0).materialize(0.01, 0)
    assert np.allclose((moved / 0.01) % 1, 0.5, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(recipe=quant_recipes(), inputs=quant_inputs((1, 3, 4, 5)))
def test_drawn_recipes_are_valid(recipe, inputs):
    assert 1 <= recipe.count <= 16 and recipe.range > 0
    x = inputs.materialize(0.02, 5)
    assert x.shape == (1, 3, 4, 5) and x.dtype == np.float32 and np.isfinite(x).all()


def _qdq_model(with_d2s=True):
    """input -> Q -> DQ -> Conv(1x1, 4 ch) -> Q -> DQ -> DepthToSpace -> output."""
    init = [numpy_helper.from_array(np.array(0.02, np.float32), "s_in"),
            numpy_helper.from_array(np.array(-3, np.int8), "zp_in"),
            numpy_helper.from_array(np.ones((4, 1, 1, 1), np.float32), "w"),
            numpy_helper.from_array(np.array(0.05, np.float32), "s_out"),
            numpy_helper.from_array(np.array(7, np.int8), "zp_out")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "s_in", "zp_in"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s_in", "zp_in"], ["dq"]),
             helper.make_node("Conv", ["dq", "w"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "s_out", "zp_out"], ["q2"]),
             helper.make_node("DequantizeLinear", ["q2", "s_out", "zp_out"], ["dq2" if with_d2s else "output"])]
    if with_d2s:
        nodes.append(helper.make_node("DepthToSpace", ["dq2"], ["output"], blocksize=2, mode="CRD"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_qparams_of_a_qdq_graph_through_data_movement():
    input_q, outputs = onnx_qparams(_qdq_model())
    assert (input_q.scale, input_q.zero_point, input_q.qmin, input_q.qmax) == (pytest.approx(0.02), -3, -128, 127)
    assert (outputs[0].scale, outputs[0].zero_point) == (pytest.approx(0.05), 7)


def test_a_float_output_is_refused_with_the_reason():
    with pytest.raises(UnsupportedExport, match="leaves this model's output in float"):
        require_quantized([None], "XNNPACKQuantizer", ["relu"])


def test_reference_evaluator_runs_the_qdq_file_in_float32_and_float64():
    ref = QdqReference(_qdq_model())
    x = np.array([[[[0.01, 0.03, -0.5, 1.0]]]], np.float32).reshape(1, 1, 2, 2)
    y32, y64 = ref.run(x)[0], ref.run64(x)[0]
    assert y32.shape == (1, 1, 4, 4) and y64.dtype == np.float64
    assert np.allclose(y32, y64, atol=1e-6)
    assert np.allclose(((y32 / 0.05) + 7) % 1, 0, atol=1e-4) or np.allclose(((y32 / 0.05) + 7) % 1, 1, atol=1e-4)


def test_qtol_entries_load_and_match_int8_cases(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[[tolerance]]\ncase = "conv2d"\nbackend = "executorch"\nexporter = "int8-*"\nqtol = 2\n'
                    'reason = "XNNPACK requantizes conv outputs in another order"\n')
    exp = expected.load(path)
    row = {"case": "conv2d", "backend": "executorch", "exporter": "int8-pt2e", "opset": 0, "nodeid": "n"}
    assert exp.qtol_for(row) == 2 and exp.decimal_for(row) is None
    assert exp.qtol_for({**row, "backend": "onnxruntime"}) is None
    path.write_text('[[tolerance]]\ncase = "conv2d"\nqtol = 0\nreason = "r"\n')
    with pytest.raises(expected.ExpectedError, match="'qtol' must be an integer 1-127"):
        expected.load(path)
