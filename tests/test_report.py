"""The report library on small synthetic JSON: rows, matrix, latency, expectations, baselines,
and the files it writes."""

from __future__ import annotations

import json

import pytest

from conformance.engine.compare import HISTOGRAM_EDGES, compare
from conformance.report import baseline, build, expected
from conformance.report.latency_rows import format_seconds, latency_rows
from conformance.report.parity_rows import cell_text, matrix, parity_rows


def record(case="conv2d", backend="onnxruntime", exporter="torchscript", opset=17, max_abs=1.5e-4,
           outcome="passed", kind="operator", test="test_operator"):
    ok = max_abs < 1.5e-3
    return {"nodeid": f"cases/test_x.py::{test}[{backend}-{exporter}-opset{opset}-{case}]", "case": case,
            "kind": kind, "backend": backend, "exporter": exporter, "opset": opset, "examples": 10,
            "failures": 0 if ok else 1, "outcome": outcome, "message": "",
            "worst": {"ok": ok, "decimal": 3, "max_abs": max_abs, "max_rel": 1e-3, "ulp": 12, "worst_index": [0, 1],
                      "margin": max_abs / 1.5e-3, "oracle": None, "shape_error": None,
                      "histogram": None if ok else compare([1.0 + max_abs, 1.0], [1.0, 1.0]).histogram}}


def bench(backend, median, iqr=0.0005, group="superres", gflop=6.0):
    return {"group": group, "name": f"test_lat[{backend}]", "fullname": f"cases/test_latency.py::test_lat[{backend}]",
            "params": {"latency_runner": backend}, "param": backend, "extra_info": {"backend": backend, "gflop": gflop},
            "stats": {"median": median, "iqr": iqr, "q1": median - iqr / 2, "q3": median + iqr / 2,
                      "min": median * 0.9, "max": median * 1.2, "ops": 1 / median, "rounds": 15}}


PARITY = {"meta": {"decimal": 3, "header": ["conformance: test"]},
          "cases": [record(), record(opset=9, max_abs=9e-4), record(case="relu", max_abs=4e-3, outcome="failed"),
                    record(case="superres", kind="model", test="test_model")]}
BENCH = {"conformance_peak": {"gflops": 100.0, "how": "test", "threads": 2},
         "benchmarks": [bench("onnxruntime", 0.050), bench("pytorch", 0.080)]}


def test_rows_matrix_and_cells():
    rows = parity_rows(PARITY)
    assert [r["case"] for r in rows][:3] == ["conv2d", "conv2d", "relu"]  # operators first, models last
    labels, columns, cells = matrix(rows)
    assert labels == ["conv2d", "relu", "superres"]
    assert columns == ["onnxruntime · torchscript · opset 9", "onnxruntime · torchscript · opset 17"]
    assert cell_text(cells[("conv2d", columns[1])]) == "✓ 10%"
    assert cell_text(cells[("conv2d", columns[0])]) == "✓ 60%"
    assert cell_text(cells[("relu", columns[1])]) == "✗ 2.7×"
    assert ("relu", columns[0]) not in cells


def test_outcome_without_record_still_gets_a_row():
    outcomes = {"cases/t.py::test_operator[x]": {"case": "conv2d", "backend": "broken", "exporter": "dynamo",
                                                 "opset": 18, "outcome": "failed", "xfail": None, "message": "boom"}}
    rows = parity_rows({"cases": []}, outcomes)
    assert rows[0]["status"] == "fail" and rows[0]["message"] == "boom" and cell_text(rows[0]) == "✗ error"


def test_latency_rows_ratio_and_peak_share():
    rows = latency_rows(BENCH)
    assert [r["backend"] for r in rows] == ["pytorch", "onnxruntime"]  # the reference leads its group
    ort = rows[1]
    assert ort["ratio"] == pytest.approx(0.050 / 0.080)
    assert ort["gflops"] == pytest.approx(120.0) and ort["peak_share"] == pytest.approx(1.2)
    assert format_seconds(0.0123) == "12.3 ms" and format_seconds(4.5e-6) == "4.5 µs"


def test_backend_from_backend_repr_param():
    b = bench("x", 0.01)
    b["extra_info"] = {}
    b["params"] = {"latency_runner": "<OnnxRuntimeBackend onnxruntime>"}
    assert latency_rows({"benchmarks": [b]})[0]["backend"] == "onnxruntime"


def write_toml(tmp_path, text):
    path = tmp_path / "expected.toml"
    path.write_text(text)
    return path


def test_expectations_match_and_stale(tmp_path):
    path = write_toml(tmp_path, '[[xfail]]\ncase = "relu"\nreason = "known"\n'
                                '[[xfail]]\ncase = "conv2d"\nopset = "9"\nreason = "was broken"\n'
                                '[[tolerance]]\ncase = "superres"\ndecimal = 2\nreason = "loose"\n')
    exp = expected.load(path)
    assert exp.xfail_for({"case": "relu", "backend": "b", "exporter": "e", "opset": 17, "nodeid": "n"}).reason == "known"
    assert exp.decimal_for({"case": "superres", "backend": "b", "exporter": "e", "opset": 17, "nodeid": "n"}) == 2
    stale = exp.stale(parity_rows(PARITY))
    assert [s["entry"].split(" (")[0] for s in stale] == ["expected.toml: xfail #2", "expected.toml: tolerance #1"]
    assert "all 1 matching cases pass" in stale[0]["why"]


def test_an_entry_may_list_its_globs(tmp_path):
    exp = expected.load(write_toml(tmp_path, '[[xfail]]\ncase = ["relu", "p*"]\nbackend = ["mnn", "tract*"]\n'
                                              'reason = "NaN becomes 0"\n'))
    row = {"case": "prelu", "backend": "tract-default", "exporter": "e", "opset": 17, "nodeid": "n"}
    assert exp.xfail_for(row).reason == "NaN becomes 0"
    assert exp.xfail_for({**row, "case": "conv2d"}) is None
    assert exp.xfail_for({**row, "backend": "openvino"}) is None
    assert "case=relu|p*, backend=mnn|tract*" in exp.xfails[0].describe()


@pytest.mark.parametrize("text, message", [
    ('[[xfail]]\ncase = []\nreason = "r"\n', "'case' must be a string or a non-empty list of globs"),
    ('[[xfail]]\ncase = "x"\nreason = ["r"]\n', "'reason' must be a string"),
    ('[[xfail]]\ncase = "x"\n', "'reason' is required"),
    ('[[xfail]]\ncase = "x"\nreason = "r"\ncolour = 1\n', "unknown key(s) ['colour']"),
    ('[[tolerance]]\ncase = "x"\nreason = "r"\n', "'decimal' must be an integer"),
    ('[[skip]]\ncase = "x"\n', "unknown table(s) ['skip']"),
    ('[[xfail]\n', "expected.toml"),
])
def test_bad_expectations_say_what_is_wrong(tmp_path, text, message):
    with pytest.raises(expected.ExpectedError) as info:
        expected.load(write_toml(tmp_path, text))
    assert message in str(info.value)


def test_checked_in_file_parses():
    assert expected.load().path is None or expected.load(expected.DEFAULT_PATH).xfails is not None


def test_baselines_are_numbered_never_overwritten(tmp_path):
    first = baseline.save_baseline(tmp_path, "release 1.2", {"report.json": "{}"})
    second = baseline.save_baseline(tmp_path, "release 1.2", {"report.json": '{"n": 2}'})
    assert (first.name, second.name) == ("0001_release-1.2", "0002_release-1.2")
    assert (first / "report.json").read_text() == "{}"
    assert baseline.find_baseline(tmp_path, "release 1.2") == second
    assert baseline.find_baseline(tmp_path, "1") == first
    assert not list(tmp_path.glob(".saving-*"))
    with pytest.raises(baseline.BaselineError, match="known: 0001_release-1.2, 0002_release-1.2"):
        baseline.find_baseline(tmp_path, "nope")


def test_slowdown_threshold_accounts_for_noise():
    quiet = latency_rows({"benchmarks": [bench("ort", 0.010, iqr=0.0001)]})
    noisy = latency_rows({"benchmarks": [bench("ort", 0.010, iqr=0.006)]})
    slower = latency_rows({"benchmarks": [bench("ort", 0.013, iqr=0.0001)]})
    assert baseline.compare_latency(quiet, slower, 0.10)[0]["verdict"] == "slower"  # +30%, quartiles apart
    assert baseline.compare_latency(quiet, slower, 0.40)[0]["verdict"] == "same"  # +30% is within 40%
    assert baseline.compare_latency(noisy, slower, 0.10)[0]["verdict"] == "same"  # quartiles overlap
    assert baseline.compare_latency(slower, quiet, 0.10)[0]["verdict"] == "faster"


def test_parity_comparison_newly_failing_and_grown():
    before = parity_rows({"cases": [record(max_abs=1e-4), record(case="relu", max_abs=1e-4)]})
    after = parity_rows({"cases": [record(max_abs=5e-4), record(case="relu", max_abs=4e-3, outcome="failed")]})
    diff = baseline.compare_parity(before, after)
    assert [x["nodeid"].split("-")[-1] for x in diff["newly_failing"]] == ["relu]"]
    assert [x["nodeid"].split("-")[-1] for x in diff["errors_grew"]] == ["conv2d]", "relu]"]


def test_build_and_write_report(tmp_path):
    first = build.build_report(parity=PARITY, bench=BENCH, reports=tmp_path)
    build.save_run(tmp_path, "base", first, PARITY, BENCH)
    slow = {**BENCH, "benchmarks": [bench("onnxruntime", 0.080), bench("pytorch", 0.080)]}
    report = build.build_report(parity=PARITY, bench=slow, reports=tmp_path, baseline="base")
    assert not report["verdict"]["ok"]
    assert [c["backend"] for c in report["verdict"]["slower"]] == ["onnxruntime"]
    paths = build.write_report(report, tmp_path)
    assert set(paths) >= {"json", "markdown", "html", "latency_bars", "latency_distributions", "error_histograms"}
    markdown = paths["markdown"].read_text()
    assert markdown.startswith("## ❌ Conformance: FAIL\n")
    assert "| relu | ✗ 2.7× | " not in markdown and "✗ 2.7×" in markdown and "+60% vs ref 🐢" in markdown
    html = paths["html"].read_text()
    assert "Conformance: FAIL" in html and html.count("data:image/png;base64") == 3
    assert json.loads(paths["json"].read_text())["verdict"]["failed"] == [PARITY["cases"][2]["nodeid"]]


def test_histogram_edges_cover_the_tolerance():
    result = compare([0.0, 2e-3, float("inf")], [0.0, 0.0, 0.0])
    assert len(result.histogram) == len(HISTOGRAM_EDGES) + 1
    assert result.histogram[0] == 1 and result.histogram[-1] == 1 and sum(result.histogram) == 3


def test_special_tests_get_their_own_row_and_self_checks_stay_out_of_the_matrix():
    from conformance.report.parity_rows import SUITE, suite_checks

    special = record(case="superres", kind="model", test="test_superres_tutorial_input")
    check = {**record(case="superres", kind="model", test="test_every_model_op_has_an_operator_case"),
             "backend": SUITE}
    rows = parity_rows({"cases": [record(case="superres", kind="model", test="test_model"), special, check]})
    labels, columns, _ = matrix(rows)
    assert labels == ["superres", "superres · tutorial input"] and len(columns) == 1
    assert suite_checks(rows) == "Suite self-checks (test_every_model_op_has_an_operator_case): 1 passed, 0 failed, 0 skipped"


def test_report_command_rebuilds_from_saved_files(tmp_path, capsys):
    from conformance.cli import main

    (tmp_path / "parity.json").write_text(json.dumps(PARITY))
    (tmp_path / "benchmarks" / "Linux").mkdir(parents=True)
    (tmp_path / "benchmarks" / "Linux" / "0001_x.json").write_text(json.dumps(BENCH))
    assert main(["report", "--reports", str(tmp_path), "--save-baseline", "first"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL — 4 parity cases (3 passed, 1 failed") and "2 latency cases" in out
    listed = tmp_path / "x.toml"
    listed.write_text('[[xfail]]\ncase = "relu"\nreason = "known"\n')
    assert main(["report", "--reports", str(tmp_path), "--expected-failures", str(listed), "--baseline", "first"]) == 0
    assert "1 expected failures" in capsys.readouterr().out
    assert main(["report", "--reports", str(tmp_path / "empty")]) == 2


def test_columns_without_an_opset_name_the_runtime_and_format_alone():
    """Before: the cat pipeline's column read "onnxruntime · - · opset 0"."""
    from conformance.report.parity_rows import column_label

    assert column_label({"backend": "onnxruntime", "exporter": "-", "opset": 0}) == "onnxruntime"
    assert column_label({"backend": "executorch", "exporter": "pte", "opset": 0}) == "executorch · pte"
    assert column_label({"backend": "ort", "exporter": "torchscript", "opset": 17}) == "ort · torchscript · opset 17"
