"""Latency of the full model on every backend, side by side (pytest-benchmark).

Only the run is timed: export and session creation happen before the benchmark starts.
"""

import pytest
import torch

from conformance.models.cases import SUPERRES
from conformance.parity import Example, Target
from conformance.strategies import InputRecipe, WeightRecipe

SHAPE = (1, 1, 224, 224)  # the tutorial's input
ROUNDS = 15


@pytest.mark.benchmark(group=f"superres-x3-{'x'.join(map(str, SHAPE))}")
def test_superres_latency(latency_runner, benchmark, parity, conformance_session):
    module = parity.module_for(SUPERRES, 3)
    weights = WeightRecipe("orthogonal-relu", 0.0, 0).materialize(module)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    x = InputRecipe(SHAPE, "pixel", "integers", 0, 0).materialize()
    if latency_runner == "pytorch":
        tensor = torch.from_numpy(x)

        def run():
            with torch.no_grad():
                return module(tensor)

        benchmark.extra_info.update(backend="pytorch", measured_on="host")
    else:
        export = conformance_session.latency_export()
        if export is None:
            pytest.skip("no selected (exporter, opset) is supported")
        model = parity.export_for(SUPERRES, 3, export, module)
        from conformance.graph import bind_weights

        session = latency_runner.prepare(bind_weights(model, weights))
        run = lambda: session.run([x])  # noqa: E731
        benchmark.extra_info.update(backend=latency_runner.name, exporter=export.exporter,
                                    opset=export.opset, measured_on="host")
    benchmark.extra_info.update(model="SuperResolutionNet(3)", input_shape=list(SHAPE), gflop=5.96)
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=2, iterations=1)
