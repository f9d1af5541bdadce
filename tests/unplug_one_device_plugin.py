"""A pytest plugin for tests/test_devices_concurrent.py: unplugs one loopback device (SIGKILL to
the process group in CONFORMANCE_KILL_PGID) right after the first case of the device named in
CONFORMANCE_KILL_DEVICE finishes, wherever that case ran (an xdist worker or the controller)."""

import os
import signal

_done = False


def pytest_runtest_logfinish(nodeid, location):
    global _done
    if not _done and os.environ["CONFORMANCE_KILL_DEVICE"] in nodeid:
        _done = True
        try:
            os.killpg(int(os.environ["CONFORMANCE_KILL_PGID"]), signal.SIGKILL)
        except ProcessLookupError:  # the other process of the run got there first
            pass
