"""``conformance report`` pairs ``parity.json`` with the benchmark JSON of the same run (both
carry the run's id), never merely with the newest one."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_report import BENCH, PARITY, bench  # noqa: E402

from conformance.cli import main  # noqa: E402


def write_bench(folder: Path, name: str, run_id: str, ort_median: float, mtime: float) -> None:
    path = folder / "benchmarks" / "Linux" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**BENCH, "conformance_run_id": run_id,
            "benchmarks": [bench("onnxruntime", ort_median), bench("pytorch", 0.080)]}
    path.write_text(json.dumps(data))
    os.utime(path, (mtime, mtime))


def test_report_pairs_parity_with_its_own_runs_benchmark(tmp_path, capsys):
    (tmp_path / "parity.json").write_text(json.dumps({**PARITY, "meta": {**PARITY["meta"], "run_id": "run-a"}}))
    write_bench(tmp_path, "0001_a.json", "run-a", 0.050, mtime=1_000_000)
    write_bench(tmp_path, "0002_b.json", "run-b", 0.070, mtime=2_000_000)  # newer, but another run's
    main(["report", "--reports", str(tmp_path)])
    report = json.loads((tmp_path / "report.json").read_text())
    ort = next(r for r in report["latency"] if r["backend"] == "onnxruntime")
    assert ort["median"] == 0.050 and report["meta"]["run_id"] == "run-a"
    assert capsys.readouterr().err == ""


def test_no_benchmark_of_that_run_leaves_latency_out_and_says_so(tmp_path, capsys):
    (tmp_path / "parity.json").write_text(json.dumps({**PARITY, "meta": {**PARITY["meta"], "run_id": "run-c"}}))
    write_bench(tmp_path, "0001_a.json", "run-a", 0.050, mtime=1_000_000)
    main(["report", "--reports", str(tmp_path)])
    assert json.loads((tmp_path / "report.json").read_text())["latency"] == []
    assert "no benchmark JSON of run run-c" in capsys.readouterr().err
