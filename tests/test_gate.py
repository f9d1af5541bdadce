"""``conformance gate``: the pytest command it builds, its verdict and exit status, and a narrow
end-to-end run of a broken backend before and after its failure is listed as expected."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.commands import gate

REPO = Path(__file__).resolve().parent.parent
NARROW = ["--exporter", "torchscript", "--opset", "17", "--hypothesis-profile", "ci", "-p", "no:cacheprovider"]


def args(**kw) -> argparse.Namespace:
    base = dict(baseline=None, save_baseline=None, max_slowdown=10.0, reports="reports", expected_failures=None,
                cases="cases", pytest_args=[])
    return argparse.Namespace(**{**base, **kw})


def test_pytest_command_adds_junit_reports_and_cases():
    cmd = gate.pytest_command(args(baseline="rel", pytest_args=["-k", "conv"]))
    assert cmd[1:5] == ["-m", "pytest", "-p", gate.PLUGIN]
    assert "--junitxml=reports/junit.xml" in cmd and "--baseline=rel" in cmd and "--max-slowdown=10.0" in cmd
    assert "--benchmark-storage=reports/benchmarks" in cmd
    assert cmd[-3:] == ["-k", "conv", "cases"]
    named = gate.pytest_command(args(pytest_args=[str(REPO / "cases" / "test_operators.py")]))
    assert named[-1].endswith("test_operators.py")  # a path given: the gate does not add cases/


def test_cli_passes_arguments_after_double_dash():
    from conformance.cli import build_parser

    parsed = build_parser().parse_args(["gate", "--baseline", "b", "--", "--device", "emu:5555", "-k", "conv"])
    assert parsed.baseline == "b" and parsed.pytest_args == ["--device", "emu:5555", "-k", "conv"]


def report(ok=True, failed=(), slower=()):
    return {"verdict": {"ok": ok, "failed": list(failed), "slower": list(slower), "stale": 1,
                        "headline": "3 parity cases (...)"}}


def test_verdict_exit_status(capsys, tmp_path):
    assert gate.verdict(0, report(), tmp_path) == 0
    assert "conformance gate: PASS — 3 parity cases" in capsys.readouterr().out
    slow = {"fullname": "t[ort]", "change": 0.5, "threshold": 0.12, "why": "+50% CPU time per call; U test p=0.001",
            "basis": "CPU time per call"}  # as reports saved before rules had names
    assert gate.verdict(1, report(False, ["t[relu]"], [slow]), tmp_path) == 1
    out = capsys.readouterr().out
    assert "FAILED t[relu]" in out and "1 stale" in out
    assert "SLOWER       t[ort] [cpu rule]: +50% CPU time per call; U test p=0.001 (limit 12%)" in out
    assert gate.verdict(1, report(), tmp_path) == 1  # e.g. a latency case errored
    assert gate.verdict(4, None, tmp_path) == 4
    assert "usage error" in capsys.readouterr().out


def run_gate(tmp_path, *extra, gate_args=(), select="tutorial and dynamic"):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "conformance", "gate", "--reports", str(tmp_path / "reports"), *gate_args,
           "--", *NARROW, "-k", select, *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_gate_fails_on_parity_then_passes_when_listed(tmp_path):
    # The tutorial-input case is one fixed example: a failure there costs no hypothesis shrinking.
    backend = "--backend=tests.slow_backend:OffBackend"
    done = run_gate(tmp_path, backend)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "conformance gate: FAIL" in done.stdout and "FAILED cases/test_models.py::test_superres_tutorial" in done.stdout
    reproducers = list((tmp_path / "reports" / "reproducers").iterdir())
    assert reproducers and (reproducers[0] / "model.onnx").is_file()
    assert "reproducer" in (tmp_path / "reports" / "summary.md").read_text()

    listed = tmp_path / "expected.toml"
    listed.write_text('[[xfail]]\ncase = "superres"\nbackend = "tests.slow_backend.OffBackend"\n'
                      'test = "*tutorial*"\nreason = "adds 2e-3 on purpose"\n')
    done = run_gate(tmp_path, backend, gate_args=["--expected-failures", str(listed)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "conformance gate: PASS — 1 parity cases (0 passed, 0 failed, 1 expected failures" in done.stdout
    assert "[100%]" in done.stdout  # pytest's progress came through
    for name in ("report.html", "summary.md", "junit.xml", "report.json"):
        assert (tmp_path / "reports" / name).is_file(), name
    assert 'type="pytest.xfail" message="expected failure: adds 2e-3 on purpose"' in \
        (tmp_path / "reports" / "junit.xml").read_text()


@pytest.mark.slow
def test_unknown_baseline_is_one_line_before_anything_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "conformance", "gate", "--reports", str(tmp_path), "--baseline", "nosuch",
           "--", *NARROW, "-k", "relu"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == gate.EXIT_USAGE
    assert done.stdout == "" and done.stderr.count("\n") == 1  # pytest never started
    assert "no baseline 'nosuch'" in done.stderr and "--save-baseline" in done.stderr


def test_gate_fails_naming_baseline_cases_this_run_did_not_run(tmp_path):
    saved = run_gate(tmp_path, gate_args=["--save-baseline", "wide"], select="relu")
    assert saved.returncode == 0, saved.stdout[-3000:]
    wide = json.loads((tmp_path / "reports" / "report.json").read_text())
    ort_format = sorted(r["nodeid"] for r in wide["parity"] if "onnxruntime-ort" in r["nodeid"])
    assert ort_format, "the baseline should hold ORT-format cases"

    narrow = run_gate(tmp_path, gate_args=["--baseline", "wide"], select="relu and not onnxruntime-ort")
    assert narrow.returncode == 1, narrow.stdout[-3000:]
    assert f"{len(ort_format)} baseline cases not run" in narrow.stdout
    for nodeid in ort_format:
        assert f"MISSING {nodeid}" in narrow.stdout
    junit = (tmp_path / "reports" / "junit.xml").read_text()
    assert f'failures="{len(ort_format)}"' in junit and "in the baseline, not run" in junit
    for name in ("summary.md", "report.html"):
        text = (tmp_path / "reports" / name).read_text()
        assert "Conformance: FAIL" in text and all(n in text for n in ort_format), name

    allowed = run_gate(tmp_path, gate_args=["--baseline", "wide", "--allow-missing"],
                       select="relu and not onnxruntime-ort")
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert "conformance gate: PASS" in allowed.stdout and "allowed by --allow-missing" in allowed.stdout
    assert 'failures="0"' in (tmp_path / "reports" / "junit.xml").read_text()
