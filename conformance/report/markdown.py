"""The Markdown summary: fit for a CI job summary or a pull-request comment (verdict first,
then the parity matrix, latency table, baseline comparison, expected and stale entries)."""

from __future__ import annotations

from conformance.report.latency import format_seconds
from conformance.report.parity import cell_text, matrix, suite_checks

ICON = {True: "✅", False: "❌"}


def render_markdown(report: dict) -> str:
    """The whole summary as one Markdown string."""
    sections = [_headline(report), _failures(report), _matrix(report), _latency(report),
                _comparison(report), _expected(report), _stale(report)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _headline(report: dict) -> str:
    v = report["verdict"]
    word = "PASS" if v["ok"] else "FAIL"
    return f"## {ICON[v['ok']]} Conformance: {word}\n\n{v['headline']}"


def _failures(report: dict) -> str:
    failed = [r for r in report["parity"] if r["status"] == "fail"]
    slower = report["verdict"]["slower"]
    lines = []
    for row in failed:
        detail = _detail(row)
        where = f" — reproducer `{row['reproducer']}`" if row["reproducer"] else ""
        lines.append(f"- ❌ `{row['nodeid']}`: {detail}{where}")
    for change in slower:
        lines.append(f"- 🐢 `{change['fullname']}`: {format_seconds(change['before'])} → "
                     f"{format_seconds(change['after'])} ({change['change']:+.0%}, limit {change['threshold']:.0%}, quartiles apart)")
    if lines and report["verdict"].get("hint"):
        lines.append(f"- note: {report['verdict']['hint']}")
    return "**What failed**\n\n" + "\n".join(lines) if lines else ""


def _detail(row: dict) -> str:
    if row.get("shape_error"):
        return row["shape_error"]
    if row.get("max_abs") is not None and row.get("margin", 0) >= 1:
        text = (f"max abs error {row['max_abs']:.3g} ({row['margin']:.1f}× the tolerance {row['tolerance']:.2g}), "
                f"max rel {row['max_rel']:.3g}, {row['ulp']} ULP at {row['worst_index']}")
        oracle = row.get("oracle")
        if oracle:
            text += (f"; float64 oracle: backend err {oracle['backend_error']:.3g}, "
                     f"torch err {oracle['reference_error']:.3g}")
        return text
    last = [line for line in (row.get("message") or "").splitlines() if line.strip()]
    return last[0][:200] if last else "failed"


def _matrix(report: dict) -> str:
    rows = report["parity"]
    if not rows:
        return ""
    labels, columns, cells = matrix(rows)
    decimal = report["meta"]["decimal"]
    heads = [c.replace(" · ", "<br>", 1).replace(" · opset ", " ") for c in columns]
    lines = [f"### Parity — share of the tolerance used (decimal={decimal}: |Δ| < {1.5 * 10 ** -decimal:.2g})",
             "", "| case | " + " | ".join(heads) + " |", "|---|" + "---|" * len(columns)]
    before = (report["comparison"] or {}).get("baseline_parity", {})
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(_cell(cells.get((label, c)), before) for c in columns) + " |")
    lines.append("")
    lines.append("✓ pass (worst example's error as a share of the tolerance) · ✗ fail (times the tolerance) · "
                 "xfail listed expected failure · – unsupported export")
    if suite_checks(rows):
        lines += ["", suite_checks(rows)]
    return "\n".join(lines)


def _cell(row: dict | None, before: dict) -> str:
    """A cell, with the baseline's status when it differs (a newly failing or fixed case)."""
    old = before.get(row["nodeid"]) if row else None
    if old and old["status"] != row["status"]:
        return f"{cell_text(row)} (was {cell_text(old)})"
    return cell_text(row)


def _latency(report: dict) -> str:
    rows = report["latency"]
    if not rows:
        return ""
    comparison = report["comparison"] or {}
    changes = {c["fullname"]: c for c in comparison.get("latency", [])}
    peak = (report["meta"].get("peak") or {}).get("gflops")
    head = "| model | backend | median | IQR | calls/s | vs PyTorch | GFLOP/s | of peak |"
    if comparison:
        head += f" {comparison['baseline']} | change |"
    lines = ["### Latency" + (f" (peak {peak:.0f} GFLOP/s measured in this run)" if peak else ""), "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["group"], r["backend"] + (" (timed on device)" if r.get("measured_on") == "device" else ""),
                 format_seconds(r["median"]), format_seconds(r["iqr"]),
                 f"{r['ops']:.1f}", ratio_text(r), f"{r['gflops']:.1f}" if r.get("gflops") else "",
                 f"{r['peak_share']:.0%}" if r.get("peak_share") else ""]
        if comparison:
            c = changes.get(r["fullname"])
            mark = {"slower": " 🐢", "faster": " 🚀", "same": ""}[c["verdict"]] if c else ""
            cells += [format_seconds(c["before"]) if c else "new", f"{c['change']:+.0%}{mark}" if c else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_text(row: dict) -> str:
    """Latency as a multiple of the PyTorch reference's (below 1: faster than PyTorch)."""
    if row["reference"]:
        return "reference"
    return f"{row['ratio']:.2f}×" if row.get("ratio") else ""


def _comparison(report: dict) -> str:
    comparison = report["comparison"]
    if not comparison:
        return ""
    lines = [f"### Compared with baseline `{comparison['baseline']}` ({comparison.get('created') or '?'})", ""]
    lines += [f"- newly failing: `{x['nodeid']}` (was {x['was']})" for x in comparison["newly_failing"]]
    lines += [f"- error grew: `{x['nodeid']}` {x['before']:.3g} → {x['after']:.3g} "
              f"({x['margin_after']:.0%} of tolerance)" for x in comparison["errors_grew"]]
    lines += [f"- fixed: `{x['nodeid']}`" for x in comparison["fixed"]]
    if len(lines) == 2:
        lines.append("- no case newly fails, no error grew")
    return "\n".join(lines)


def _expected(report: dict) -> str:
    rows = [r for r in report["parity"] if r["status"] == "xfail"]
    if not rows:
        return ""
    return "**Expected failures**\n\n" + "\n".join(f"- `{r['nodeid']}`: {r['reason']}" for r in rows)


def _stale(report: dict) -> str:
    if not report["stale"]:
        return ""
    return ("**⚠ Stale entries in the expected-failures file** (delete them)\n\n"
            + "\n".join(f"- {s['entry']} — {s['why']}" for s in report["stale"]))
