"""What the HTML and Markdown reports show, from their one view model: the one-screen failure
message, "of peak" never above 100%, machine and commit on parity-only runs, histogram titles
that do not run into each other, and the same facts in both formats."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_report import BENCH, PARITY, bench, record  # noqa: E402

from conformance.report import build  # noqa: E402
from conformance.report.parity_rows import parity_rows  # noqa: E402
from conformance.report.plots import histogram_figure  # noqa: E402
from conformance.report.view import one_screen, render_html, render_markdown  # noqa: E402

ONE_SCREEN = ("relu on onnxruntime (torchscript exporter, opset 17): parity fails at decimal=3\n"
              "  output (1, 4): max abs error 0.004 at [0, 1]")
PYTEST_TAIL = ("    def test_operator(case, target, data):\n>       check(parity, case, target, data)\n"
               + "".join(f"E   {line}\n" for line in ONE_SCREEN.splitlines())
               + "E   Falsifying example: test_operator(\nE       case=Case(relu),\nE   )\n"
               "E   Draw 1 (structure): ReluStructure()\n")


def test_failure_details_show_the_one_screen_message():
    assert one_screen(ONE_SCREEN) == ONE_SCREEN  # a record's message is shown as it is
    assert one_screen(PYTEST_TAIL) == ONE_SCREEN  # pytest's tail: the assertion's lines only
    failing = {**record(case="relu", max_abs=4e-3, outcome="failed"), "message": PYTEST_TAIL}
    html = render_html(build.build_report(parity={"meta": {"decimal": 3}, "cases": [failing]}, bench=None))
    details = html.split('<pre class="message">')[1].split("</pre>")[0]
    assert "parity fails at decimal=3" in details and "Draw 1" not in details and "def test_operator" not in details


def test_share_of_peak_is_never_above_100_percent():
    hot = {**BENCH, "benchmarks": [bench("onnxruntime", 0.050, gflop=6.0), bench("pytorch", 0.080)],
           "conformance_peak": {"gflops": 100.0, "how": "test", "threads": 2}}  # 120 GFLOP/s vs a 100 peak
    report = build.build_report(parity=PARITY, bench=hot)
    for text in (render_markdown(report), render_html(report)):
        assert "120%" not in text and "100%*" in text and "above the peak" in text


def test_parity_only_report_names_machine_and_commit():
    report = build.build_report(parity=PARITY, bench=None)
    assert report["meta"]["machine"] and report["meta"]["commit"]  # this checkout is a git repository
    assert "machine ?" not in render_html(report) and f"commit {report['meta']['commit']}" in render_html(report)


def test_html_and_markdown_tell_the_same_story(tmp_path):
    first = build.build_report(parity=PARITY, bench=BENCH, reports=tmp_path)
    build.save_run(tmp_path, "base", first, PARITY, BENCH)
    narrower = {**PARITY, "cases": PARITY["cases"][:3]}
    slow = {**BENCH, "benchmarks": [bench("onnxruntime", 0.080), bench("pytorch", 0.080)]}
    report = build.build_report(parity=narrower, bench=slow, reports=tmp_path, baseline="base")
    html, markdown = render_html(report), render_markdown(report)
    facts = [report["verdict"]["headline"], *report["verdict"]["missing"], *report["verdict"]["failed"],
             report["verdict"]["slower"][0]["why"], "Baseline cases not run"]
    for fact in facts:
        assert fact in markdown and fact.replace("'", "&#39;") in html, fact


def test_histogram_titles_do_not_overlap():
    long_names = ["conformance.faults.DepthToSpaceDCR", "conformance.faults.DropConvBias",
                  "mypackage.backends.vendor_npu:VendorNpuBackendWithALongName"]
    rows = parity_rows({"meta": {"decimal": 3}, "cases": [
        record(case=case, backend=backend, max_abs=4e-3, outcome="failed")
        for case, backend in itertools.product(["pixel_shuffle", "conv2d_batchnorm"], long_names)]})
    fig = histogram_figure(rows)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # the titles are left-aligned: matplotlib keeps those in Axes._left_title, not Axes.title
    boxes = [ax._left_title.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
    assert len(boxes) == 6
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    panels = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
    for title, panel in zip(boxes, panels):
        assert title.x1 <= panel.x1 + 0.35 * panel.width  # stays over its own panel, not the next one


def test_the_cat_pipeline_is_named_by_its_runtime_alone_everywhere(tmp_path):
    """The cat pipeline runs no exporter at an opset (its record: exporter "-", opset 0): the matrix
    once labelled its column "onnxruntime · - · opset 0" and a failing panel's title "- 0"."""
    def pipeline(backend, outcome, max_abs):
        row = record(case="test_cat_pipeline", backend=backend, exporter="-", opset=0, max_abs=max_abs,
                     outcome=outcome, test="test_cat_pipeline")
        return {**row, "nodeid": f"cases/test_superres_images.py::test_cat_pipeline[{backend}]"}

    parity = {**PARITY, "cases": PARITY["cases"] + [pipeline("onnxruntime", "passed", 2e-4),
                                                    pipeline("tract", "failed", 4e-3)]}
    report = build.build_report(parity=parity, bench=BENCH, reports=tmp_path)
    html, markdown = render_html(report), render_markdown(report)
    header = next(line for line in markdown.splitlines() if line.startswith("| case |"))
    assert "| tract |" in header and "| onnxruntime |" in header, header
    for text in (html, markdown):
        assert "opset 0" not in text and "· -" not in text
    failing = [r for r in parity_rows(parity) if r["case"] == "test_cat_pipeline" and r["status"] == "fail"]
    title = histogram_figure(failing).axes[0]._left_title.get_text()
    assert title.startswith("test_cat_pipeline · tract\n"), title


def test_the_terminal_summary_names_a_failed_pipeline_by_its_runtime_alone():
    from conformance.engine.record import Recorder
    from conformance.pytest.session import failed_line

    recorder = Recorder()
    pipeline = recorder.open("cases/test_superres_images.py::test_cat_pipeline[tract]", case="test_cat_pipeline",
                             kind="pipeline", backend="tract", exporter="-", opset=0)
    pipeline.summary = "2 levels off"
    operator = recorder.open("cases/test_operators.py::test_operator[tract-torchscript-opset17-relu]", case="relu",
                             kind="operator", backend="tract", exporter="torchscript", opset=17)
    operator.summary = "max abs error 0.01"
    assert failed_line(pipeline) == "FAILED test_cat_pipeline on tract: 2 levels off"
    assert failed_line(operator) == "FAILED relu on tract [torchscript opset 17]: max abs error 0.01"
