"""int8 cases in the reports: their own matrix columns, cells in steps, a summary line."""

import numpy as np

from conformance.engine.qcompare import qcompare
from conformance.engine.record import CaseRecord
from conformance.pytest.quantized import quantized_summary
from conformance.report.parity_rows import cell_text, matrix, parity_rows


def _record(nodeid, exporter, opset, worst, outcome="passed", case="conv2d"):
    rec = CaseRecord(nodeid, case, "operator", "onnxruntime", exporter, opset, outcome=outcome, examples=3, worst=worst)
    return rec.to_json()


def test_int8_cases_get_their_own_columns_with_cells_in_steps():
    e = np.arange(-8, 8, dtype=np.float32) * 0.01
    one_off = e.copy()
    one_off[3] += np.float32(0.01)
    records = [
        _record("cases/test_operators.py::test_operator[onnxruntime-torchscript-opset17-conv2d]", "torchscript", 17,
                None),
        _record("cases/test_quantized.py::test_quantized_operator[onnxruntime-int8-ort-opset21-conv2d]", "int8-ort",
                21, qcompare(one_off, e, 0.01, 0)),
        _record("cases/test_quantized.py::test_quantized_operator[onnxruntime-int8-pt2e-opset21-conv2d]", "int8-pt2e",
                21, qcompare(e + np.float32(0.03), e, 0.01, 0), outcome="failed"),
    ]
    rows = parity_rows({"meta": {"decimal": 3}, "cases": records})
    labels, columns, cells = matrix(rows)
    assert labels == ["conv2d"]  # one row per case: int8 is a column, not another row
    assert "onnxruntime · int8 ort · opset 21" in columns and "onnxruntime · int8 pt2e · opset 21" in columns
    assert cell_text(cells[("conv2d", "onnxruntime · int8 ort · opset 21")]) == "✓ 1/1 step"
    assert cell_text(cells[("conv2d", "onnxruntime · int8 pt2e · opset 21")]) == "✗ 3/1 step"


def test_summary_line_gives_the_largest_error_in_steps_and_the_lowest_sqnr():
    e = np.linspace(-1, 1, 64, dtype=np.float32)
    worst = qcompare(e, e, 0.01, 0, float_output=e * 1.001)
    line = quantized_summary([CaseRecord("n", "conv2d", "operator", "onnxruntime", "int8-ort", 21, worst=worst),
                              CaseRecord("m", "relu", "operator", "onnxruntime", "torchscript", 17)])
    assert line and line[0].startswith("int8: 1 cases judged in quantization steps; largest error 0 steps")
    assert "lowest SQNR 60.0 dB vs float32" in line[0]
