"""Examples per second of the parity cases, and where their time goes.

Runs the conformance cases in this process (``pytest -m parity`` plus any arguments after
``--``) with the core's steps timed: the PyTorch float32 reference, the float64 oracle, exports
(ONNX and runtime programs), session preparation, runtime calls and comparison. Prints the
run's examples, the time in the parity cases and examples/s (the terminal summary's numbers),
the wall time, and the share of each step. Then the share of two kinds of draws, whose time is
inside the steps above: the concurrent callers (an example's overlapped runs, all their steps)
and the camera-frame cases (``test_model_frames``, whole cases).

    .venv/bin/python benchmarks/parity_speed.py                       # the default profile
    .venv/bin/python benchmarks/parity_speed.py -- --exporter torchscript --opset 17
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402

from conformance.engine import compare as compare_mod  # noqa: E402
from conformance.formats import onnx_export as export_mod  # noqa: E402
from conformance.engine import harness as parity  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
WITHIN: dict[str, float] = defaultdict(float)  # draws whose time is spread over the steps


def timed(label, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - start
            CALLS[label] += 1
    return wrapper


def instrument() -> None:
    """Wrap the core's steps (module attributes the harness looks up at call time)."""
    torch_run = parity.torch_run

    def reference_or_oracle(module, arrays, dtype=None):
        import torch

        label = "oracle (float64)" if dtype == torch.float64 else "reference (torch float32)"
        return timed(label, torch_run)(module, arrays, **({} if dtype is None else {"dtype": dtype}))

    parity.torch_run = reference_or_oracle
    onnx_export = export_mod.export  # looked up at call time by the artifact cache's onnx_export

    def export_by_exporter(module, args, target, *rest, **kwargs):
        return timed(f"export (ONNX, {target.exporter})", onnx_export)(module, args, target, *rest, **kwargs)

    export_mod.export = export_by_exporter
    parity.prepare_model = timed("prepare (sessions)", parity.prepare_model)
    parity.load_program = timed("prepare (sessions)", parity.load_program)
    parity.run_session = timed("runtime run", parity.run_session)
    parity.compare = timed("compare", compare_mod.compare)
    export_mod.ExportCache.get = _export_cache_get(export_mod.ExportCache.get)
    overlapped = parity.Harness._overlapped

    def concurrent_callers(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return overlapped(self, *args, **kwargs)
        finally:
            WITHIN["concurrent callers (overlap draws)"] += time.perf_counter() - start

    parity.Harness._overlapped = concurrent_callers


def _export_cache_get(get):
    def wrapper(self, key, build):
        return get(self, key, timed("export (all formats)", build) if key not in self else build)
    return wrapper


class Summary:
    """Reads the run's own numbers from the conformance session at the end."""

    def __init__(self):
        self.examples = self.seconds = self.cases = 0

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        from conformance.pytest.activation import SESSION_KEY

        conf = session.config.stash.get(SESSION_KEY, None)
        if conf is not None:
            self.examples, self.seconds = conf.recorder.examples, conf.recorder.seconds
            self.cases = len(conf.recorder.records)
            WITHIN["camera frames (test_model_frames)"] = sum(
                r.seconds or 0.0 for r in conf.recorder.records.values() if "::test_model_frames[" in r.nodeid)


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    instrument()
    summary = Summary()
    start = time.perf_counter()
    code = pytest.main(["-m", "parity", "-q", "-p", "no:cacheprovider", "--benchmark-disable", *extra],
                       plugins=[summary])
    wall = time.perf_counter() - start
    rate = summary.examples / summary.seconds if summary.seconds else 0.0
    print(f"\n{summary.examples} examples in {summary.cases} parity cases; {summary.seconds:.1f} s in them "
          f"({rate:.1f} examples/s); {wall:.1f} s wall (pytest exit {int(code)})")
    busy = summary.seconds or wall
    steps = sum(seconds for label, seconds in SPENT.items() if label != "export (all formats)")
    SPENT["other (drawing, inputs, records)"] = max(0.0, summary.seconds - steps)
    CALLS["other (drawing, inputs, records)"] = summary.examples
    for label, seconds in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        if label == "export (all formats)":
            continue  # printed below, beside the ONNX part it includes
        print(f"  {label:28} {seconds:7.1f} s  {seconds / busy:6.1%}  ({CALLS[label]} calls)")
    if "export (all formats)" in SPENT:
        print(f"  {'export (all formats)':28} {SPENT['export (all formats)']:7.1f} s  "
              f"{SPENT['export (all formats)'] / busy:6.1%}  ({CALLS['export (all formats)']} artifacts made)")
    print("draws, their time inside the steps above:")
    for label, seconds in WITHIN.items():
        print(f"  {label:36} {seconds:7.1f} s  {seconds / busy:6.1%}")
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
