"""Latency helpers over pytest-benchmark: one timing system, host or device clocks."""

from __future__ import annotations

import time
from typing import Sequence

from conformance import private_apis

#: Timed rounds per latency case: enough for the U test of a slowdown verdict
#: (``conformance.report.slowdown``) to reach p < 0.01 on a real 25% change under load.
ROUNDS = 30
WARMUP = 2


def record_device_timings(benchmark, seconds: Sequence[float]) -> None:
    """Put timings measured on a device (by its runner's own clock) into pytest-benchmark's
    statistics, so min/median/mean/IQR and the saved JSON treat them like host rounds.

    pytest-benchmark has no public API for external timings (``conformance.private_apis``).
    """
    if benchmark.disabled:
        return
    if not seconds:
        raise ValueError("the device returned no timings")
    private_apis.record_external_timings(benchmark, seconds)
    benchmark.extra_info["measured_on"] = "device"


def time_session(benchmark, session, arrays, measures_own_latency: bool) -> None:
    """Time ``session.run(arrays)``: on the device when the backend measures itself, else on
    the host with pytest-benchmark (warm-up rounds first, then ``ROUNDS`` timed ones)."""
    if measures_own_latency:
        record_device_timings(benchmark, session.time(arrays, warmup=WARMUP, iterations=ROUNDS))
    else:
        benchmark.extra_info["measured_on"] = "host"
        run, cpu = with_cpu_time(session.run)
        benchmark.pedantic(run, args=(arrays,), rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
        benchmark.extra_info["cpu_times"] = cpu[-ROUNDS:]  # the timed rounds, after the warm-up


def with_cpu_time(call):
    """``call`` wrapped to note the process CPU time of each call (all threads): the gate's
    slowdown verdict reads it, because other processes on a busy machine stretch wall time but
    not the CPU time this process spends (see ``conformance.report.slowdown``)."""
    cpu: list[float] = []

    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            cpu.append(time.process_time() - start)

    return timed, cpu
