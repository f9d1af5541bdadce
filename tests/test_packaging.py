"""The package works outside the checkout: the wheel carries the cases and registers the plugin.

A wheel is built from the repo and installed into a fresh virtual environment whose other
packages (torch, onnxruntime...) come from this environment by a path file (not a reinstall:
that would cost minutes and gigabytes); the parity cases then run from an empty folder with
``pytest --pyargs conformance.cases``, and ``pytest --model PATH`` runs the model cases alone.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The python of a fresh venv with only the built wheel installed (plus a path to our deps)."""
    root = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-w", root / "dist", REPO], cwd=root)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next((root / "dist").glob("conformance-*.whl"))
    venv.EnvBuilder(with_pip=False).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    target = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root)
                  .stdout.strip())
    # Dependencies from this environment; the editable install's finder lives in a .pth file
    # there, which a path entry does not run, so the wheel's copy is what gets imported.
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    unpacked = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", target, wheel], cwd=root)
    assert unpacked.returncode == 0, unpacked.stderr[-2000:]
    return python


@pytest.mark.slow
def test_wheel_ships_the_cases_and_registers_the_plugin(installed, tmp_path):
    where = _run([installed, "-c", "import conformance, conformance.cases; print(conformance.__file__)"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(REPO) not in where.stdout, "the checkout was imported, not the wheel"
    result = _run([installed, "-m", "pytest", "--pyargs", "conformance.cases", "-m", "parity", "-p", "no:cacheprovider",
                   "-k", "relu and not prelu and not special and torchscript-opset17", "--backend", "onnxruntime"], cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "1 passed" in out.strip().splitlines()[-1]
    assert (tmp_path / "reports" / "parity.json").is_file()


@pytest.mark.slow
def test_model_option_with_a_space_runs_only_the_model_cases(installed, tmp_path):
    from conformance.formats.onnx_export import ExportTarget, export
    import onnx
    import torch

    model = export(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()), (torch.zeros(1, 1, 8, 8),),
                   ExportTarget("torchscript", 17))
    elsewhere = tmp_path / "models" / "tiny.onnx"
    elsewhere.parent.mkdir()
    onnx.save(model, str(elsewhere))
    work = tmp_path / "work"
    work.mkdir()
    result = _run([installed, "-m", "pytest", "--model", elsewhere, "-p", "no:cacheprovider", "-q",
                   "--backend", "onnxruntime-ort", "--reference", "onnxruntime"], cwd=work)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "1 passed" in out.strip().splitlines()[-1], out[-2000:]
    assert "test_onnx_model" in _run([installed, "-m", "pytest", "--model", elsewhere, "--collect-only", "-q",
                                      "-p", "no:cacheprovider"], cwd=work).stdout


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "conformance").rglob("__init__.py")}
    listed = set(config["packages"])
    assert folders - listed == set(), f"add to [tool.setuptools] packages: {sorted(folders - listed)}"
    assert config["package-dir"]["conformance.cases"] == "cases" and (REPO / "cases" / "__init__.py").is_file()


@pytest.mark.slow
def test_gate_runs_from_an_empty_folder(installed, tmp_path):
    """Before: "unrecognized arguments: --reports=reports" (no plugin) and, from docs/, "file or
    directory not found: cases". The gate collects the installed package's cases."""
    result = _run([installed, "-m", "conformance", "gate", "--", "-k", "relu and not prelu and not special",
                   "--exporter", "torchscript", "--opset", "17", "--backend", "onnxruntime",
                   "-p", "no:cacheprovider"], cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "conformance gate: PASS" in out
    assert (tmp_path / "reports" / "junit.xml").is_file() and (tmp_path / "reports" / "report.html").is_file()


UNRELATED = '''
import json, os, sys
from hypothesis import given, settings, strategies as st

RUN = []


@given(st.integers())
def test_a_users_property(x):
    RUN.append(x)


def test_dump_what_the_run_looks_like():
    heavy = [m for m in ("torch", "onnxruntime", "onnx", "matplotlib", "scipy", "conformance.engine.harness")
             if m in sys.modules]
    print("STATE " + json.dumps({"examples": len(RUN), "profile": settings.get_current_profile_name(),
                                 "env": dict(os.environ), "heavy": heavy}))
'''


def _unrelated_state(installed, folder, *plugin_args) -> tuple[dict, str]:
    result = _run([installed, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *plugin_args, "test_unrelated.py"],
                  cwd=folder)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    line = next(line for line in out.splitlines() if line.startswith("STATE ") or ".STATE " in line)
    return json.loads(line.split("STATE ", 1)[1]), out


@pytest.mark.slow
def test_installed_plugin_leaves_another_projects_run_alone(installed, tmp_path):
    """Another project's suite, run where the wheel is installed: its hypothesis test runs under
    hypothesis' own profile (100 examples), its environment is untouched, no runtime is imported,
    no header or report appears: the same as with the plugin disabled."""
    (tmp_path / "test_unrelated.py").write_text(UNRELATED)
    plugged, out = _unrelated_state(installed, tmp_path)
    unplugged, _ = _unrelated_state(installed, tmp_path, "-p", "no:conformance.plugin")
    assert plugged["examples"] == unplugged["examples"] == 100
    assert plugged["profile"] == unplugged["profile"]
    assert plugged["env"] == unplugged["env"]
    # Other plugins of this environment may import what they like; this one adds nothing.
    assert plugged["heavy"] == unplugged["heavy"] and "conformance.engine.harness" not in plugged["heavy"]
    shown = "\n".join(line for line in out.splitlines() if "STATE " not in line)
    assert "conformance" not in shown and not (tmp_path / "reports").exists(), shown
    # Still registered: its options are known, and given one the suite wakes up.
    helped = _run([installed, "-m", "pytest", "--help"], cwd=tmp_path).stdout
    assert "--backend=NAME" in helped and "--model=PATH" in helped
