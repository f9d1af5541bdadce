"""Assembling a run's report (parity rows, latency rows, baseline comparison, verdict) and
writing it: ``report.json``, ``summary.md``, ``report.html`` and ``plots/*.png``, all atomically.

Everything here works on plain data (the recorder's JSON, pytest-benchmark's JSON), so the
pytest plugin, ``conformance gate`` and ``conformance report`` share it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from conformance.engine.record import atomic_write
from conformance.report import baseline as baselines
from conformance.report import plots
from conformance.report.expected import Expectations
from conformance.report.latency_rows import latency_rows
from conformance.report.merge import cpu_notes
from conformance.report.parity_rows import counts, parity_rows

from conformance.report.options import DEFAULT_MAX_SLOWDOWN  # noqa: E402


def build_report(*, parity: dict | None, bench: dict | None, outcomes: dict | None = None,
                 expectations: Expectations | None = None, reports: Path = Path("reports"),
                 baseline: str | None = None, max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
                 allow_missing: bool = False, errors: list[str] | None = None) -> dict:
    """The whole report as one JSON-able dict (see the module docstring).

    ``allow_missing``: baseline cases this run did not run are listed but do not fail it.
    ``errors``: node ids of other tests that failed or errored (a latency case that crashed):
    they fail the verdict too, so the report says what pytest's exit status says."""
    parity = parity or {"meta": {}, "cases": []}
    rows = parity_rows(parity, outcomes, reproducers=reports / "reproducers")
    latency = latency_rows(bench)
    decimal = int(parity.get("meta", {}).get("decimal", 3))
    report = {
        "meta": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "header": parity.get("meta", {}).get("header", []), "decimal": decimal,
                 "peak": (bench or {}).get("conformance_peak"), "max_slowdown": max_slowdown,
                 "allow_missing": allow_missing,
                 "run_id": parity.get("meta", {}).get("run_id") or (bench or {}).get("conformance_run_id")},
        "parity": rows,
        "latency": latency,
        "comparison": None,
        "stale": (expectations or Expectations()).stale(rows, decimal),
        "errors": sorted(set(errors or [])),
    }
    report["meta"].update(_machine_and_commit(bench))
    report["meta"]["cpus"] = cpu_notes(parity)  # merged runs from several CPUs: which ran each case
    if baseline:
        report["comparison"] = compare_with(reports / "baselines", baseline, rows, latency, max_slowdown)
    report["verdict"] = verdict(report)
    return report


def compare_with(root: Path, spec: str, rows: list[dict], latency: list[dict], max_slowdown: float) -> dict:
    path = baselines.find_baseline(root, spec)
    base = baselines.load_baseline(path)
    return {"baseline": path.name, "path": str(path), "created": base.get("meta", {}).get("created"),
            "latency": baselines.compare_latency(base.get("latency", []), latency, max_slowdown),
            "baseline_latency": base.get("latency", []),
            "baseline_parity": {r["nodeid"]: r for r in base.get("parity", [])},
            "missing": baselines.missing_cases(base, rows, latency),
            **baselines.compare_parity(base.get("parity", []), rows)}


def verdict(report: dict) -> dict:
    """Pass unless a parity case failed (not an expected failure), another test failed, a case
    got slower, or baseline cases were not run (unless ``allow_missing``): then FAIL. With
    nothing failed but a latency case the busy machine left undecided, INCONCLUSIVE (not a
    pass: ``ok`` is false; ``word`` says which)."""
    rows, comparison = report["parity"], report["comparison"] or {}
    failed = [r["nodeid"] for r in rows if r["status"] == "fail"]
    errors = [e for e in report.get("errors", []) if e not in failed]
    slower = [c for c in comparison.get("latency", []) if c["verdict"] == "slower"]
    inconclusive = [c for c in comparison.get("latency", []) if c["verdict"] == "inconclusive"]
    gone = comparison.get("missing") or {"parity": [], "latency": []}
    missing = gone["parity"] + gone["latency"]
    tally = counts(rows)
    parts = [f"{len(rows)} parity cases ({tally['pass']} passed, {tally['fail']} failed, "
             f"{tally['xfail']} expected failures, {tally['skip']} skipped)"] if rows else []
    if report["latency"]:
        parts.append(f"{len(report['latency'])} latency cases")
    if errors:
        parts.append(f"{len(errors)} other test{'s' if len(errors) != 1 else ''} failed")
    if missing:
        parts.append(f"{len(missing)} baseline cases not run"
                     + (" (allowed)" if report["meta"].get("allow_missing") else ""))
    if comparison:
        pct = report["meta"]["max_slowdown"]
        if not comparison.get("latency"):
            parts.append(f"no latency case in common with {comparison['baseline']}")
        else:
            parts.append(f"{len(slower)} slower than {comparison['baseline']} by more than {pct:.0%}"
                         if slower else f"no significant slowdown beyond {pct:.0%} vs {comparison['baseline']}")
        if inconclusive:
            parts.append(f"{len(inconclusive)} latency case{'s' if len(inconclusive) != 1 else ''} inconclusive "
                         "(the machine was busy or slower than at the baseline)")
    hint = _latency_hint(comparison, report["latency"], report["meta"]["max_slowdown"], bool(inconclusive))
    missing_fails = bool(missing) and not report["meta"].get("allow_missing")
    fails = bool(failed or errors or slower or missing_fails)
    return {"ok": not fails and not inconclusive, "word": "FAIL" if fails else "INCONCLUSIVE" if inconclusive else "PASS",
            "failed": failed, "errors": errors, "slower": slower, "inconclusive": inconclusive, "missing": missing,
            "missing_fails": missing_fails, "stale": len(report["stale"]), "headline": "; ".join(parts), "hint": hint}


def _latency_hint(comparison: dict, latency: list[dict], pct: float, inconclusive: bool) -> str:
    """Notes on the latency verdicts: the PyTorch reference row's drift since the baseline,
    what an inconclusive case means, and a run too busy to serve as a baseline."""
    notes = []
    drift = [c for c in comparison.get("latency", []) if c.get("reference") and abs(c["raw_change"]) > pct]
    if drift:
        moved = max((c["raw_change"] for c in drift), key=abs)
        notes.append(f"the PyTorch reference ran {moved:+.0%} vs the baseline: this machine is "
                     f"{'busier or slower' if moved > 0 else 'quieter or faster'} than then")
    if inconclusive:
        notes.append("an inconclusive latency case is neither a pass nor a slowdown: rerun on a quieter machine")
    busy = _busy_rounds(latency)
    if busy:
        notes.append(f"{busy[0]['fullname']} met a busy machine ({busy[0]['why']}): saved as a baseline, this run "
                     "would judge nothing (every later latency verdict inconclusive)")
    return "; ".join(notes)


def _busy_rounds(latency: list[dict]) -> list[dict]:
    """This run's latency cases whose timed rounds met a busy machine (their gauges past the
    absolute limits of ``conformance.report.contention``)."""
    from conformance.report.contention import baseline_reasons

    return [{"fullname": row["fullname"], "why": "; ".join(reasons)} for row in latency
            for reasons in [baseline_reasons(row)] if reasons]


def _machine_and_commit(bench: dict | None) -> dict:
    """Machine and commit from pytest-benchmark's JSON, or measured here for parity-only runs."""
    machine = (bench or {}).get("machine_info", {}).get("node")
    commit = (bench or {}).get("commit_info", {}).get("id")
    if not machine:
        import platform

        machine = platform.node() or None
    if not commit:
        commit = git_commit()
    return {"machine": machine, "commit": commit}


def git_commit() -> str | None:
    """This checkout's commit (with ``+dirty`` when it has changes), or None outside git."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def write_report(report: dict, reports: Path) -> dict[str, Path]:
    """Write report.json, summary.md, report.html and the plots; returns their paths."""
    from conformance.report.view import render_html, render_markdown

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
