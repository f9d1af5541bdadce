"""How a latency verdict reaches a reader: the gate's lines and exit status, the report's word,
and the rule that judged each latency row (with why) in HTML and Markdown, for the paired rule,
the inconclusive verdict, and a baseline saved by the previous release."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_slowdown import BUSY, paired, without_new_fields  # noqa: E402

from conformance.commands import gate  # noqa: E402
from conformance.report import build, junit  # noqa: E402
from conformance.report.view import render_html, render_markdown  # noqa: E402

PARITY = {"meta": {"decimal": 3}, "cases": []}


def runs(tmp_path, base_bench, bench):
    base = {"benchmarks": base_bench}
    build.save_run(tmp_path, "base", build.build_report(parity=PARITY, bench=base, reports=tmp_path), PARITY, base)
    return build.build_report(parity=PARITY, bench={"benchmarks": bench}, reports=tmp_path, baseline="base")


def test_inconclusive_is_its_own_verdict_everywhere(tmp_path, capsys):
    report = runs(tmp_path, [paired(10, 20, seed=1)], [paired(10, 20, load=2.0, seed=7, gauges=BUSY, delay_share=0.9)])
    v = report["verdict"]
    assert v["word"] == "INCONCLUSIVE" and not v["ok"] and not v["slower"] and len(v["inconclusive"]) == 1
    assert "1 latency case inconclusive" in v["headline"] and "rerun on a quieter machine" in v["hint"]
    why = v["inconclusive"][0]["why"]
    for text in (render_markdown(report), render_html(report)):
        assert "Conformance: INCONCLUSIVE" in text and "Inconclusive (not a pass)" in text
        assert "paired rule" in text and why.replace("'", "&#39;") in text
    xml = tmp_path / "junit.xml"
    xml.write_text('<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="1">'
                   '<testcase classname="c" name="t[ort]" time="0.1"/></testsuite></testsuites>')
    assert junit.add_verdict(xml, report)
    assert 'errors="1"' in xml.read_text() and '<error message="latency inconclusive against' in xml.read_text()
    assert gate.verdict(1, report, tmp_path) == gate.EXIT_INCONCLUSIVE  # pytest exits 1, the gate 3
    out = capsys.readouterr().out
    assert "conformance gate: INCONCLUSIVE" in out and "INCONCLUSIVE c.py::t[ort] [paired rule]: " in out
    assert gate.verdict(2, report, tmp_path) == gate.EXIT_FAIL  # pytest itself failed: not merely inconclusive


def test_slower_on_a_quiet_machine_fails_and_names_its_rule(tmp_path, capsys):
    report = runs(tmp_path, [paired(10, 20, seed=1)], [paired(12.5, 20, seed=11)])
    assert report["verdict"]["word"] == "FAIL" and len(report["verdict"]["slower"]) == 1
    assert gate.verdict(1, report, tmp_path) == gate.EXIT_FAIL
    assert "SLOWER       c.py::t[ort] [paired rule]: +" in capsys.readouterr().out
    markdown = render_markdown(report)
    assert "latency `c.py::t[ort]`: **slower**, judged by the paired rule" in markdown


def test_unchanged_passes_and_still_says_how_it_was_judged(tmp_path, capsys):
    report = runs(tmp_path, [paired(10, 20, seed=1)], [paired(10, 20, seed=2)])
    assert report["verdict"]["word"] == "PASS" and report["verdict"]["ok"]
    assert gate.verdict(0, report, tmp_path) == gate.EXIT_OK
    assert "same         c.py::t[ort] [paired rule]: " in capsys.readouterr().out
    assert "judged by the paired rule" in render_markdown(report)


def test_a_previous_release_baseline_is_judged_by_its_rule_and_says_so(tmp_path, capsys):
    report = runs(tmp_path, [without_new_fields(paired(10, 20, seed=1))], [paired(10, 20, seed=2, cpu_ms=18 * 1.3)])
    change = report["comparison"]["latency"][0]
    assert change["rule"] == "cpu" and change["verdict"] == "slower"
    assert "the baseline has no interleaved reference" in change["why"]
    assert "judged by the cpu rule" in render_markdown(report) and "cpu rule" in render_html(report)
    gate.verdict(1, report, tmp_path)
    assert "SLOWER       c.py::t[ort] [cpu rule]" in capsys.readouterr().out


def test_a_report_saved_before_rules_had_names_still_renders(tmp_path):
    report = runs(tmp_path, [paired(10, 20, seed=1)], [paired(10, 20, seed=2)])
    for change in report["comparison"]["latency"]:
        change.pop("rule")
        change["basis"] = "CPU time per call"
    report["verdict"].pop("word")
    report["verdict"].pop("inconclusive")
    assert "judged by the cpu rule" in render_markdown(report) and "Conformance: PASS" in render_html(report)


def test_a_run_on_a_busy_machine_warns_that_it_makes_a_poor_baseline(tmp_path):
    report = runs(tmp_path, [paired(10, 20, seed=1)], [paired(10, 20, seed=2, gauges=BUSY, delay_share=1.5)])
    assert "c.py::t[ort] met a busy machine (other processes used 55% of the cores" in report["verdict"]["hint"]
    assert "saved as a baseline, this run would judge nothing" in render_markdown(report)
    calm = runs(tmp_path, [paired(10, 20, seed=1)], [paired(10, 20, seed=2)])
    assert "busy machine" not in calm["verdict"]["hint"]
