"""Where each node ran, read from the runtimes themselves and kept in the case's record: OpenVINO's
execution precision per node, ExecuTorch's delegate per op, ONNX Runtime's execution provider per
node of the optimized graph, LiteRT's delegated ops; and an expected placement that fails a case
whose nodes ran elsewhere."""

import re

import pytest
import torch

from conformance.draw.model_cases import SUPERRES
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe
from conformance.engine.harness import Example, Harness, Target
from conformance.formats.onnx_export import ExportTarget

pytest_plugins = ["pytester"]

EXAMPLE = Example(3, WeightRecipe("orthogonal-relu", 0.0, 1), InputRecipe((1, 1, 12, 12), "unit", "uniform", 1, 0),
                  "initializers", Deployment(False, 1))


def placement(backend, export):
    outcome = Harness().run(SUPERRES, Target(backend, export), EXAMPLE)  # bf16 may fail parity: no matter
    assert outcome.placement is not None
    return outcome.placement()


@pytest.mark.parametrize("default", [False, True], ids=["pinned-f32", "default-hint"])
def test_openvino_names_the_precision_of_every_conv(default):
    pytest.importorskip("openvino")
    from conformance.backends.openvino import OpenVinoBackend

    backend = OpenVinoBackend(default=default)
    nodes = placement(backend, ExportTarget("torchscript", 17))
    convs = {name: p for name, p in nodes.items() if name.endswith("/Conv")}
    assert len(convs) == 4, nodes  # SuperResolutionNet's four convolutions, each named
    expected = {backend.precision()}  # f32 pinned; the CPU plugin's default (bf16 here) otherwise
    assert set(convs.values()) == expected, nodes


@pytest.mark.parametrize("delegate", ["xnnpack", None], ids=["xnnpack", "portable"])
def test_executorch_says_which_ops_the_delegate_took(delegate):
    pytest.importorskip("executorch")
    from conformance.backends.executorch import ExecutorchBackend
    from conformance.formats.onnx_export import ProgramFormat

    backend = ExecutorchBackend(delegate=delegate)
    nodes = placement(backend, ProgramFormat(backend.format))
    convs = {op: where for op, where in nodes.items() if "convolution" in op}
    assert len(convs) == 4, nodes
    assert set(convs.values()) == ({"XnnpackBackend"} if delegate else {"portable"}), nodes
    # What the delegate leaves of a dynamic-shape program is the runtime's own prim ops (size
    # arithmetic, zero-copy views): every kernel is delegated; memory planning's allocs are no op.
    assert set(nodes.values()) == {"XnnpackBackend" if delegate else "portable", "prim"}, nodes
    assert not any(op.endswith("(alloc)") for op in nodes), nodes


def test_executorch_placement_survives_the_artifact_cache(tmp_path):
    """A ``.pte`` read back from the disk cache was never lowered in this process: where its ops
    run comes from the cache too (it was lost once, in a second run with a warm cache)."""
    pytest.importorskip("executorch")
    from conformance.backends.executorch import ExecutorchBackend
    from conformance.formats import artifact_cache
    from conformance.formats.onnx_export import ProgramFormat

    before = artifact_cache.active()
    try:
        artifact_cache.configure(tmp_path / "cache")
        first = placement(ExecutorchBackend(), ProgramFormat("pte"))  # lowered here, stored
        again = placement(ExecutorchBackend(), ProgramFormat("pte"))  # a new backend: read from the cache
        assert artifact_cache.active().hits >= 1
    finally:
        artifact_cache.restore(before)
    assert again == first and any(where == "XnnpackBackend" for where in again.values()), again


# ONNX Runtime: the provider of every node of the graph as optimized, from a profiled run ----------

def _onnx_placement(backend):
    outcome = Harness().run(SUPERRES, Target(backend, ExportTarget("torchscript", 17)), EXAMPLE)
    return outcome.model, outcome.placement()


@pytest.mark.parametrize("kind", ["onnxruntime", "onnxruntime-ort"])
def test_onnxruntime_names_the_provider_of_each_node_as_optimized(kind):
    """Every node ran on the CPU provider; the graph rewrite shows: the Relus are fused into the
    Convs before them (node names and count are those of the optimized graph, not the export)."""
    from conformance.backends.onnxrt import OnnxRuntimeBackend
    from conformance.backends.ortformat import OrtFormatBackend

    model, nodes = _onnx_placement(OnnxRuntimeBackend() if kind == "onnxruntime" else OrtFormatBackend())
    assert set(nodes.values()) == {"CPUExecutionProvider"}, nodes
    exported = {f"{n.name} ({n.op_type})" for n in model.graph.node}
    relus = {n.name for n in model.graph.node if n.op_type == "Relu"}
    ran = {name.rsplit(" (", 1)[0] for name in nodes}
    assert len(relus) == 3 and not ran & relus, nodes  # fused away
    assert set(nodes) - exported, nodes  # nodes of the rewrite's own (FusedConv, an NCHWc Conv)
    assert sum(" (Conv)" in n or " (FusedConv)" in n for n in nodes) == 4, nodes


def test_onnxruntime_without_optimizations_runs_the_exported_nodes():
    """Graph optimizations off: the profile names exactly the exported graph's nodes."""
    from conformance.backends.onnxrt import OnnxRuntimeBackend

    model, nodes = _onnx_placement(OnnxRuntimeBackend(optimizations=False))
    assert set(nodes) == {f"{n.name} ({n.op_type})" for n in model.graph.node}, nodes
    assert set(nodes.values()) == {"CPUExecutionProvider"}


def test_onnxruntime_profile_events_name_nodes_and_providers():
    """Only node kernel events count; a node run twice (a loop body) is listed once."""
    from conformance.backends.ort_placement import nodes_of_profile

    events = [{"cat": "Session", "name": "model_run", "args": {}},
              {"cat": "Node", "name": "a_fence_before", "args": {"op_name": "Conv"}},
              {"cat": "Node", "name": "a_kernel_time", "args": {"op_name": "Conv", "provider": "CUDAExecutionProvider"}},
              {"cat": "Node", "name": "b_kernel_time", "args": {"op_name": "Shape", "provider": "CPUExecutionProvider"}},
              {"cat": "Node", "name": "b_kernel_time", "args": {"op_name": "Shape", "provider": "CPUExecutionProvider"}}]
    assert nodes_of_profile(events) == {"a (Conv)": "CUDAExecutionProvider", "b (Shape)": "CPUExecutionProvider"}


# LiteRT: which ops the default XNNPACK delegate took ---------------------------------------------

class _CumsumBetween(torch.nn.Module):
    """XNNPACK takes the elementwise ops around a CUMSUM but not the CUMSUM: a partial delegation."""

    def forward(self, x):
        return torch.relu(torch.cumsum(torch.relu(x) * 2.0, dim=-1))


def test_litert_says_which_ops_the_delegate_took():
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from conformance.backends.litert import LiteRtBackend

    backend = LiteRtBackend()
    artifact = backend.export(_CumsumBetween(), (torch.zeros(1, 3, 4, 4),))
    x = [np.ones((1, 3, 4, 4), np.float32)]
    session = backend.load(artifact)
    assert session.placement() is None  # the delegate is applied as the first run allocates
    session.run(x)
    nodes = session.placement()
    assert {op: where for op, where in nodes.items() if where == "builtin"} == {
        op: "builtin" for op in nodes if "(CUMSUM)" in op}, nodes
    assert sum(where == "XNNPACK" for where in nodes.values()) >= 3, nodes  # relu, mul, relu at least
    reference = LiteRtBackend(reference=True).load(artifact)
    reference.run(x)
    assert set(reference.placement().values()) == {"builtin"} and reference.placement().keys() == nodes.keys()


# Expected placement: a node elsewhere fails the case ---------------------------------------------

@pytest.fixture(scope="module")
def artifact_cache_dir(tmp_path_factory):
    """A private artifact cache: litert and litert-reference share one conversion."""
    from conformance.formats import artifact_cache

    before = artifact_cache.active()
    artifact_cache.configure(tmp_path_factory.mktemp("cache"))
    yield
    artifact_cache.restore(before)


def _check_with(backend, option: str, export=None):
    """SuperResolutionNet's fixed example on ``backend`` under ``--expect-placement option``."""
    from conformance.engine.record import CaseRecord
    from conformance.formats.onnx_export import ProgramFormat
    from conformance.pytest.casecheck import CaseCheck
    from conformance.report.expected import placement_option

    export = export or ProgramFormat(backend.format)
    record = CaseRecord(f"test_superres[{backend.name}]", "superres", "model", backend.name, export.exporter,
                        export.opset)
    entry = placement_option(option)
    check = CaseCheck(Harness(), record, case_timeout=None, feeds=("initializers",), reproducers=None,
                      placement_for=lambda row: entry if entry.matches(row) else None)
    return check, record, lambda: check.example(SUPERRES, Target(backend, export), EXAMPLE)


def test_an_expected_placement_on_a_runtime_that_does_not_say_fails():
    """A plug-in whose sessions have no placement() cannot meet an entry naming it: no silent pass."""
    from conformance.backends import load_backend

    backend = load_backend("onnxruntime.backend")
    _, record, run = _check_with(backend, f"{backend.name}=CPUExecutionProvider", ExportTarget("torchscript", 17))
    with pytest.raises(pytest.fail.Exception, match=re.escape(
            "expected placement CPUExecutionProvider (--expect-placement onnxruntime.backend=CPUExecutionProvider) "
            "cannot be checked: the runtime does not say where it ran each node")):
        run()
    assert record.placement["expected"]["outside"] is None


def test_expected_placement_fails_a_fallback_and_passes_when_met(artifact_cache_dir, tmp_path):
    pytest.importorskip("ai_edge_litert")
    from conformance.backends.litert import LiteRtBackend

    _, met, run = _check_with(LiteRtBackend(), "litert*=XNNPACK")
    run()  # every op delegated: passes
    record = met
    assert set(record.placement["counts"]) == {"XNNPACK"}, record.placement
    assert record.placement["expected"] == {"on": ["XNNPACK"], "source": "--expect-placement litert*=XNNPACK",
                                            "outside": {}}

    _, record, run = _check_with(LiteRtBackend(reference=True), "litert*=XNNPACK")
    with pytest.raises(pytest.fail.Exception) as failed:
        run()  # the same numbers (they pass), every op on the builtin kernels
    message = str(failed.value)
    total = len(record.placement["nodes"])
    assert message.startswith(f"superres on litert-reference (tflite format): {total} of {total} nodes ran outside "
                               "the expected placement XNNPACK (--expect-placement litert*=XNNPACK)"), message
    assert "(CONV_2D): builtin" in message and "the numbers match: " in message, message
    assert record.summary.startswith(f"{total} of {total} nodes ran outside"), record.summary

    # ...and the reports say it: the matrix cell, the summary's line, the HTML's list
    from conformance.report import build

    met.outcome, record.outcome = "passed", "failed"
    parity = {"meta": {"decimal": 3}, "cases": [met.to_json(), record.to_json()]}
    paths = build.write_report(build.build_report(parity=parity, bench=None, reports=tmp_path), tmp_path)
    markdown, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "✗ placement" in markdown and "**Expected placement**: held in 1 of 2 cases checked" in markdown, markdown
    assert f"expected XNNPACK: {total} node(s) elsewhere (op 0 (RESHAPE) on builtin" in markdown, markdown
    assert "expected XNNPACK: met" in html and f"XNNPACK: {total}" in html


@pytest.mark.parametrize("value, message", [
    ("executorch", "--expect-placement 'executorch': use BACKEND=WHERE, e.g. executorch=XnnpackBackend"),
    ("onnxruntime=", "--expect-placement 'onnxruntime=': use BACKEND=WHERE"),
    ("exectorch=XnnpackBackend", "--expect-placement 'exectorch=XnnpackBackend': no backend of this run matches "
                                 "'exectorch' (backends: onnxruntime, onnxruntime-ort)"),
])
def test_a_bad_expected_placement_is_a_one_line_usage_error(pytester, value, message):
    result = pytester.runpytest_inprocess("-p", "conformance.plugin", "--expect-placement", value,
                                          "--backend", "onnxruntime", "--backend", "onnxruntime-ort")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"ERROR: {message}" in err and "Traceback" not in err + result.stdout.str(), err


def test_placement_entries_of_the_expected_failures_file(tmp_path):
    from conformance.report import expected

    path = tmp_path / "expected.toml"
    path.write_text('[[placement]]\nbackend = "executorch"\non = ["XnnpackBackend", "portable"]\nreason = "r"\n'
                    '[[placement]]\nbackend = "litert"\ncase = "superres"\non = "XNNPACK"\n')
    found = expected.load(path)
    row = {"case": "conv2d", "backend": "executorch", "exporter": "pte", "opset": 0, "nodeid": "n"}
    assert found.placement_for(row).on == ("XnnpackBackend", "portable") and not found.xfails
    assert found.placement_for({**row, "backend": "litert"}) is None  # another case
    assert found.placement_for({**row, "backend": "litert", "case": "superres"}).source() == \
        "expected.toml: placement #2, backend=litert"
    for text, error in [('[[placement]]\nbackend = "x"\n', "expected.toml: placement #1: 'on' is required"),
                        ('[[placement]]\non = "x"\n', "'backend' is required"),
                        ('[[placement]]\nbackend = "x"\non = []\n', "'on' must be a place"),
                        ('[[placement]]\nbackend = "x"\non = "y"\ndecimal = 2\n', "belong in a [[tolerance]]"),
                        ('[[xfail]]\ncase = "x"\nreason = "r"\non = "y"\n', "'on' belongs in a [[placement]] entry")]:
        path.write_text(text)
        with pytest.raises(expected.ExpectedError, match=re.escape(error)):
            expected.load(path)


def test_an_int8_case_says_which_nodes_ran_as_int8_kernels():
    """ONNX Runtime turns each QuantizeLinear/Conv/DequantizeLinear group of a QDQ SuperResolutionNet
    into one QLinearConv: the int8 case's placement names the fused nodes, not the QDQ graph's."""
    from conformance.draw.quantization import QuantExample, QuantInputRecipe, QuantRecipe
    from conformance.engine.qharness import QuantHarness
    from conformance.formats.quantize import ORT_STATIC, QuantFormat
    from conformance.backends.onnxrt import OnnxRuntimeBackend

    drawn = QuantExample(3, WeightRecipe("orthogonal-relu", 0.0, 1),
                         QuantRecipe(per_channel=True, count=4, range=1.0, distribution="uniform", seed=1),
                         QuantInputRecipe(InputRecipe((1, 1, 12, 12), "unit", "uniform", 3, 0), "none", 1.0))
    outcome = QuantHarness(Harness()).run(SUPERRES, Target(OnnxRuntimeBackend(), QuantFormat(ORT_STATIC)), drawn)
    nodes = outcome.placement()
    convs = [n for n in nodes if n.endswith("(QLinearConv)")]
    assert len(convs) == 4 and set(nodes.values()) == {"CPUExecutionProvider"}, nodes
    assert sum(n.op_type == "Conv" for n in outcome.model.graph.node) == 4  # the file has float Convs in QDQ
