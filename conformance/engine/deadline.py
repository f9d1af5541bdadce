"""Cutting off a backend that hangs: every backend call runs under the case's deadline.

The call runs in a daemon worker thread and the caller waits at most the time left; past it,
``CaseTimeout`` fails the case and the run moves on. The stuck thread is abandoned (a thread
cannot be killed), which is why callers stop using a backend once it has timed out. A daemon
thread does not keep the process alive at exit.

A runtime that hangs while holding the GIL (native code that never releases it) stops every
Python thread, the waiting caller included; nothing in the process can then fail the case.
For that, each call also arms faulthandler's watchdog, a C thread that needs no GIL: past the
budget plus ``GIL_GRACE_S`` it dumps every thread's stack to stderr and ends the process. Under
pytest-xdist (``-n``) the worker is replaced, the case fails with that stack and the run goes
on; a serial run stops there instead of hanging for ever.
"""

from __future__ import annotations

import faulthandler
import sys
import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")

#: Seconds one parity case may take by default (pytest and ``conformance check`` alike): far
#: past the slowest healthy case measured here (the 16-block SRResNet on the dynamo exporter,
#: under a minute), so the default never cuts a healthy case.
DEFAULT_CASE_TIMEOUT = 300.0
#: Seconds past a call's budget before the watchdog ends a process whose GIL is held.
GIL_GRACE_S = 10.0


class CaseTimeout(Exception):
    """A backend call did not return within the case's time budget."""


class Deadline:
    """A time budget shared by every call of one case (None: no limit)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - time.monotonic())

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, or ``CaseTimeout`` naming ``what`` once the budget is spent."""
        left = self.left()
        if left is None:
            return fn()
        if left <= 0:
            raise CaseTimeout(f"{what}: the case's {self.seconds:g} s budget (--case-timeout) is spent")
        box: dict = {}

        def work():
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread below
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"conformance-call: {what}", daemon=True)
        _arm_watchdog(left + GIL_GRACE_S)
        try:
            worker.start()
            worker.join(left)
        finally:
            faulthandler.cancel_dump_traceback_later()
        if worker.is_alive():
            raise CaseTimeout(f"{what} did not return within {self.seconds:g} s (--case-timeout); "
                              "the call was abandoned")
        if "error" in box:
            raise box["error"]
        return box["value"]


def _arm_watchdog(seconds: float) -> None:
    """End the process (with every thread's stack on stderr) if this call holds the GIL past
    ``seconds``; a no-op where stderr has no file descriptor (faulthandler needs one)."""
    try:
        faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    except (ValueError, AttributeError, OSError, RuntimeError):
        pass
