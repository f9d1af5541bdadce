"""The latency verdict (conformance.report.slowdown): beyond the limit *and* significant, on CPU
time when recorded, on wall time relative to the PyTorch reference otherwise."""

from __future__ import annotations

import numpy as np

from conformance.pytest.timing import with_cpu_time
from conformance.report.baseline import compare_latency
from conformance.report.latency_rows import latency_rows


def bench(backend, wall, cpu=None, group="g"):
    wall = list(wall)
    q1, median, q3 = np.percentile(wall, [25, 50, 75])
    extra = {"backend": backend, **({"cpu_times": list(cpu)} if cpu is not None else {})}
    return {"group": group, "name": f"t[{backend}]", "fullname": f"c.py::t[{backend}]", "extra_info": extra,
            "stats": {"median": median, "q1": q1, "q3": q3, "iqr": q3 - q1, "min": min(wall), "max": max(wall),
                      "ops": 1 / median, "rounds": len(wall), "data": wall}}


def rounds(centre, spread, n=30, seed=0):
    return centre * (1 + spread * np.random.default_rng(seed).standard_normal(n))


def verdict(before, after, limit=0.10):
    old, new = latency_rows({"benchmarks": before}), latency_rows({"benchmarks": after})
    return {c["backend"]: c for c in compare_latency(old, new, limit)}


def test_busy_machine_stretches_wall_time_but_not_cpu_time():
    base = [bench("pytorch", rounds(0.08, 0.05)), bench("ort", rounds(0.05, 0.05), cpu=rounds(0.09, 0.05, seed=1))]
    busy = [bench("pytorch", rounds(0.15, 0.2)), bench("ort", rounds(0.10, 0.2), cpu=rounds(0.088, 0.05, seed=2))]
    change = verdict(base, busy)
    assert change["ort"]["verdict"] == "same" and change["ort"]["raw_change"] > 0.5
    assert change["ort"]["basis"] == "CPU time per call"
    assert change["pytorch"]["verdict"] == "reference"  # the yardstick is shown, never judged


def test_more_work_is_slower_only_beyond_the_limit_and_significant():
    base = [bench("ort", rounds(0.05, 0.05), cpu=rounds(0.09, 0.05, seed=1))]
    worse = [bench("ort", rounds(0.06, 0.05), cpu=rounds(0.09 * 1.25, 0.05, seed=2))]
    assert verdict(base, worse)["ort"]["verdict"] == "slower"
    assert "U test p=" in verdict(base, worse)["ort"]["why"]
    assert verdict(base, worse, limit=0.40)["ort"]["verdict"] == "same"  # +25% is within 40%
    # +25% in the median of three noisy rounds is not significant: no verdict on luck
    few = [bench("ort", [0.05] * 3, cpu=[0.09, 0.05, 0.13])]
    few_worse = [bench("ort", [0.05] * 3, cpu=[0.1125, 0.06, 0.14])]
    assert verdict(few, few_worse)["ort"]["verdict"] == "same"


def test_without_cpu_times_wall_time_is_normalized_by_the_reference():
    base = [bench("pytorch", rounds(0.08, 0.02)), bench("ort", rounds(0.05, 0.02, seed=1))]
    slower_machine = [bench("pytorch", rounds(0.12, 0.02, seed=2)), bench("ort", rounds(0.075, 0.02, seed=3))]
    change = verdict(base, slower_machine)["ort"]
    assert change["verdict"] == "same" and abs(change["change"]) < 0.05 and "PyTorch reference" in change["why"]
    slower_backend = [bench("pytorch", rounds(0.08, 0.02, seed=2)), bench("ort", rounds(0.065, 0.02, seed=3))]
    assert verdict(base, slower_backend)["ort"]["verdict"] == "slower"


def test_with_cpu_time_records_each_call():
    call, cpu = with_cpu_time(lambda n: sum(range(n)))
    assert call(200_000) == sum(range(200_000)) and call(10) == 45
    assert len(cpu) == 2 and cpu[0] > cpu[1] >= 0
