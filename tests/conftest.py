"""Helpers for the harness's own tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_suite(*args: str, reports: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the conformance suite in a fresh interpreter, as a user would (``pytest ...``).

    The ``ci`` profile makes the nested run derandomized and keeps it out of the example
    database, so these runs neither depend on nor disturb the user's runs.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pytest", *args, "--reports", str(reports),
           "--hypothesis-profile", "ci", "-p", "no:cacheprovider", "--benchmark-disable", "-q"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def suite(tmp_path):
    def run(*args, **kwargs):
        return run_suite(*args, reports=tmp_path / "reports", **kwargs)

    return run


@pytest.fixture(scope="module")
def adb():
    """A private adb server (its own port), killed after the module."""
    from conformance.device.emulator.testing import private_adb_server

    with private_adb_server() as client:
        yield client


@pytest.fixture(scope="module")
def device(adb, tmp_path_factory):
    """A loopback device connected to the private adb server."""
    from conformance.device.emulator import LoopbackDevice

    with LoopbackDevice(tmp_path_factory.mktemp("sandbox")) as dev:
        adb.connect(dev.serial)
        yield dev
        adb.disconnect(dev.serial)
