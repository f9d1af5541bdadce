"""Helpers for the harness's own tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.pytest import threads  # noqa: E402

# Before torch loads its OpenMP runtime (imported just below): this conftest may be loaded before
# the cases' (``pytest --reports DIR`` loads it first), and torch's threads then spin beside ONNX
# Runtime's for the whole run (measured: the default run 200 s instead of 108 s).
threads.settle()

# pytester's in-process runs drop from sys.modules whatever was first imported inside them, and a
# native extension (torch, onnxruntime) imported a second time in one process aborts it (as
# matplotlib's classes break). The installed plugin imports nothing heavy until a run wakes the
# suite up, so import the runtime and report sides here, once, before any nested run.
import conformance.pytest.session  # noqa: E402,F401
import conformance.report.build  # noqa: E402,F401

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """The harness's own property tests run under the suite's profile (no deadline: a shared
    machine's pauses are no failures), as the cases do, whether or not the run wakes the suite."""
    from conformance.draw import profiles

    profiles.apply_default(config.getoption("hypothesis_profile", None))


def run_suite(*args, reports: Path, timeout: float = 600, profile: str = "ci") -> subprocess.CompletedProcess:
    """Run the conformance suite in a fresh interpreter, as a user would (``pytest ...``): the one
    helper of every nested run (mark its tests ``slow``).

    The ``ci`` profile makes the nested run derandomized and keeps it out of the example
    database, so these runs neither depend on nor disturb the user's runs.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pytest", *map(str, args), "--reports", str(reports),
           "--hypothesis-profile", profile, "-p", "no:cacheprovider", "--benchmark-disable", "-q"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def verdicts(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """Test id -> PASSED/FAILED/ERROR/SKIPPED, from a nested run given ``-rA``."""
    return {m[2]: m[1] for m in re.finditer(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+)", proc.stdout, re.M)}


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
