"""The suite's run sets its thread-pool variables before torch loads its OpenMP runtime (set
later, libgomp never reads them: the default run took 222 s instead of 124 s, torch's threads
spinning beside ONNX Runtime's)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# A fresh interpreter runs pytest with a finder that notes OMP_WAIT_POLICY the moment torch is
# first imported.
_PROBE = r"""
import importlib.abc, os, sys
import pytest

seen = {}

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "torch" not in seen:
            seen["torch"] = os.environ.get("OMP_WAIT_POLICY")
        return None

sys.meta_path.insert(0, Watch())
code = pytest.main(sys.argv[1:])
print("AT_TORCH_IMPORT", seen.get("torch", "never imported"))
print("AFTER", os.environ.get("OMP_WAIT_POLICY"))
sys.exit(code)
"""


def probe(*args: str, env_extra: dict | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS")}
    env.update(env_extra or {}, CI="true")
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    found = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("AT_TORCH", "AFTER")))
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    return found


@pytest.mark.slow
def test_the_suite_sets_passive_openmp_before_torch_loads():
    found = probe("--collect-only", "-q", "-p", "no:cacheprovider", "cases/test_operators.py", "-m", "parity")
    assert found["AT_TORCH_IMPORT"] == "PASSIVE", found


@pytest.mark.slow
def test_a_users_own_setting_wins():
    found = probe("--collect-only", "-q", "-p", "no:cacheprovider", "cases/test_operators.py",
                  env_extra={"OMP_WAIT_POLICY": "ACTIVE"})
    assert found == {"AT_TORCH_IMPORT": "ACTIVE", "AFTER": "ACTIVE"}, found


@pytest.mark.slow
def test_torch_imported_before_the_suite_woke_up_is_said():
    """Too late to set the policy: the run says so, with what to do."""
    code = ("import torch, sys, pytest; sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', "
            "'cases/test_operators.py']))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "CI": "true"}, capture_output=True,
                          text=True, timeout=300)
    assert "torch was imported before the suite woke up" in done.stdout + done.stderr
    assert "export OMP_WAIT_POLICY=PASSIVE before pytest starts" in done.stdout + done.stderr
    quiet = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                            "--reports", "/nonexistent-dir-for-collect", "cases/test_operators.py"], cwd=REPO,
                           env={**env, "CI": "true"}, capture_output=True, text=True, timeout=300)
    assert "torch was imported before" not in quiet.stdout + quiet.stderr
