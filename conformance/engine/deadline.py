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

Both cost a thread per call when made per call (the worker, and the watchdog's C thread), and a
new thread waits for a core: on two busy cores that was 1 ms a call, a fifth of the operator
cases' time. So the calls go to one long-lived worker thread (a call made while it is busy, as
the deployment's callers running at once are, gets a thread of its own; a worker stuck past its
budget is abandoned and replaced), and a case's calls made inside ``Deadline.watched()`` share
one watchdog, armed once, whose expiry (the case's end plus ``GIL_GRACE_S``) is the one each call
would have set. It stays armed between those calls only while more than ``NEAR_END_S`` of the
budget is left; past that each call arms its own again, so the suite's own work between calls
(a reference, a comparison) can never be what sets it off.
"""

from __future__ import annotations

import contextlib
import faulthandler
import queue
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
#: Inside ``Deadline.watched()``, the case's watchdog stays armed between calls while more than
#: this is left of the budget (a gap between two calls this long would be the suite's own fault).
NEAR_END_S = 60.0


class CaseTimeout(Exception):
    """A backend call did not return within the case's time budget."""


class Deadline:
    """A time budget shared by every call of one case (None: no limit)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds
        self._watching = False

    def left(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - time.monotonic())

    @contextlib.contextmanager
    def watched(self):
        """The calls made inside share one GIL watchdog, armed at the first of them (see above)."""
        self._watching = True
        try:
            yield self
        finally:
            self._watching = False
            self._disarm()

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, or ``CaseTimeout`` naming ``what`` once the budget is spent."""
        left = self.left()
        if left is None:
            return fn()
        if left <= 0:
            self._disarm()
            raise CaseTimeout(f"{what}: the case's {self.seconds:g} s budget (--case-timeout) is spent")
        shared = self._watching and left > NEAR_END_S
        if not shared:
            self._disarm()  # near the end: this call's own watchdog, as outside watched()
        if _watchdog_owner[0] is not self:  # not armed, or re-armed by another deadline since
            _arm_watchdog(left + GIL_GRACE_S)
            _watchdog_owner[0] = self
        try:
            box = _run(fn, left, what)
        finally:
            if not shared or (self.left() or 0.0) <= NEAR_END_S:
                self._disarm()
        if box is None:
            raise CaseTimeout(f"{what} did not return within {self.seconds:g} s (--case-timeout); "
                              "the call was abandoned")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _disarm(self) -> None:
        if _watchdog_owner[0] is self:
            faulthandler.cancel_dump_traceback_later()
            _watchdog_owner[0] = None


#: The deadline whose expiry the process's one faulthandler watchdog holds now, if any.
_watchdog_owner: list[Deadline | None] = [None]


class _Worker:
    """A long-lived daemon thread running the calls handed to it, one at a time."""

    def __init__(self):
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.busy = threading.Lock()
        threading.Thread(target=self._serve, name="conformance-call", daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, what, box, done = self.inbox.get()
            threading.current_thread().name = f"conformance-call: {what}"  # in a debugger's thread list
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            done.set()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _run(fn: Callable[[], T], timeout: float, what: str) -> dict | None:
    """``fn()`` in a worker thread: ``{"value": ...}`` or ``{"error": ...}``, or None once
    ``timeout`` has passed (the worker is then abandoned to its call)."""
    global _worker
    with _worker_lock:
        worker = _worker = _worker or _Worker()
    if not worker.busy.acquire(blocking=False):  # another thread's call is running on it
        return _run_in_new_thread(fn, timeout, what)
    box: dict = {}
    done = threading.Event()
    worker.inbox.put((fn, what, box, done))
    if done.wait(timeout):
        worker.busy.release()
        return box
    with _worker_lock:
        if _worker is worker:
            _worker = None  # stuck in its call: the next call gets a new worker
    return None


def _run_in_new_thread(fn: Callable[[], T], timeout: float, what: str) -> dict | None:
    box: dict = {}

    def work():
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name=f"conformance-call: {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    return None if thread.is_alive() else box


def _arm_watchdog(seconds: float) -> None:
    """End the process (with every thread's stack on stderr) if this call holds the GIL past
    ``seconds``; a no-op where stderr has no file descriptor (faulthandler needs one)."""
    try:
        faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    except (ValueError, AttributeError, OSError, RuntimeError):
        pass
