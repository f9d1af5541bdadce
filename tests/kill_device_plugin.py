"""A pytest plugin for tests/test_device_suite.py: unplugs the loopback device (SIGKILL to its
process group, pid in CONFORMANCE_KILL_PGID) right after the first device case finishes."""

import os
import signal

_done = False


def pytest_runtest_logfinish(nodeid, location):
    global _done
    if not _done and "adb-" in nodeid:
        _done = True
        os.killpg(int(os.environ["CONFORMANCE_KILL_PGID"]), signal.SIGKILL)
