"""One core, one record: errors end a case at once and keep their cause, a hung runtime fails
its case within --case-timeout, and every output (terminal, parity.json, report.json, a report
rebuilt from the saved files, JUnit, xdist) gives the same counts."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO

NARROW = ("--exporter", "torchscript", "--opset", "17")
RELU = ("cases/test_operators.py", "-m", "parity", "-k", "relu and not prelu and not special")


def _records(reports) -> dict[str, dict]:
    data = json.loads((reports / "parity.json").read_text())
    assert data["schema_version"] == 2
    return {r["nodeid"]: r for r in data["cases"]}


@pytest.mark.slow
def test_raising_runtime_is_recorded_with_type_message_and_example(suite, tmp_path):
    result = suite(*RELU, "--backend", "tests.slow_backend:KeyErrorBackend", "--backend", "onnxruntime", *NARROW)
    assert result.returncode == 1, result.stdout[-2000:]
    records = _records(tmp_path / "reports")
    failed = [r for r in records.values() if r["outcome"] == "failed"]
    assert len(failed) == 1 and failed[0]["backend"] == "tests.slow_backend.KeyErrorBackend"
    rec = failed[0]
    assert rec["error_type"] == "KeyError" and "conv1.weight" in rec["error"]
    assert rec["example"].startswith("Example(") and rec["examples"] == 1 and rec["shrink_steps"] == 0
    assert "KeyError" in rec["summary"]
    assert "KeyError: 'conv1.weight'" in result.stdout  # the terminal says the type too
    assert [r["outcome"] for r in records.values() if r["backend"] == "onnxruntime"] == ["passed"]


@pytest.mark.slow
def test_hanging_runtime_fails_its_case_within_the_case_timeout(suite, tmp_path):
    result = suite(*RELU, "--backend", "tests.slow_backend:HangingBackend", "--backend", "onnxruntime",
                   "--case-timeout", "20", *NARROW, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out[-2000:]
    assert "did not return within 20 s (--case-timeout)" in out
    records = _records(tmp_path / "reports")
    hung = next(r for r in records.values() if "Hanging" in r["backend"])
    assert hung["outcome"] == "failed" and hung["error_type"] == "CaseTimeout"
    assert hung["seconds"] < 60  # the case ended; the run went on to the next backend
    assert [r["outcome"] for r in records.values() if r["backend"] == "onnxruntime"] == ["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_every_output_gives_the_same_counts(suite, tmp_path, workers):
    """A failing, a raising and a passing backend; then the report rebuilt from saved files."""
    reports = tmp_path / "reports"
    result = suite("cases/test_operators.py", "-m", "parity", "-k", "(relu or pixel_shuffle) and not special",
                   "--backend", "conformance.faults:OffBy2e3", "--backend", "conformance.faults:Raises",
                   "--backend", "onnxruntime", "--junitxml", str(tmp_path / "junit.xml"), *NARROW, *workers)
    assert result.returncode == 1, result.stdout[-3000:]
    records = _records(reports)
    failed = sorted(n for n, r in records.items() if r["outcome"] == "failed")
    passed = sorted(n for n, r in records.items() if r["outcome"] == "passed")
    assert len(failed) == 6 and len(passed) == 3, (failed, passed)
    terminal = sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAILED cases/"))
    assert terminal == failed
    live = json.loads((reports / "report.json").read_text())
    assert sorted(r["nodeid"] for r in live["parity"] if r["status"] == "fail") == failed
    assert f"{len(records)} parity cases (3 passed, 6 failed" in live["verdict"]["headline"]
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    suite_el = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert int(suite_el.get("failures")) + int(suite_el.get("errors")) == 6
    examples = sum(r["examples"] for r in records.values())
    assert f"{examples} examples in {len(records)} parity cases" in result.stdout
    rebuilt = subprocess.run([sys.executable, "-m", "conformance", "report", "--reports", str(reports)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 1, rebuilt.stdout + rebuilt.stderr
    again = json.loads((reports / "report.json").read_text())
    assert again["verdict"]["headline"] == live["verdict"]["headline"]
    assert again["verdict"]["failed"] == live["verdict"]["failed"]


@pytest.mark.slow
def test_a_runtime_that_raises_on_a_model_leaves_a_reproducer(suite, tmp_path):
    result = suite(*RELU, "--backend", "conformance.faults:Raises", *NARROW)
    assert result.returncode == 1
    rec = next(iter(_records(tmp_path / "reports").values()))
    assert rec["reproducer"] and (Path(rec["reproducer"]) / "model.onnx").is_file()
    assert (Path(rec["reproducer"]) / "test_data_set_0" / "input_0.pb").is_file()
    assert f"reproducer: {rec['reproducer']}" in result.stdout


@pytest.mark.slow
def test_a_runtime_holding_the_gil_fails_its_case_and_the_run_goes_on_under_xdist(suite, tmp_path):
    result = suite(*RELU, "--backend", "tests.slow_backend:HoldsTheGil", "--backend", "onnxruntime",
                   "--case-timeout", "20", "-n", "1", *NARROW, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    records = _records(tmp_path / "reports")
    held = next(r for r in records.values() if "HoldsTheGil" in r["backend"])
    assert held["outcome"] == "failed" and held["error_type"] == "ProcessEnded", held
    assert [r["outcome"] for r in records.values() if r["backend"] == "onnxruntime"] == ["passed"]
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert "1 failed" in report["verdict"]["headline"]


@pytest.mark.slow
def test_a_runtime_that_crashes_the_process_leaves_its_example_in_the_record(suite, tmp_path):
    result = suite(*RELU, "--backend", "tests.slow_backend:Segfaults", "--backend", "onnxruntime",
                   "-n", "1", *NARROW, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    records = _records(tmp_path / "reports")
    crashed = next(r for r in records.values() if "Segfaults" in r["backend"])
    assert crashed["outcome"] == "failed" and crashed["error_type"] == "ProcessEnded", crashed
    assert crashed["example"].startswith("Example(structure=") and "InputRecipe(shape=" in crashed["example"]
    assert "drawn example: Example(structure=" in crashed["message"]
    assert [r["outcome"] for r in records.values() if r["backend"] == "onnxruntime"] == ["passed"]
    assert not list((tmp_path / "reports" / "inflight").glob("*"))  # taken, and the passing case's cleared


@pytest.mark.slow
@pytest.mark.parametrize("fault, select, layer", [
    ("SuperresConv2Off", "test_superres_tutorial_input and dynamic", "conv2 (Conv /conv2/Conv)"),
    ("SRResNetBlockConv2Off", "test_model and srresnet and not special", "blocks.0.conv2"),
])
def test_a_failing_model_names_its_first_diverging_layer(suite, tmp_path, fault, select, layer):
    """A fault seeded after one node: the message names that layer (not a later one), the
    record keeps the per-layer profile and its plot sits beside the reproducer."""
    result = suite("cases/test_models.py", "-m", "parity", "-k", select, "--backend", f"tests.slow_backend:{fault}",
                   *NARROW)
    assert result.returncode == 1, result.stdout[-3000:]
    assert f"first diverging layer: {layer}" in result.stdout, result.stdout[-3000:]
    rec = next(r for r in _records(tmp_path / "reports").values() if r["outcome"] == "failed")
    where = rec["localization"]
    assert where["first_diverging"].startswith(layer.split(" ")[0])
    over = [x["layer"] for x in where["layers"] if x["verdict"] == "wrong alone"]
    assert over and over[0] == where["first_diverging"]
    assert Path(where["plot"]).is_file() and Path(where["plot"]).parent == Path(rec["reproducer"])


@pytest.mark.slow
def test_hypothesis_statistics_show_the_parity_cases(suite, tmp_path):
    """hypothesis runs inside the case check, where its own plugin does not look: the suite's
    section gives each case's figures instead of an empty statistics section."""
    result = suite(*RELU, "--backend", "onnxruntime", *NARROW, "--hypothesis-show-statistics")
    assert result.returncode == 0, result.stdout[-2000:]
    records = _records(tmp_path / "reports")
    line = next(line for line in result.stdout.splitlines() if "test_operator[" in line and " examples (" in line)
    (nodeid, record), = records.items()
    assert nodeid in line and f"{record['examples']} examples (0 failing, 0 left out)" in line and record["examples"] > 1
