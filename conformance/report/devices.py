"""Devices side by side: each case on each ADB device of the run, compared with each other.

Every runtime of a (case, format) draws the same examples in a run, so two devices running a
case ran the same inputs: the same verdict and the same worst error (against the PyTorch
reference) on both say they computed alike; a different verdict or error says where they part.
Each device's largest difference from the same runtime on this host (``host_diff``) is shown too.
"""

from __future__ import annotations

from conformance.report.parity_rows import row_label


def _place(row: dict) -> str:
    return str(row.get("place") or "host")


def _error(row: dict) -> float | None:
    return row.get("max_abs")


def compare_devices(rows: list[dict]) -> dict | None:
    """``{"devices": [...], "rows": [...], "differ": n}`` where the run had two or more devices,
    else None. A row: the case and format, each device's status, error and host difference, and
    whether the devices agree (same status, same worst error) or by how much their errors part."""
    devices = sorted({_place(r) for r in rows if _place(r).startswith("adb:")})
    if len(devices) < 2:
        return None
    groups: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        if _place(row) in devices:
            key = (row_label(row), row["exporter"], row["opset"])
            groups.setdefault(key, {})[_place(row)] = row
    out = []
    for (label, exporter, opset), by_device in groups.items():
        if len(by_device) < 2:
            continue
        present = list(by_device.values())
        errors = [_error(r) for r in present if _error(r) is not None]
        same_status = len({r["status"] for r in present}) == 1
        spread = (max(errors) - min(errors)) if len(errors) == len(present) and errors else None
        out.append({
            "case": label, "format": f"{exporter} opset {opset}" if opset else exporter,
            "cells": [_cell(by_device.get(d)) for d in devices],
            "agree": same_status and spread == 0.0,
            "note": ("same verdict and worst error" if same_status and spread == 0.0 else
                     "verdicts differ" if not same_status else
                     f"worst errors differ by {spread:.3g}" if spread is not None else "not all compared"),
        })
    return {"devices": [d.removeprefix("adb:") for d in devices], "rows": out,
            "differ": sum(not r["agree"] for r in out)}


def _cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    text = {"pass": "✓", "fail": "✗", "xfail": "xfail", "skip": "–"}[row["status"]]
    if _error(row) is not None:
        text += f" {_error(row):.3g}"
    diff = row.get("host_diff") or {}
    if diff.get("max_abs") is not None:
        text += f" (host Δ {diff['max_abs']:.3g})"
    return text
