"""``conformance merge``: shards into one parity.json, report and verdict; refusals in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance.cli import main
from conformance.engine.record import CaseRecord
from conformance.report.merge import MergeError, load, merge
from tests.conftest import REPO, run_suite

VERSIONS = {"suite": "0.1.0", "torch": "2.13.0", "backend onnxruntime": {"onnxruntime": "1.32", "threads": "2"}}


def _machine(host="a", cpu_id="c1", flags=("avx2",)):
    return {"id": f"{host}/{cpu_id}", "host": host, "cpu": f"cpu {cpu_id}", "arch": "x86_64", "flags": list(flags),
            "cpu_id": cpu_id}


def _shard(tmp_path, name, index, count, cases, *, versions=VERSIONS, machine=None, plan="p1"):
    """A shard's reports folder with a parity.json of ``cases`` ((test, outcome) each)."""
    machine = machine or _machine()
    records = [CaseRecord(f"cases/t.py::test_operator[onnxruntime-torchscript-opset17-{c}]", c, "operator",
                          "onnxruntime", "torchscript", 17, outcome=o, examples=3, shard=f"{index}/{count}",
                          machine=machine["id"], run_id=name).to_json() for c, o in cases]
    meta = {"decimal": 3, "header": [f"h {name}"], "run_id": name, "versions": versions, "machine": machine,
            "shard": {"index": index, "count": count, "selection": "s1", "plan": plan}}
    folder = tmp_path / name
    folder.mkdir()
    (folder / "parity.json").write_text(json.dumps({"schema_version": 2, "meta": meta, "cases": records}))
    return folder


def test_three_shards_merge_into_every_case(tmp_path):
    dirs = [_shard(tmp_path, "s1", 1, 3, [("relu", "passed")]), _shard(tmp_path, "s2", 2, 3, [("conv", "failed")]),
            _shard(tmp_path, "s3", 3, 3, [("add", "skipped"), ("relu", "passed")])]  # relu twice, same result
    merged = merge([load(d) for d in dirs])
    assert sorted(c["case"] for c in merged["cases"]) == ["add", "conv", "relu"]
    assert merged["meta"]["shard"]["count"] == 1 and len(merged["meta"]["runs"]) == 3
    assert not merged["meta"]["cpus_differ"]


def test_merge_refuses_a_conflicting_duplicate(tmp_path, capsys):
    a = _shard(tmp_path, "s1", 1, 2, [("relu", "passed")])
    b = _shard(tmp_path, "s2", 2, 2, [("relu", "failed")])
    with pytest.raises(MergeError, match=r"test_operator\[.*relu\] is passed in .*s1 but failed in .*s2"):
        merge([load(a), load(b)])
    assert main(["merge", str(a), str(b), "--reports", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("conformance merge: refused:") and err.count("\n") == 1
    assert not (tmp_path / "out" / "parity.json").exists()


def test_merge_refuses_a_missing_shard(tmp_path, capsys):
    a = _shard(tmp_path, "s1", 1, 3, [("relu", "passed")])
    c = _shard(tmp_path, "s3", 3, 3, [("conv", "passed")])
    with pytest.raises(MergeError, match=r"shard 2/3 of selection s1 is missing \(given: 1/3, 3/3\)"):
        merge([load(a), load(c)])
    assert main(["merge", str(a), str(c), "--reports", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_merge_refuses_shards_dealt_from_different_plans(tmp_path):
    a = _shard(tmp_path, "s1", 1, 2, [("relu", "passed")], plan="p1")
    b = _shard(tmp_path, "s2", 2, 2, [("conv", "passed")], plan="p2")
    with pytest.raises(MergeError, match="different plans"):
        merge([load(a), load(b)])


def test_merge_refuses_other_versions_unless_accepted(tmp_path):
    newer = {**VERSIONS, "backend onnxruntime": {"onnxruntime": "1.33", "threads": "2"}}
    a = _shard(tmp_path, "s1", 1, 2, [("relu", "passed")])
    b = _shard(tmp_path, "s2", 2, 2, [("conv", "passed")], versions=newer)
    with pytest.raises(MergeError, match="backend onnxruntime is .*1.32.* but .*1.33.*--accept-versions"):
        merge([load(a), load(b)])
    assert len(merge([load(a), load(b)], accept_versions=True)["cases"]) == 2
    # more cores on one job is not another version
    c = _shard(tmp_path, "s3", 2, 2, [("conv", "passed")],
               versions={**VERSIONS, "backend onnxruntime": {"onnxruntime": "1.32", "threads": "16"}})
    assert len(merge([load(a), load(c)])["cases"]) == 2


def test_merge_of_a_folder_without_parity_json_is_one_line(tmp_path):
    with pytest.raises(MergeError, match="no parity.json there"):
        load(tmp_path)


def test_report_names_the_cpu_of_each_case_when_shards_ran_on_different_cpus(tmp_path):
    a = _shard(tmp_path, "s1", 1, 2, [("relu", "passed")], machine=_machine("a", "c1", ["avx2"]))
    b = _shard(tmp_path, "s2", 2, 2, [("conv", "passed")], machine=_machine("b", "c2", ["avx512_bf16"]))
    out = tmp_path / "out"
    assert main(["merge", str(a), str(b), "--reports", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "ran on different CPUs" in summary
    block = summary.split("b: cpu c2")[1]
    assert "avx512_bf16" in summary and "-conv]" in block and "-relu]" not in block
    html = (out / "report.html").read_text()
    assert "ran on b: cpu c2 (x86_64; avx512_bf16)" in html  # the conv cell's tooltip


def test_baseline_coverage_applies_to_the_merged_set(tmp_path):
    a = _shard(tmp_path, "s1", 1, 2, [("relu", "passed")])
    b = _shard(tmp_path, "s2", 2, 2, [("conv", "passed")])
    out = tmp_path / "out"
    assert main(["merge", str(a), str(b), "--reports", str(out), "--save-baseline", "release"]) == 0
    # a later matrix whose shards cover only relu: the merged set misses conv
    c = _shard(tmp_path, "t1", 1, 1, [("relu", "passed")])
    assert main(["merge", str(c), "--reports", str(out), "--baseline", "release"]) == 1
    junit = (out / "junit.xml").read_text()
    assert "conformance.baseline.missing" in junit and "conv" in junit
    assert main(["merge", str(c), "--reports", str(out), "--baseline", "release", "--allow-missing"]) == 0


@pytest.mark.slow
def test_three_shards_merged_equal_the_unsharded_run(tmp_path):
    """The CI matrix of docs/ci.md, narrowed: 3 shards + merge vs one run, same cases and verdicts."""
    select = ["cases/test_operators.py", "-m", "parity", "--exporter", "torchscript", "--opset", "17",
              "-k", "relu or pixel_shuffle or residual_add"]
    whole = run_suite(*select, reports=tmp_path / "whole")
    assert whole.returncode == 0, whole.stdout[-2000:]
    shards = []
    for i in (1, 2, 3):
        done = run_suite(*select, "--shard", f"{i}/3", reports=tmp_path / f"s{i}")
        assert done.returncode == 0, done.stdout[-2000:]
        shards.append(str(tmp_path / f"s{i}"))
    merged = subprocess.run([sys.executable, "-m", "conformance.cli", "merge", *shards, "--reports",
                             str(tmp_path / "merged")], cwd=REPO, capture_output=True, text=True)
    assert merged.returncode == 0, merged.stdout + merged.stderr

    def verdicts(folder):
        data = json.loads((folder / "parity.json").read_text())
        return {c["nodeid"]: c["outcome"] for c in data["cases"]}, data

    one, _ = verdicts(tmp_path / "whole")
    union, data = verdicts(tmp_path / "merged")
    assert len(one) >= 6 and union == one
    per_shard = [set(verdicts(tmp_path / f"s{i}")[0]) for i in (1, 2, 3)]
    assert all(per_shard) and sum(map(len, per_shard)) == len(one)  # none twice, none lost, none empty
    assert {c["shard"] for c in data["cases"]} == {"1/3", "2/3", "3/3"}
    assert all(c["machine"] and c["run_id"] for c in data["cases"])
    report = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert report["verdict"]["ok"] and len(report["parity"]) == len(one)
