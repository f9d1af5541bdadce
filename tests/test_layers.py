"""The folders are the layers: imports point one way (README, "Architecture"). Read from the
code itself (every import statement, lazy ones inside functions included), so a shortcut added
anywhere fails here, naming the file and the import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "conformance"

#: Folder -> the conformance folders it must not import.
FORBIDDEN = {
    "engine": {"pytest", "report", "commands", "pipeline", "byom"},  # localize: called on a failure
    "backends": {"engine", "pytest", "report", "commands", "draw"},
    "formats": {"engine", "pytest", "report", "commands", "backends"},
    "draw": {"engine", "pytest", "report", "commands", "backends"},
    "report": {"pytest", "commands", "backends", "device"},
    "device": {"engine", "pytest", "report", "commands"},
}
PYTEST_PACKAGES = {"pytest", "_pytest", "xdist", "pytest_benchmark"}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_only_the_pytest_folder_imports_pytest():
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "pytest" or rel.name == "private_apis.py":  # the wrapped private APIs
            continue
        offenders += [f"{rel}: import {name}" for name in _imports(path) if name.split(".")[0] in PYTEST_PACKAGES]
    assert offenders == []


def test_each_layer_imports_only_below_it():
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE)
        forbidden = FORBIDDEN.get(rel.parts[0], set()) if len(rel.parts) > 1 else set()
        if rel.parts[:2] == ("device", "emulator"):
            continue  # the loopback device is a tool beside the product (its own test keeps it apart)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "conformance" and len(parts) > 1 and parts[1] in forbidden:
                offenders.append(f"{rel}: import {name}")
    assert offenders == []


def test_the_rules_see_a_violation(tmp_path):
    """The scan is not vacuous: a lazy import inside a function is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from conformance.report import build\n    import pytest\n")
    assert list(_imports(bad)) == ["conformance.report", "pytest"]
