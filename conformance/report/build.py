"""Assembling a run's report (parity rows, latency rows, baseline comparison, verdict) and
writing it: ``report.json``, ``summary.md``, ``report.html`` and ``plots/*.png``, all atomically.

Everything here works on plain data (the recorder's JSON, pytest-benchmark's JSON), so the
pytest plugin, ``conformance gate`` and ``conformance report`` share it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from conformance.record import atomic_write
from conformance.report import baseline as baselines
from conformance.report import plots
from conformance.report.expected import Expectations
from conformance.report.latency import latency_rows
from conformance.report.parity import counts, parity_rows

DEFAULT_MAX_SLOWDOWN = 0.10


def build_report(*, parity: dict | None, bench: dict | None, outcomes: dict | None = None,
                 expectations: Expectations | None = None, reports: Path = Path("reports"),
                 baseline: str | None = None, max_slowdown: float = DEFAULT_MAX_SLOWDOWN) -> dict:
    """The whole report as one JSON-able dict (see the module docstring)."""
    parity = parity or {"meta": {}, "cases": []}
    rows = parity_rows(parity, outcomes, reproducers=reports / "reproducers")
    _apply_expectations(rows, expectations)
    latency = latency_rows(bench)
    decimal = int(parity.get("meta", {}).get("decimal", 3))
    report = {
        "meta": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "header": parity.get("meta", {}).get("header", []), "decimal": decimal,
                 "peak": (bench or {}).get("conformance_peak"), "max_slowdown": max_slowdown,
                 "machine": (bench or {}).get("machine_info", {}).get("node"),
                 "commit": (bench or {}).get("commit_info", {}).get("id")},
        "parity": rows,
        "latency": latency,
        "comparison": None,
        "stale": (expectations or Expectations()).stale(rows, decimal),
    }
    if baseline:
        report["comparison"] = compare_with(reports / "baselines", baseline, rows, latency, max_slowdown)
    report["verdict"] = verdict(report)
    return report


def _apply_expectations(rows: list[dict], expectations: Expectations | None) -> None:
    """A failure the file lists is an expected failure (the plugin already did this during the
    run; ``conformance report`` on saved files needs it here)."""
    for row in rows:
        entry = expectations.xfail_for(row) if expectations and row["status"] == "fail" else None
        if entry is not None:
            row["status"], row["reason"] = "xfail", entry.reason


def compare_with(root: Path, spec: str, rows: list[dict], latency: list[dict], max_slowdown: float) -> dict:
    path = baselines.find_baseline(root, spec)
    base = baselines.load_baseline(path)
    return {"baseline": path.name, "path": str(path), "created": base.get("meta", {}).get("created"),
            "latency": baselines.compare_latency(base.get("latency", []), latency, max_slowdown),
            "baseline_latency": base.get("latency", []),
            "baseline_parity": {r["nodeid"]: r for r in base.get("parity", [])},
            **baselines.compare_parity(base.get("parity", []), rows)}


def verdict(report: dict) -> dict:
    """Pass unless a parity case failed (not an expected failure) or a case got slower."""
    rows, comparison = report["parity"], report["comparison"] or {}
    failed = [r["nodeid"] for r in rows if r["status"] == "fail"]
    slower = [c for c in comparison.get("latency", []) if c["verdict"] == "slower"]
    tally = counts(rows)
    parts = [f"{len(rows)} parity cases ({tally['pass']} passed, {tally['fail']} failed, "
             f"{tally['xfail']} expected failures, {tally['skip']} skipped)"] if rows else []
    if report["latency"]:
        parts.append(f"{len(report['latency'])} latency cases")
    hint = ""
    if comparison:
        pct = report["meta"]["max_slowdown"]
        parts.append(f"{len(slower)} slower than {comparison['baseline']} by more than {pct:.0%}"
                     if slower else f"no slowdown beyond {pct:.0%} vs {comparison['baseline']}")
        drift = [c for c in comparison.get("latency", []) if c.get("reference") and c["change"] > pct]
        if slower and drift:
            hint = (f"the PyTorch reference is {max(c['change'] for c in drift):+.0%} slower too: this machine "
                    "may be busier than when the baseline was saved (rerun on a quiet machine)")
    return {"ok": not failed and not slower, "failed": failed, "slower": slower,
            "stale": len(report["stale"]), "headline": "; ".join(parts), "hint": hint}


def write_report(report: dict, reports: Path) -> dict[str, Path]:
    """Write report.json, summary.md, report.html and the plots; returns their paths."""
    from conformance.report.html import render_html
    from conformance.report.markdown import render_markdown

    comparison = report["comparison"] or {}
    figures = {
        "latency_bars": plots.latency_bars(report["latency"], reports / "plots" / "latency_bars.png",
                                           comparison.get("baseline_latency")),
        "latency_distributions": plots.latency_distributions(
            report["latency"], reports / "plots" / "latency_distributions.png"),
        "error_histograms": plots.error_histograms(report["parity"], reports / "plots" / "error_histograms.png"),
    }
    figures = {k: v for k, v in figures.items() if v}
    paths = {"json": reports / "report.json", "markdown": reports / "summary.md", "html": reports / "report.html"}
    atomic_write(paths["json"], json.dumps(report, indent=1, default=str))
    atomic_write(paths["markdown"], render_markdown(report))
    atomic_write(paths["html"], render_html(report, figures))
    return {**paths, **figures}


def save_run(reports: Path, name: str, report: dict, parity: dict | None, bench: dict | None) -> Path:
    """Keep this run as the next numbered baseline called ``name``."""
    files = {"report.json": json.dumps(report, indent=1, default=str)}
    if parity:
        files["parity.json"] = json.dumps(parity, indent=1, default=str)
    if bench:
        files["benchmark.json"] = json.dumps(bench, indent=1, default=str)
    return baselines.save_baseline(reports / "baselines", name, files)
