"""Latency of the full model on every backend, side by side (pytest-benchmark).

Only the run is timed: export and session creation happen before the benchmark starts.
Device backends time themselves on the device; their rows say ``measured_on: device``.
"""

import pytest
import torch

from conformance.backends.base import ProgramBackend
from conformance.formats.artifact_cache import program_export
from conformance.pytest.timing import ROUNDS, WARMUP, time_session
from conformance.draw.model_cases import SUPERRES
from conformance.draw.strategies import InputRecipe, WeightRecipe

SHAPE = (1, 1, 224, 224)  # the tutorial's input
GFLOP = 5.96  # SuperResolutionNet(3) at 224x224, multiply-adds counted as 2


@pytest.mark.benchmark(group=f"superres-x3-{'x'.join(map(str, SHAPE))}")
def test_superres_latency(latency_runner, benchmark, harness, conformance_session):
    module = harness.module_for(SUPERRES, 3)
    recipe = WeightRecipe("orthogonal-relu", 0.0, 0)
    weights = recipe.materialize(module)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    x = InputRecipe(SHAPE, "pixel", "integers", 0, 0).materialize()
    benchmark.extra_info.update(model="SuperResolutionNet(3)", input_shape=list(SHAPE), gflop=GFLOP)
    tensor = torch.from_numpy(x)

    def run():
        with torch.no_grad():
            return module(tensor)

    if latency_runner == "pytorch":
        benchmark.extra_info.update(backend="pytorch", measured_on="host")
        benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
        return
    export = conformance_session.primary_export()
    if export is None:
        pytest.skip("no selected (exporter, opset) is supported")
    backend = conformance_session.backend(latency_runner)
    if isinstance(backend, ProgramBackend):  # ExecuTorch, LiteRT (here or on a device): its own program
        session = backend.load(program_export(backend, module, (torch.from_numpy(x),), [()]))
        benchmark.extra_info.update(backend=backend.name, format=backend.format)
    else:
        model = harness.onnx_model_for(SUPERRES, 3, export, recipe)
        session = backend.prepare(model)
        benchmark.extra_info.update(backend=backend.name, exporter=export.exporter, opset=export.opset)
    # Each backend round sits between two PyTorch eager rounds: the same neighbours slow both.
    time_session(benchmark, session, [x], backend.measures_own_latency, reference=run,
                 reference_name="PyTorch eager SuperResolutionNet(3)")


@pytest.mark.benchmark(group=f"superres-x3-{'x'.join(map(str, SHAPE))}")
def test_superres_int8_latency(latency_runner, benchmark, conformance_session):
    """The same model quantized to int8 (PT2E, XNNPACKQuantizer per-channel), beside float32 in
    the same table; its SQNR against the float32 output on this input rides along."""
    if latency_runner == "pytorch":
        pytest.skip("torch runs the PT2E model as fake-quant float ops: no int8 kernels to time")
    from conformance.engine.qcompare import sqnr_db
    from conformance.pipeline.tutorial_int8 import int8_session, tutorial_for

    from conformance.formats.onnx_export import UnsupportedExport

    backend = conformance_session.backend(latency_runner)
    try:
        tutorial = tutorial_for(backend)
    except UnsupportedExport as exc:  # no PT2E here (the executorch extra is not installed)
        pytest.skip(str(exc))
    session = int8_session(backend, tutorial)
    if session is None:
        pytest.skip(f"{backend.name} has no int8 path from a PT2E-quantized module here")
    out = session.run([tutorial.x])[0]
    benchmark.extra_info.update(model="SuperResolutionNet(3) int8 (PT2E, XNNPACKQuantizer per-channel)",
                                input_shape=list(SHAPE), gflop=GFLOP, backend=f"{backend.name} (int8)", dtype="int8",
                                sqnr_db=round(sqnr_db(tutorial.float_output(), out), 2))
    time_session(benchmark, session, [tutorial.x], backend.measures_own_latency)
