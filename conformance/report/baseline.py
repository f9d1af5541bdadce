"""Saved runs (baselines) and comparing a run against one.

A baseline is a folder ``reports/baselines/NNNN_NAME/`` holding the run's ``report.json`` (parity
and latency rows), pytest-benchmark's JSON and the recorder's ``parity.json``. Numbers only grow,
like pytest-benchmark's storage: saving ``release`` twice gives ``0001_release`` and
``0002_release``, never an overwrite. The folder is written under a temporary name and renamed,
so a reader never sees half a baseline.

``--baseline NAME`` picks the newest baseline called NAME (or ``NNNN``, ``NNNN_NAME``, a path).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from conformance.report import slowdown

#: An error "grew" when it at least doubled and now uses at least this share of the tolerance
#: (doubling from 1e-7 to 2e-7 is noise in the last bits, not news).
GROWTH_FACTOR = 2.0
GROWTH_FLOOR = 0.05


class BaselineError(Exception):
    """A baseline cannot be found, read or saved (one-line message)."""


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    if not slug:
        raise BaselineError(f"baseline name {name!r} has no usable characters")
    return slug


def _numbered(root: Path) -> list[tuple[int, Path]]:
    found = []
    for path in root.glob("[0-9][0-9][0-9][0-9]_*") if root.is_dir() else []:
        if path.is_dir():
            found.append((int(path.name[:4]), path))
    return sorted(found)


def save_baseline(root: Path, name: str, files: dict[str, str]) -> Path:
    """Write ``files`` (file name -> text) as the next numbered baseline called ``name``."""
    slug = _slug(name)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".saving-"))
    try:
        for file_name, text in files.items():
            (tmp / file_name).write_text(text)
        for _ in range(100):  # another run may take the same number: try the next one
            number = (_numbered(root)[-1][0] if _numbered(root) else 0) + 1
            target = root / f"{number:04d}_{slug}"
            try:
                os.rename(tmp, target)  # fails (never overwrites) if target exists and is not empty
                return target
            except OSError:
                if not target.exists():
                    raise
        raise BaselineError(f"could not find a free number for baseline {name!r} in {root}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def find_baseline(root: Path, spec: str) -> Path:
    """Resolve ``NAME``, ``NNNN``, ``NNNN_NAME`` or a folder path to a baseline folder."""
    direct = Path(spec)
    if (direct / "report.json").is_file():
        return direct
    saved = _numbered(root)
    if spec.isdigit():
        matches = [p for n, p in saved if n == int(spec)]
    else:
        matches = [p for _, p in saved if p.name == spec or p.name[5:] == _slug(spec)]
    if not matches:
        known = ", ".join(p.name for _, p in saved) or "none saved yet"
        raise BaselineError(f"no baseline {spec!r} in {root} (known: {known}); save one with --save-baseline")
    return matches[-1]


def load_baseline(path: Path) -> dict:
    try:
        return json.loads((path / "report.json").read_text())
    except (OSError, ValueError) as exc:
        raise BaselineError(f"baseline {path} is unreadable: {exc}") from None


def compare_latency(base: list[dict], current: list[dict], max_slowdown: float) -> list[dict]:
    """Per benchmark in both runs: the change and whether it is a slowdown (the rule is in
    ``conformance.report.slowdown``: normalized by the run's PyTorch reference, beyond the
    limit *and* significant by a Mann-Whitney U test)."""
    before = {row["fullname"]: row for row in base}
    changes = []
    for row in current:
        old = before.get(row["fullname"])
        if not old or not old["median"] or not row["median"]:
            continue
        judged = slowdown.judge(old, row, base, current, max_slowdown)
        changes.append({"fullname": row["fullname"], "group": row["group"], "backend": row["backend"],
                        "reference": row.get("reference", False), "before": old["median"], "after": row["median"],
                        "threshold": max_slowdown, **judged})
    return changes


def missing_cases(base: dict, parity: list[dict], latency: list[dict]) -> dict[str, list[str]]:
    """Baseline cases this run did not run, by node id: the gate's PASS covers only what ran.
    A backend renamed since the baseline shows up here too (its old node ids are gone)."""
    ran = {r["nodeid"] for r in parity}
    timed = {r["fullname"] for r in latency}
    return {"parity": sorted(r["nodeid"] for r in base.get("parity", []) if r["nodeid"] not in ran),
            "latency": sorted(r["fullname"] for r in base.get("latency", []) if r["fullname"] not in timed)}


def compare_parity(base: list[dict], current: list[dict]) -> dict[str, list[dict]]:
    """Cases that newly fail, that were fixed, and whose error grew (see GROWTH_FACTOR)."""
    before = {row["nodeid"]: row for row in base}
    newly, fixed, grew = [], [], []
    for row in current:
        old = before.get(row["nodeid"])
        was = old["status"] if old else "absent"
        if row["status"] == "fail" and was != "fail":
            newly.append({"nodeid": row["nodeid"], "was": was})
        elif row["status"] == "pass" and was == "fail":
            fixed.append({"nodeid": row["nodeid"]})
        if old and _grew(old.get("margin"), row.get("margin")):
            grew.append({"nodeid": row["nodeid"], "before": old["max_abs"], "after": row["max_abs"],
                         "margin_before": old["margin"], "margin_after": row["margin"]})
    return {"newly_failing": newly, "fixed": fixed, "errors_grew": grew}


def _grew(before: float | None, after: float | None) -> bool:
    if before is None or after is None:
        return False
    return after >= GROWTH_FLOOR and after >= GROWTH_FACTOR * before
