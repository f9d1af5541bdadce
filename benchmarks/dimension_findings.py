"""What each of issue 12's dimensions finds on the real runtimes: ONNX Runtime and its ORT format.

For every operator and model case (TorchScript exporter, opset 17), hypothesis draws examples in
each dimension alone and the script counts failures and the closest call (share of the decimal-3
tolerance used by the worst element):

- batch16: the drawn shape at batch 8 or 16;
- special: special-values inputs of the case's kinds (NaN/Inf positions must match torch's);
- photo: crops of real photographs;
- static: a static-shape export at the drawn shape;
- rerun: one session run on 3 inputs of the drawn shape in turn;
- before: what the suite drew before issue 12 (batch 1-4, synthetic inputs, dynamic export, one
  run per session), for contrast.

    .venv/bin/python benchmarks/dimension_findings.py [--examples 10] [--backend NAME ...]

``--backend conformance.faults:LargeBatchLane`` (any backend name the suite takes) shows which
dimension catches a seeded fault.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # 2-core machine: no spinning OpenMP threads
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from conformance.backends import load_backend  # noqa: E402
from conformance.engine.compare import compare  # noqa: E402
from conformance.formats.onnx_export import ExportTarget, export  # noqa: E402
from conformance.draw.model_cases import MODEL_SPECIAL_KINDS, MODELS  # noqa: E402
from conformance.draw.operators import OPERATORS, SPECIAL_KINDS  # noqa: E402
from conformance.draw.strategies import Deployment, inputs, special_inputs, weights  # noqa: E402

TS17 = ExportTarget("torchscript", 17)
DIMENSIONS = ("before", "batch16", "special", "photo", "static", "rerun")


def draw_inputs(data, case, dimension, shape):
    if dimension == "special":
        kinds = SPECIAL_KINDS.get(case.name, MODEL_SPECIAL_KINDS)
        return [data.draw(special_inputs(shape, kinds=kinds))]
    recipe = data.draw(inputs(shape, scales=case.scales, photos=dimension != "before"))
    if dimension == "photo":
        recipe = recipe._replace(distribution="photo", photo=data.draw(st.sampled_from(["chelsea", "coffee", "camera", "grace_hopper"])))
    return Deployment(False, 3 if dimension == "rerun" else 1).inputs(recipe)


def one_example(data, case, dimension, backend):
    structure = data.draw(case.structures())
    shape = data.draw(case.input_shapes(structure))
    if dimension == "before" and shape[0] > 4:
        shape = (4,) + tuple(shape[1:])
    if dimension == "batch16":
        shape = (data.draw(st.sampled_from([8, 16])),) + tuple(shape[1:])
    module = case.build(structure).eval()
    drawn = data.draw(weights()).materialize(module)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in drawn.items()}, strict=False)
    dynamic = [()] if dimension == "static" else [case.dynamic]
    model = export(module, (torch.zeros(shape),), TS17, dynamic=dynamic)
    session = backend.prepare(model)
    results = []
    for recipe in draw_inputs(data, case, dimension, shape):
        x = recipe.materialize()
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        results.append(compare(session.run([x])[0], expected))
    return results


def sweep(case, dimension, backend, tally, examples: int) -> list[str]:
    """Run ``examples`` drawn examples of ``case`` in ``dimension``; tally them; a few failures."""
    failures: list[str] = []

    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        for result in one_example(data, case, dimension, backend):
            row = tally[case.name]
            row[0] += 1
            row[1] += not result.ok
            if result.ok:
                row[2] = max(row[2], result.margin)
            elif len(failures) < 3:
                failures.append(f"    {case.name}: {result.summary()[:200]}")

    run()
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10, help="examples per case, dimension and runtime (default 10)")
    parser.add_argument("--backend", action="append", help="runtime(s) to sweep (default: onnxruntime, onnxruntime-ort)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    for name in args.backend or ("onnxruntime", "onnxruntime-ort"):
        backend = load_backend(name)
        for dimension in DIMENSIONS:
            tally = defaultdict(lambda: [0, 0, 0.0])  # case -> examples, failures, worst margin
            start = time.perf_counter()
            for case in OPERATORS + MODELS:
                failures = sweep(case, dimension, backend, tally, args.examples)
                for line in failures:
                    print(line)
            runs = sum(r[0] for r in tally.values())
            failed = sum(r[1] for r in tally.values())
            worst = max(tally.items(), key=lambda kv: kv[1][2])
            seconds = time.perf_counter() - start
            print(f"{name.split(':')[-1][-16:]:16} {dimension:8} {runs:4} runs, {failed} failed, closest pass "
                  f"{worst[1][2]:.1%} ({worst[0]}); {seconds:.1f} s, {1e3 * seconds / max(runs, 1):.0f} ms per run")


if __name__ == "__main__":
    main()
