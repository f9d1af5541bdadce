"""Latency of the full model on every backend, side by side (pytest-benchmark).

Only the run is timed: export and session creation happen before the benchmark starts.
Device backends time themselves on the device; their rows say ``measured_on: device``.
"""

import pytest
import torch

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
    model = harness.onnx_model_for(SUPERRES, 3, export, recipe)
    session = backend.prepare(model)
    benchmark.extra_info.update(backend=backend.name, exporter=export.exporter, opset=export.opset)
    # Each backend round sits between two PyTorch eager rounds: the same neighbours slow both.
    time_session(benchmark, session, [x], backend.measures_own_latency, reference=run,
                 reference_name="PyTorch eager SuperResolutionNet(3)")
