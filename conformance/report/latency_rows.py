"""Latency rows from pytest-benchmark's saved JSON, and this machine's peak GFLOP/s.

No second timing system: every number comes from the JSON pytest-benchmark saves (median, IQR,
quartiles, ops/s, and the raw rounds when ``--benchmark-save-data`` is on); host cases are timed
by ``conformance.engine.timed_rounds`` and recorded into pytest-benchmark's statistics. The peak is measured
once per run by a large float32 matrix product and stored in that JSON (``conformance_peak``),
so a saved run carries the peak it was measured against.

A latency case tells the report what it timed through ``benchmark.extra_info``: ``backend``
(``pytorch`` for the reference), ``model`` and ``flops`` or ``gflop`` (work per call).
Without them the backend comes from the test's parameters and GFLOP/s is left out.
"""

from __future__ import annotations

import re
import time

#: Backend names that mean "the PyTorch eager reference".
REFERENCE_NAMES = ("pytorch", "torch", "torch-eager", "eager")


def measure_peak_gflops(n: int = 2048, min_seconds: float = 0.3, min_reps: int = 3) -> dict:
    """Best-of-N GFLOP/s of an ``n x n`` float32 matmul in torch (same threads as the cases)."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)  # warm up: thread pool, page faults
    best, reps, start = float("inf"), 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "reps": reps, "threads": torch.get_num_threads(),
            "how": f"torch.mm float32 {n}x{n}, best of {reps}"}


def backend_of(bench: dict) -> str:
    """The backend a benchmark timed: extra_info, then its parameters, then its id."""
    extra = bench.get("extra_info") or {}
    if extra.get("backend"):
        return str(extra["backend"])
    for key in ("latency_runner", "backend", "runner"):
        value = (bench.get("params") or {}).get(key)
        if value:
            match = re.fullmatch(r"<\w+ (.+)>", str(value))  # repr of a Backend object
            return match.group(1) if match else str(value)
    return str(bench.get("param") or bench.get("name", "?")).split("-")[0]


def latency_rows(bench_json: dict | None) -> list[dict]:
    """One row per benchmark, with the ratio to its group's PyTorch reference and GFLOP/s."""
    if not bench_json:
        return []
    peak = (bench_json.get("conformance_peak") or {}).get("gflops")
    rows = [_row(b, peak) for b in bench_json.get("benchmarks", [])]
    for row in rows:
        ref = next((r for r in rows if r["group"] == row["group"] and r["reference"]), None)
        row["ratio"] = row["median"] / ref["median"] if ref and ref["median"] else None
    return sorted(rows, key=lambda r: (r["group"], not r["reference"], r["backend"]))


def _row(bench: dict, peak: float | None) -> dict:
    stats = bench.get("stats") or {}
    extra = bench.get("extra_info") or {}
    backend = backend_of(bench)
    median = float(stats.get("median", 0.0))
    flops = extra.get("flops") or (extra["gflop"] * 1e9 if extra.get("gflop") else None)
    gflops = flops / median / 1e9 if flops and median else None
    return {
        "fullname": bench.get("fullname", bench.get("name", "?")),
        "name": bench.get("name", "?"),
        "group": str(bench.get("group") or extra.get("model") or bench.get("name", "?")),
        "backend": backend,
        "measured_on": str(extra.get("measured_on", "host")),  # device backends time themselves
        "reference": bool(extra.get("reference")) or backend.lower() in REFERENCE_NAMES,
        "median": median,
        "iqr": float(stats.get("iqr", 0.0)),
        "q1": float(stats.get("q1", median)),
        "q3": float(stats.get("q3", median)),
        "min": float(stats.get("min", median)),
        "max": float(stats.get("max", median)),
        "ops": float(stats.get("ops", 1.0 / median if median else 0.0)),
        "rounds": int(stats.get("rounds", 0)),
        "data": stats.get("data"),
        "cpu": extra.get("cpu_times"),  # process CPU time per timed round (host backends)
        # Saved since the paired rule (conformance.report.slowdown); absent in older runs:
        "ref_times": extra.get("reference_times"),  # the reference workload around each round
        "run_delay": extra.get("run_delay"),  # seconds the threads waited for a core, per round
        "ref_run_delay": extra.get("reference_run_delay"),  # the same, per reference round
        "contention": extra.get("contention"),  # gauges over the timed rounds
        "flops": flops,
        "gflops": gflops,
        "peak_share": gflops / peak if gflops and peak else None,
    }


def format_seconds(seconds: float | None) -> str:
    """Latency in the unit that keeps 3 significant digits readable."""
    if seconds is None:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
