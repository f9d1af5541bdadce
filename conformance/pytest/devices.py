"""Several ``--device`` serials served at once: each device its own pytest-xdist worker.

With two or more devices (and pytest-xdist installed, no ``-n`` given), the run starts one
worker per device plus one for the host's tests; every test of a device goes to that device's
worker, as one unit, and the host's tests spread over whatever worker is free. A slow device
keeps only its own worker busy, and a lost one fails only its own cases (each adb call and runner
request has ``--device-timeout``): the other devices and the host go on. ``-n N`` given
explicitly keeps its worker count (the devices still get one worker each, as far as N allows);
``-n 0`` or ``-p no:xdist`` serves the devices one after another.
"""

from __future__ import annotations

import re

import pytest

from conformance.pytest.activation import SESSION_KEY


def device_names(config) -> list[str]:
    """Backend names of the run's ADB devices."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return []
    return [b.name for b in session.backends if str(getattr(b, "place", "host")).startswith("adb:")]


def device_of(nodeid: str, names: list[str]) -> str | None:
    """The device (backend name) a test runs on, from its parameters in the node id."""
    params = nodeid.partition("[")[2]
    for name in names:
        if re.search(rf"(^|-){re.escape(name)}(-|]|$)", params):
            return name
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Two or more devices, no -n: one worker per device and one for the host (set as xdist's
    own ``-n N`` sets it, whichever of the two hooks runs first)."""
    serials = {s.strip() for raw in config.getoption("device", None) or [] for s in str(raw).split(",") if s.strip()}
    if len(serials) < 2 or hasattr(config, "workerinput") or not config.pluginmanager.has_plugin("xdist"):
        return None
    option = config.option
    if getattr(option, "collectonly", False) or getattr(option, "usepdb", False):
        return None
    if option.numprocesses is None and getattr(option, "dist", "no") == "no" and not getattr(option, "tx", None):
        option.numprocesses = len(serials) + 1
        option.tx = ["popen"] * option.numprocesses
        option.dist = "load"
    return None


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Each device's tests as one unit of work on one worker; the host's tests one by one."""
    names = device_names(config)
    if len(names) < 2 or config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class DeviceScheduling(LoadScopeScheduling):
        """LoadScope with a device's tests as one scope (biggest first: each device is handed
        to a worker of its own at the start) and every other test as its own."""

        def _split_scope(self, nodeid: str) -> str:
            device = device_of(nodeid, names)
            return f"device {device}" if device else nodeid

    config.option.loadscopereorder = True  # biggest scopes first: the devices
    return DeviceScheduling(config, log)


def pytest_report_header(config):
    names = device_names(config)
    if len(names) >= 2:
        workers = getattr(config.option, "numprocesses", None)
        how = (f"concurrently, one pytest-xdist worker each ({workers} workers)" if workers
               else "one after another (no pytest-xdist workers: -n 0 or -p no:xdist)")
        return [f"conformance: {len(names)} devices served {how}"]
    return []
