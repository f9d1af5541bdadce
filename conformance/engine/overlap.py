"""Runs that overlap in time, and what a run did to its caller's memory.

Servers and apps call one runtime from several threads, and ONNX Runtime documents ``run`` as
thread-safe: ``run_at_once`` starts one thread per feed behind a barrier, so the calls overlap,
each on its own input, spread over the sessions given (one shared session, or two sessions of
one model). ``snapshot`` and ``written`` tell whether a run wrote into the arrays it was handed
(a copy and a byte comparison per run: microseconds beside the run itself).
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

#: Seconds a caller waits for the others at the start line (a runtime stuck in ``prepare``
#: elsewhere must not hold the callers for ever; the case's deadline covers the runs).
START_TIMEOUT_S = 30.0


def run_at_once(run: Callable[[object, list], list], sessions: Sequence, feeds: Sequence[list]) -> list:
    """``run(session, feed)`` for every feed at once, feed i on ``sessions[i % len(sessions)]``;
    returns the outputs in feed order. The first error any caller met is raised once all end."""
    start = threading.Barrier(len(feeds))
    results: list = [None] * len(feeds)

    def caller(i: int) -> None:
        try:
            start.wait(START_TIMEOUT_S)
        except threading.BrokenBarrierError:
            pass  # a caller that could not start in time: run anyway, overlapping less
        try:
            results[i] = run(sessions[i % len(sessions)], feeds[i])
        except BaseException as exc:  # handed to the caller below
            results[i] = exc

    threads = [threading.Thread(target=caller, args=(i,), name=f"conformance-caller-{i}", daemon=True)
               for i in range(len(feeds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def snapshot(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Private copies of ``arrays``, to compare with after a run."""
    return [np.array(a, copy=True) for a in arrays]


def written(arrays: Sequence[np.ndarray], before: Sequence[np.ndarray]) -> list[int]:
    """Indices of the arrays whose bytes differ from ``before`` (NaN payloads and -0.0 included)."""
    changed = []
    for i, (now, then) in enumerate(zip(arrays, before)):
        now = np.asarray(now)
        if now.shape != then.shape or np.ascontiguousarray(now).tobytes() != then.tobytes():
            changed.append(i)
    return changed
