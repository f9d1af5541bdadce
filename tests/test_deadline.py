"""The case deadline: calls on one long-lived worker thread, one GIL watchdog per watched case.

A thread per call (the worker, and faulthandler's watchdog thread) cost about 1 ms a call on two
busy cores, a fifth of the operator cases' time. The hang tests themselves (a runtime that never
returns, one that holds the GIL) run the suite in ``tests/test_core.py`` and ``test_hardening.py``.
"""

from __future__ import annotations

import threading
import time

import pytest

from conformance.engine import deadline as deadline_module
from conformance.engine.deadline import NEAR_END_S, CaseTimeout, Deadline


@pytest.fixture
def watchdog(monkeypatch):
    """How often the watchdog was armed and cancelled."""
    counts = {"armed": 0, "cancelled": 0}
    monkeypatch.setattr(deadline_module, "_arm_watchdog", lambda s: counts.__setitem__("armed", counts["armed"] + 1))
    monkeypatch.setattr(deadline_module.faulthandler, "cancel_dump_traceback_later",
                        lambda: counts.__setitem__("cancelled", counts["cancelled"] + 1))
    return counts


def test_calls_run_on_one_long_lived_worker_thread():
    deadline = Deadline(60)
    threads = [deadline.call(threading.current_thread, "which thread") for _ in range(20)]  # kept: no id reused
    assert all(t is threads[0] for t in threads) and threads[0] is not threading.current_thread()


def test_a_watched_case_arms_the_watchdog_once(watchdog):
    deadline = Deadline(NEAR_END_S + 60)
    with deadline.watched():
        for _ in range(10):
            assert deadline.call(lambda: 7, "seven") == 7
        assert watchdog == {"armed": 1, "cancelled": 0}  # armed between the calls
    assert watchdog == {"armed": 1, "cancelled": 1}  # and not past the case


def test_unwatched_and_near_the_end_each_call_arms_its_own(watchdog):
    for _ in range(3):
        Deadline(NEAR_END_S + 60).call(lambda: None, "unwatched")
    short = Deadline(NEAR_END_S / 2)  # the budget's end is near from the start
    with short.watched():
        for _ in range(3):
            short.call(lambda: None, "near the end")
    assert watchdog == {"armed": 6, "cancelled": 6}


def test_callers_at_once_each_get_a_thread(watchdog):
    """The deployment's callers running at once must run at once, not queue on the worker."""
    deadline, barrier, results = Deadline(60), threading.Barrier(3, timeout=10), []

    def caller():
        results.append(deadline.call(lambda: barrier.wait() >= 0, "at once"))

    threads = [threading.Thread(target=caller) for _ in range(3)]
    with deadline.watched():
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert results == [True, True, True]


def test_a_stuck_call_is_abandoned_and_the_next_call_gets_a_new_worker(watchdog):
    release = threading.Event()
    with pytest.raises(CaseTimeout, match="did not return within 0.3 s"):
        Deadline(0.3).call(lambda: release.wait(30), "stuck")
    try:
        assert Deadline(5).call(lambda: "fine", "next") == "fine"
    finally:
        release.set()
    assert watchdog["armed"] == watchdog["cancelled"] == 2


def test_errors_reach_the_caller_and_a_spent_budget_disarms(watchdog):
    deadline = Deadline(NEAR_END_S + 60)
    with deadline.watched():
        with pytest.raises(ZeroDivisionError):
            deadline.call(lambda: 1 / 0, "divide")
        deadline.end = time.monotonic() - 1  # the budget is spent
        with pytest.raises(CaseTimeout, match="budget .* is spent"):
            deadline.call(lambda: None, "late")
        assert watchdog == {"armed": 1, "cancelled": 1}
