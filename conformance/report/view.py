"""One view model of a report, rendered through Jinja2 templates into both HTML and Markdown.

Everything a reader sees (the verdict, what failed, what was not run, the parity matrix, the
latency table, the baseline comparison) is worked out here, once; ``templates/report.html.j2``
and ``templates/summary.md.j2`` only lay it out. The two outputs cannot drift apart in content.
"""

from __future__ import annotations

import re
from pathlib import Path

from conformance.report.devices import compare_devices
from conformance.report.latency_rows import format_seconds
from conformance.report.parity_rows import cell_text, matrix, suite_checks

#: Lines where pytest's output tail stops being the failure message (hypothesis' notes, source).
_TAIL_MARKERS = re.compile(r"^(Falsifying example|Failing test case|Draw \d+ |You can reproduce|Trying example|"
                           r"Explanation:|\+ Exception Group|The above exception)")


def one_screen(message: str, max_lines: int = 25) -> str:
    """The one-screen failure message: the record's message as it is, or, from pytest's long
    output, the assertion's own lines (``E   ...``) without hypothesis' draws or the source."""
    lines = (message or "").strip("\n").splitlines()
    errors = [line[4:] if line.startswith("E   ") else line[1:].lstrip() for line in lines if line.startswith("E ")]
    body = errors or lines
    for i, line in enumerate(body):
        if _TAIL_MARKERS.match(line.strip()):
            body = body[:i]
            break
    body = body or lines[-max_lines:]
    return "\n".join(body[:max_lines]).strip()


def detail(row: dict) -> str:
    """One line on a failing parity row: the error against the tolerance, else the message."""
    if row.get("shape_error"):
        return row["shape_error"]
    if row.get("max_abs") is not None and (row.get("margin") or 0) >= 1:
        text = (f"max abs error {row['max_abs']:.3g} ({row['margin']:.1f}× the tolerance {row['tolerance']:.2g}), "
                f"max rel {row['max_rel']:.3g}, {row['ulp']} ULP at {row['worst_index']}")
        oracle = row.get("oracle")
        if oracle:
            text += (f"; float64 oracle: backend err {oracle['backend_error']:.3g}, "
                     f"torch err {oracle['reference_error']:.3g}")
        if row.get("cause"):
            text += f"; cause: {row['cause']}"
        if row.get("placement_missed"):
            text += f"; placement: {row['placement_check']}"
        return text
    first = [line for line in one_screen(row.get("message") or "").splitlines() if line.strip()]
    return first[0][:200] if first else "failed"


def ratio_text(row: dict) -> str:
    """Latency as a multiple of the PyTorch reference's (below 1: faster than PyTorch)."""
    if row["reference"]:
        return "reference"
    return f"{row['ratio']:.2f}×" if row.get("ratio") else ""


def peak_text(row: dict) -> str:
    """Share of the measured peak, never above 100%: a backend past the peak is marked ``*``."""
    share = row.get("peak_share")
    if not share:
        return ""
    return "100%*" if share > 1 else f"{share:.0%}"


#: The report's figures (``build.write_report`` makes them; a missing one is left out).
FIGURES = ("latency_bars", "latency_distributions", "error_histograms")

PEAK_NOTE = ("* above the peak: the peak is torch.mm's best round, measured once in this run; a backend whose "
             "kernels beat torch.mm, or a peak measured while the machine was busier, reads past 100%. Clipped.")


def _cell(row: dict | None, before: dict, cpus: dict) -> dict:
    old = before.get(row["nodeid"]) if row else None
    status = row["status"] if row else "skip"
    style = ""
    if row is not None and status == "pass":
        margin = min(row.get("margin") or 0.0, 1.0)
        # green at 0% of the tolerance, through yellow, to amber at 100%: closeness at a glance
        style = f"background:hsl({130 - 90 * margin:.0f},65%,{88 - 10 * margin:.0f}%)"
    return {"text": cell_text(row), "cls": status if status != "pass" else "", "style": style,
            "tooltip": _tooltip(row, cpus), "was": cell_text(old) if old else "",
            "changed": bool(old and row and old["status"] != row["status"])}


def _tooltip(row: dict | None, cpus: dict | None = None) -> str:
    if row is None:
        return "not run"
    parts = [row["nodeid"], f"{row['examples']} examples, {row['failures']} failing"]
    if cpus and row.get("machine") in cpus:
        parts.append(f"ran on {cpus[row['machine']]}")
    if row.get("qtol") and row.get("max_steps") is not None:  # an int8 case, judged in steps
        sqnr = f", SQNR {row['sqnr']:.1f} dB vs float32" if row.get("sqnr") is not None else ""
        parts.append(f"int8: max error {row['max_steps']:.3g} steps (qtol {row['qtol']}), mean signed error "
                     f"{row['mean_steps']:+.3g} steps{sqnr}")
    elif row.get("max_abs") is not None:
        parts.append(f"max abs {row['max_abs']:.3g} (tolerance {row['tolerance']:.2g}), max rel "
                     f"{row['max_rel']:.3g}, {row['ulp']} ULP at {row['worst_index']}")
    if row.get("oracle"):
        parts.append(f"float64 oracle: backend err {row['oracle']['backend_error']:.3g}, "
                     f"torch float32 err {row['oracle']['reference_error']:.3g}")
    if row.get("reason"):
        parts.append(f"expected failure: {row['reason']}")
    return "\n".join(parts)


def _matrix(report: dict) -> dict | None:
    rows = report["parity"]
    if not rows:
        return None
    before = (report["comparison"] or {}).get("baseline_parity", {})
    labels, columns, cells = matrix(rows)
    return {"columns": columns, "suite": suite_checks(rows),
            "rows": [{"label": label, "cells": [_cell(cells.get((label, c)), before, report["meta"].get("cpus") or {})
                                                for c in columns]}
                     for label in labels]}


def _latency(report: dict) -> dict | None:
    rows = report["latency"]
    if not rows:
        return None
    comparison = report["comparison"] or {}
    changes = {c["fullname"]: c for c in comparison.get("latency", [])}
    out = []
    for r in rows:
        c = changes.get(r["fullname"])
        out.append({"group": r["group"], "backend": r["backend"], "device": r.get("measured_on") == "device",
                    "median": format_seconds(r["median"]), "iqr": format_seconds(r["iqr"]),
                    "ops": f"{r['ops']:.1f}", "ratio": ratio_text(r), "rounds": r.get("rounds", 0),
                    "gflops": f"{r['gflops']:.1f}" if r.get("gflops") else "", "peak": peak_text(r),
                    "change": None if c is None else {
                        "before": format_seconds(c["before"]), "text": f"{c['change']:+.0%} {_basis(c)}",
                        "verdict": c["verdict"], "why": c.get("why", ""), "rule": rule_of(c)}})
    return {"rows": out, "peak": report["meta"].get("peak"), "compared": bool(comparison),
            "peak_note": PEAK_NOTE if any(r.get("peak_share") and r["peak_share"] > 1 for r in rows) else ""}


def rule_of(change: dict) -> str:
    """The rule that judged a change (``conformance.report.slowdown.RULES``); reports saved
    before rules had names are read from their basis."""
    if change.get("rule"):
        return change["rule"]
    basis = change.get("basis", "")
    return "cpu" if basis.startswith("CPU") else "reference" if "reference of each run" in basis else "wall"


def _basis(change: dict) -> str:
    """What a change column's number measures, in a word (the reason has it in full)."""
    return {"paired": "vs ref rounds", "cpu": "CPU", "reference": "vs ref"}.get(rule_of(change), "wall")


def _judged(report: dict) -> list[dict]:
    """Each compared latency case: its verdict, the rule that judged it (in words) and why."""
    from conformance.report.slowdown import RULES

    return [{"fullname": c["fullname"], "verdict": c["verdict"], "rule": rule_of(c),
             "rule_text": RULES.get(rule_of(c), ""), "why": c.get("why", "")}
            for c in (report["comparison"] or {}).get("latency", []) if c["verdict"] != "reference"]


def _slower(change: dict) -> dict:
    return {"fullname": change["fullname"], "before": format_seconds(change["before"]),
            "after": format_seconds(change["after"]), "why": change.get("why", ""),
            "limit": f"{change['threshold']:.0%}"}


def build_view(report: dict, figures: dict[str, Path] | None = None) -> dict:
    """The view model both templates render (``figures``: name -> PNG path)."""
    v, rows = report["verdict"], report["parity"]
    tally = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "xfail", "skip")}
    failing = [r for r in rows if r["status"] == "fail"]
    return {
        "ok": v["ok"], "word": v.get("word") or ("PASS" if v["ok"] else "FAIL"), "headline": v["headline"],
        "hint": v.get("hint", ""),
        "tiles": [("passed", tally["pass"]), ("failed", tally["fail"]), ("expected failures", tally["xfail"]),
                  ("skipped", tally["skip"]), ("latency cases", len(report["latency"])),
                  ("slower than baseline", len(v["slower"]) if report["comparison"] else "–"),
                  ("latency inconclusive", len(v.get("inconclusive", [])) if report["comparison"] else "–"),
                  ("baseline cases not run", len(v.get("missing", [])) if report["comparison"] else "–")],
        "failed": [{"nodeid": r["nodeid"], "detail": detail(r), "reproducer": r["reproducer"]} for r in failing],
        "errors": v.get("errors", []),
        "slower": [_slower(c) for c in v["slower"]],
        "inconclusive": [_slower(c) for c in v.get("inconclusive", [])], "judged": _judged(report),
        "missing": v.get("missing", []), "missing_fails": v.get("missing_fails", False),
        "matrix": _matrix(report), "decimal": report["meta"]["decimal"],
        "tolerance": f"{1.5 * 10 ** -report['meta']['decimal']:.2g}",
        "latency": _latency(report), "comparison": report["comparison"],
        "max_slowdown": f"{report['meta']['max_slowdown']:.0%}",
        "details": [{"nodeid": r["nodeid"], "reproducer": r["reproducer"], "message": one_screen(r["message"])}
                    for r in rows if r["status"] in ("fail", "xfail")],
        "expected": [r for r in rows if r["status"] == "xfail"], "stale": report["stale"],
        "placements": [{"nodeid": r["nodeid"], "check": r.get("placement_check", ""),
                        "text": ", ".join(f"{where}: {n}" for where, n in sorted((r["placement"] or {}).items()))}
                       for r in rows if r.get("placement") or r.get("placement_check")],
        "placement_checks": {"checked": sum(bool(r.get("placement_check")) for r in rows),
                             "missed": [{"nodeid": r["nodeid"], "check": r["placement_check"]}
                                        for r in rows if r.get("placement_missed")]},
        "run": report["meta"].get("header", []) + [
            f"created {report['meta']['created']}" + (f", run {report['meta']['run_id']}"
                                                       if report["meta"].get("run_id") else ""),
            f"machine {report['meta'].get('machine') or 'unknown'}, commit {report['meta'].get('commit') or 'unknown'}"],
        "figures": {name: (figures or {}).get(name) for name in FIGURES},
        "cpus": _by_cpu(report),
        "devices": compare_devices(rows),
    }


def _by_cpu(report: dict) -> list[dict]:
    """Where merged runs ran on different CPUs: each CPU and the cases it ran (else empty)."""
    cpus = report["meta"].get("cpus") or {}
    if not cpus:
        return []
    return [{"machine": text, "cases": [r["nodeid"] for r in report["parity"] if r.get("machine") == key]}
            for key, text in cpus.items()]


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("conformance.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def _embed(path) -> str:
    import base64

    if not path or not Path(path).exists():
        return ""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def render_html(report: dict, figures: dict[str, Path] | None = None) -> str:
    """The whole report as one self-contained HTML page (figures embedded)."""
    env = _environment()
    env.filters["embed"] = _embed
    return env.get_template("report.html.j2").render(build_view(report, figures))


def render_markdown(report: dict) -> str:
    """The summary as Markdown, for a CI job summary or a pull-request comment."""
    return _environment().get_template("summary.md.j2").render(build_view(report))
