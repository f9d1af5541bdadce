"""The report plugin through pytester: expected failures become xfails, reports are written,
a baseline is saved and a slowdown against it fails the run. Synthetic tests, no models."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

PARITY_TESTS = """
import pytest

class Case:
    def __init__(self, name): self.name, self.kind = name, "operator"

@pytest.mark.parity
@pytest.mark.parametrize("case", [Case("relu"), Case("conv2d")], ids=lambda c: c.name)
def test_operator(case):
    assert case.name != "relu", "parity fails at decimal=3"
"""

LATENCY_TEST = """
import os, time, pytest

@pytest.mark.benchmark(group="sleepy")
def test_sleep(benchmark):
    benchmark.extra_info.update(backend="sleepy", gflop=0.001)
    benchmark.pedantic(time.sleep, args=(float(os.environ["SLEEP_S"]),), rounds=5, iterations=1)
"""


@pytest.fixture
def run(pytester, monkeypatch):
    """Run pytest in-process with the report plugin (and a cheap fake peak measurement)."""
    monkeypatch.setattr("conformance.report.latency_rows.measure_peak_gflops",
                        lambda: {"gflops": 10.0, "how": "fake", "threads": 1})

    def go(*args):
        return pytester.runpytest_inprocess("-p", "conformance.pytest.reports", "-p", "no:cacheprovider",
                                            f"--benchmark-storage={pytester.path / 'bench'}", *args)
    return go


def test_failure_is_reported_then_listed_as_expected(pytester, run):
    pytester.makepyfile(test_ops=PARITY_TESTS)
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAIL: 2 parity cases (1 passed, 1 failed, 0 expected failures*",
                                 "report: reports/report.html*"])
    report = json.loads((pytester.path / "reports" / "report.json").read_text())
    assert [(r["case"], r["status"]) for r in report["parity"]] == [("conv2d", "pass"), ("relu", "fail")]

    pytester.makefile(".toml", expected='[[xfail]]\ncase = "relu"\nreason = "known relu bug"\n'
                                        '[[xfail]]\ncase = "conv2d"\nreason = "fixed long ago"\n')
    result = run("--expected-failures=expected.toml")
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*STALE expected-failure entry expected.toml: xfail #2*all 1 matching cases pass",
                                 "PASS: 2 parity cases (1 passed, 0 failed, 1 expected failures*"])
    summary = (pytester.path / "reports" / "summary.md").read_text()
    assert "known relu bug" in summary and "Stale entries" in summary


def test_bad_expectations_file_is_a_usage_error(pytester, run):
    pytester.makepyfile(test_ops=PARITY_TESTS)
    pytester.makefile(".toml", expected='[[xfail]]\ncase = "relu"\n')
    result = run("--expected-failures=expected.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected.toml: xfail #1: 'reason' is required*"])


@pytest.mark.parametrize("option, message", [
    ("--baseline=release", "ERROR: no baseline 'release' in reports/baselines*save one with --save-baseline"),
    ("--hypothesis-profile=nosuch", "ERROR: --hypothesis-profile 'nosuch' is not registered; the suite's: dev, ci*"),
    ("-p conformance.plugin --reports=afile.txt", "ERROR: --reports afile.txt: is a file; give a folder*"),
])
def test_bad_report_option_is_one_line_before_anything_runs(pytester, run, option, message):
    pytester.makepyfile(test_ops=PARITY_TESTS.replace('"relu"', '"ok"'))
    pytester.makefile(".txt", afile="not a folder")
    result = run(*option.split())
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [result.stderr.lines[0]]
    result.stderr.fnmatch_lines([message])
    assert "test_ops.py" not in result.stdout.str() and "Traceback" not in result.stderr.str()


def test_saved_baseline_then_slowdown_fails(pytester, run, monkeypatch):
    pytester.makepyfile(test_lat=LATENCY_TEST)
    monkeypatch.setenv("SLEEP_S", "0.002")
    result = run("--benchmark-autosave", "--save-baseline=base")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["baseline saved: reports/baselines/0001_base"])
    assert json.loads((pytester.path / "reports/baselines/0001_base/benchmark.json").read_text())[
        "conformance_peak"]["gflops"] == 10.0

    monkeypatch.setenv("SLEEP_S", "0.02")
    result = run("--benchmark-autosave", "--baseline=base", "--max-slowdown=25", "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SLOWER test_lat.py::test_sleep: *", "FAIL: 1 latency cases; 1 slower than 0001_base by more than 25%"])
    html = (pytester.path / "reports" / "report.html").read_text()
    assert "0001_base" in html and 'class="slower"' in html
    junit = (pytester.path / "junit.xml").read_text()  # a CI system reading JUnit sees the same FAIL
    assert 'failures="1"' in junit and '<failure message="slower than the baseline: ' in junit


def test_a_failing_test_outside_the_parity_cases_fails_the_report_too(pytester, run):
    pytester.makepyfile(test_ops=PARITY_TESTS.replace('"relu"', '"ok"'),
                        test_other="def test_latency_setup_crashed():\n    raise RuntimeError('no session')\n")
    result = run()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAIL: *1 other test failed*"])
    report = json.loads((pytester.path / "reports" / "report.json").read_text())
    assert report["verdict"]["errors"] == ["test_other.py::test_latency_setup_crashed"]
    assert "test_latency_setup_crashed" in (pytester.path / "reports" / "summary.md").read_text()
