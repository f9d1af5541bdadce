"""The suite-level proof of the diagnosis: with the default (derandomized CI) profile, every
seeded fault of a diagnosis line fails and its record ends with its own cause; ONNX Runtime,
run through the same drawn deployments (strided inputs, overlapping callers), passes with none."""

import json

import pytest

CAUSES = {
    "StateAfterRuns": "state carried between runs of one session",
    "IgnoresStrides": "the inputs' memory layout",
    "WritesIntoInputs": "the runtime writes into its caller's input memory",
    "WrongWithThreads": "running on several threads",
    "WrongWhenOptimized": "a graph rewrite, not a kernel",
    "SharedScratch": "runs that overlap in time",
}


@pytest.mark.slow
def test_each_diagnosis_fault_fails_with_its_cause_and_a_correct_runtime_gives_none(suite, tmp_path):
    backends = [arg for name in CAUSES for arg in ("--backend", f"conformance.faults:{name}")]
    result = suite("cases/test_operators.py", "cases/test_models.py", "-m", "parity",
                   "-k", "(conv2d or misexported_relu) and not special and not bn",
                   "--register", "tests/misexported_module.py", *backends, "--backend", "onnxruntime",
                   "--exporter", "torchscript", "--opset", "17", timeout=900)
    assert result.returncode == 1, result.stdout[-3000:]
    records = json.loads((tmp_path / "reports" / "parity.json").read_text())["cases"]
    for name, cause in CAUSES.items():
        mine = [r for r in records if r["backend"] == f"conformance.faults.{name}" and r["case"] == "conv2d"]
        assert mine and mine[0]["outcome"] == "failed", (name, [r["summary"] for r in mine])
        assert mine[0]["diagnosis"]["cause"].startswith(cause), (name, mine[0]["message"])
        assert mine[0]["message"].splitlines()[-1] == f"  cause: {mine[0]['diagnosis']['cause']}"
    ort = {r["case"]: r for r in records if r["backend"] == "onnxruntime"}
    assert ort["conv2d"]["outcome"] == "passed" and ort["conv2d"]["diagnosis"] is None
    assert ort["misexported_relu"]["outcome"] == "failed"
    assert ort["misexported_relu"]["diagnosis"]["cause"] == (
        "the exporter (onnx's reference evaluator on this file gives the runtime's numbers)")
