"""Latency helpers over pytest-benchmark: one timing system, host or device clocks."""

from __future__ import annotations

from typing import Callable, Sequence

from conformance.engine import timed_rounds

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
    private_apis.record_external_timings(benchmark, seconds, mode="device-timed")
    benchmark.extra_info["measured_on"] = "device"




def time_session(benchmark, session, arrays, measures_own_latency: bool,
                 reference: Callable[[], object] | None = None, reference_name: str | None = None) -> None:
    """Time ``session.run(arrays)``: on the device when the backend measures itself, else on
    the host (warm-up rounds first, then ``ROUNDS`` timed ones), each call between two rounds
    of ``reference`` (a fixed workload, e.g. the PyTorch eager model) and with the machine's
    contention gauges (``conformance.engine.timed_rounds``), saved in ``extra_info`` for the
    gate's slowdown verdict (``conformance.report.slowdown``). The wall times go into
    pytest-benchmark's statistics the way device timings do."""
    if measures_own_latency:
        record_device_timings(benchmark, session.time(arrays, warmup=WARMUP, iterations=ROUNDS))
        return
    benchmark.extra_info["measured_on"] = "host"
    if benchmark.disabled:  # --benchmark-disable: run once, as pytest-benchmark would
        session.run(arrays)
        return
    measured = timed_rounds.measure(lambda: session.run(arrays), ROUNDS, WARMUP, reference)
    private_apis.record_external_timings(benchmark, measured["times"], mode="host-timed")
    benchmark.extra_info.update(timed_rounds.extra_info(measured, reference_name))

