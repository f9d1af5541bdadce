"""The thread-pool settings a run of the suite needs, made as it wakes up (never in another
project's run: the installed plugin only calls :func:`settle` on activation).

Torch's OpenMP threads spin after each op and starve whatever runs next on a small machine (ONNX
Runtime's own threads, an adb server, a loopback device): measured on 2 cores, a device parity
loop ran at 38 examples/s with spinning and 725/s without, and the default ``pytest -m parity``
took 222 s instead of 124 s (torch's reference convolutions 3.5x slower per call). numpy's
OpenBLAS threads make the small QRs of orthogonal weight init ~20x slower beside torch and ONNX
Runtime threads (26 ms vs 1.2 ms for a 576x64 QR).

libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it; OpenBLAS reads its thread count
when numpy loads it. So the variables must be set before whatever first imports torch: the suite
as it wakes up, the cases' ``conftest.py`` and this repository's ``tests/conftest.py`` (which
``pytest --reports DIR`` loads first, and which imports torch) each call :func:`settle`. Set
too late, nothing fails, but the run is slow: :func:`settle` then says so. Another plugin may
have loaded numpy first (jaxtyping's, installed with an optional runtime, does at pytest's
start): its BLAS pool is then limited at run time, where threadpoolctl is installed.
"""

from __future__ import annotations

import os
import sys

SETTINGS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}
_before_torch = False  # settled before torch was first imported (then libgomp read the policy)
_late: list[str] = []  # what could not take effect, kept for whichever caller reports it


def settle() -> list[str]:
    """Set the variables (a user's own values win) and limit an already loaded BLAS pool.
    Returns what could not take effect, in words (empty when everything did)."""
    global _before_torch
    late = _late
    preset = "OMP_WAIT_POLICY" in os.environ  # the user's (or an earlier settle's) value
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
    if "torch" not in sys.modules:
        _before_torch = True
    elif not _before_torch and not preset and not late:
        late.append("torch was imported before the suite woke up: its OpenMP threads may spin (export "
                    "OMP_WAIT_POLICY=PASSIVE before pytest starts)")
    if "numpy" in sys.modules and os.environ["OPENBLAS_NUM_THREADS"] == SETTINGS["OPENBLAS_NUM_THREADS"]:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return list(late)
        threadpool_limits(limits=1, user_api="blas")
    return list(late)
