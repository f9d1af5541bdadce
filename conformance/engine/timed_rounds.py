"""Timed rounds of a call, interleaved with a reference workload, and how busy the machine was.

A latency number taken on a shared machine mixes the runtime's own cost with whatever the
neighbours took. Each timed round here records, besides the call's wall time:

* the **reference workload** (fixed code, e.g. the PyTorch eager model) timed just before the
  call, plus once after the last round, so each call sits between two reference rounds that
  met the same neighbours at the same moments, with its own run delay (so a slower machine
  can be told from a busier one);
* the process **CPU time** of the call (all threads);
* the **run delay** of the call: the time this process's threads spent runnable but waiting for
  a core (``/proc/self/task/*/schedstat``, Linux);

and over all the rounds, the **contention gauges**: the share of this process's cores that other
processes competing with it used (``/proc/stat`` minus this process's own CPU time; niced ones
only where nice orders them below it, i.e. without autogroups), the share niced processes
used, the share the hypervisor stole, the load average, and involuntary context switches per
call. ``conformance.report.slowdown`` judges with them; nothing here imports pytest, so the
noise benchmark times the same way.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Callable

PROC_STAT = "/proc/stat"
#: A pause before each reference round, untimed: a runtime's thread pool spins for a while after
#: its call (ONNX Runtime's does by default), and a reference round started at once met those
#: spinning threads in its own process: +16% to +31% on a quiet machine after a call doing 25%
#: more work, which read as "a slower machine".
SETTLE_S = 0.002


def run_delay() -> float | None:
    """Seconds this process's threads have spent waiting on a run queue (None off Linux)."""
    total, seen = 0, False
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
                seen = True
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between listing and reading
    return total * 1e-9 if seen else None


def _cpus() -> list[int]:
    """The cores this process may run on (its affinity), else all."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _machine_ticks(cpus: list[int]) -> tuple[int, int, int] | None:
    """(busy at nice <= 0, busy at nice > 0, stolen) clock ticks since boot, summed over
    ``cpus`` (their ``cpuN`` lines of /proc/stat)."""
    wanted = {f"cpu{n}" for n in cpus}
    busy = niced = stolen = 0
    try:
        with open(PROC_STAT) as f:
            lines = [line.split() for line in f if line.startswith("cpu")]
    except OSError:
        return None
    rows = [row for row in lines if row[0] in wanted]
    if not rows:
        return None
    for row in rows:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in row[1:9])
        busy, niced, stolen = busy + user + system + irq + softirq, niced + nice, stolen + steal
    return busy, niced, stolen


def _nice_yields() -> bool:
    """Whether a niced process yields to this one. Not with the scheduler's autogroups (Linux
    puts each session in a group and shares the cores between groups evenly, whatever the
    nice values inside them): there another session's ``nice pytest`` competes in full."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() != "1"
    except OSError:
        return True


def _load() -> float | None:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Gauges:
    """Contention over a window: start it before the timed rounds, ``read`` it after them.

    Other processes' time is split by priority: a process at a higher nice value (a
    neighbour's ``nice pytest``) yields the core to this one within a scheduler tick and
    barely stretches its calls, so it counts in ``niced_share`` only; one at the same
    priority shares the core evenly. With autogroups nice does not order processes of
    different sessions, and niced time counts as contention too. Only the cores this process
    may run on count."""

    def __init__(self):
        self.cpus = _cpus()
        self.ticks = _machine_ticks(self.cpus)
        self.usage = resource.getrusage(resource.RUSAGE_SELF)
        self.load = _load()
        self.wall = time.perf_counter()

    def read(self, calls: int) -> dict:
        """The window's gauges as plain data (shares of the cores; None where unreadable)."""
        wall = time.perf_counter() - self.wall
        usage = resource.getrusage(resource.RUSAGE_SELF)
        user, system = usage.ru_utime - self.usage.ru_utime, usage.ru_stime - self.usage.ru_stime
        cores = len(self.cpus)
        gauges = {"cpus": cores, "window_s": wall, "load": [self.load, _load()],
                  "nivcsw_per_call": (usage.ru_nivcsw - self.usage.ru_nivcsw) / max(calls, 1),
                  "others_share": None, "niced_share": None, "steal_share": None}
        ticks, hz = _machine_ticks(self.cpus), os.sysconf("SC_CLK_TCK")
        if self.ticks and ticks and wall > 0:
            busy, niced, steal = ((ticks[i] - self.ticks[i]) / hz for i in range(3))
            own_niced = os.getpriority(os.PRIO_PROCESS, 0) > 0  # then our user time is in "nice"
            others = busy - system - (0.0 if own_niced else user)
            others_niced = niced - (user if own_niced else 0.0)
            if not _nice_yields():
                others, others_niced = others + others_niced, others_niced
            share = lambda seconds: min(1.0, max(0.0, seconds / (cores * wall)))  # noqa: E731
            gauges.update(others_share=share(others), niced_share=share(others_niced), steal_share=share(steal))
        return gauges


def _wall(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(call: Callable[[], object], rounds: int, warmup: int,
            reference: Callable[[], object] | None = None) -> dict:
    """Time ``call`` ``rounds`` times after ``warmup`` untimed rounds.

    Returns ``times`` (wall seconds per call), ``cpu_times``, ``run_delay`` (None entries off
    Linux), ``reference_times`` (``rounds + 1`` of them, reference round i just before call i
    and the last one after the last call; empty without a reference), their
    ``reference_run_delay`` and ``contention``."""
    for _ in range(warmup):
        if reference is not None:
            reference()
        call()
    gauges = Gauges()
    times, cpu, delay, ref, ref_delay = [], [], [], [], []
    for _ in range(rounds):
        if reference is not None:
            time.sleep(SETTLE_S)
            _reference_round(reference, ref, ref_delay)
        d0 = run_delay()
        c0 = time.process_time()
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        c1 = time.process_time()
        d1 = run_delay()
        times.append(t1 - t0)
        cpu.append(c1 - c0)
        delay.append(d1 - d0 if d0 is not None and d1 is not None else None)
    if reference is not None:
        time.sleep(SETTLE_S)
        _reference_round(reference, ref, ref_delay)
    return {"times": times, "cpu_times": cpu, "run_delay": delay, "reference_times": ref,
            "reference_run_delay": ref_delay, "contention": gauges.read(rounds)}


def _reference_round(reference: Callable[[], object], times: list, delays: list) -> None:
    d0 = run_delay()
    times.append(_wall(reference))
    d1 = run_delay()
    delays.append(d1 - d0 if d0 is not None and d1 is not None else None)


def extra_info(measured: dict, reference_name: str | None) -> dict:
    """What a latency case saves in pytest-benchmark's ``extra_info`` from ``measure``'s result."""
    info = {"cpu_times": measured["cpu_times"], "run_delay": measured["run_delay"],
            "contention": measured["contention"]}
    if measured["reference_times"]:
        info["reference_times"] = measured["reference_times"]
        info["reference_run_delay"] = measured.get("reference_run_delay")
        info["reference_workload"] = reference_name
    return info
