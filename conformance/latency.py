"""Latency helpers over pytest-benchmark: one timing system, host or device clocks."""

from __future__ import annotations

from typing import Sequence

ROUNDS = 15
WARMUP = 2


def record_device_timings(benchmark, seconds: Sequence[float]) -> None:
    """Put timings measured on a device (by its runner's own clock) into pytest-benchmark's
    statistics, so min/median/mean/IQR and the saved JSON treat them like host rounds.

    pytest-benchmark has no public API for external timings; this uses its stats object the
    way ``pedantic`` does and marks the fixture as used.
    """
    if benchmark.disabled:
        return
    if not seconds:
        raise ValueError("the device returned no timings")
    stats = benchmark._make_stats(1)
    for value in seconds:
        stats.update(float(value))
    benchmark._mode = "device-timed"
    benchmark.extra_info["measured_on"] = "device"


def time_session(benchmark, session, arrays, measures_own_latency: bool) -> None:
    """Time ``session.run(arrays)``: on the device when the backend measures itself, else on
    the host with pytest-benchmark (warm-up rounds first, then ``ROUNDS`` timed ones)."""
    if measures_own_latency:
        record_device_timings(benchmark, session.time(arrays, warmup=WARMUP, iterations=ROUNDS))
    else:
        benchmark.extra_info["measured_on"] = "host"
        benchmark.pedantic(session.run, args=(arrays,), rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
