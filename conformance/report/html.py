"""The HTML report: one self-contained file (figures embedded) that opens from a CI artifact.

A reader sees, top to bottom: a green or red banner with the verdict and counts, what failed
(with reproducer paths), the parity matrix coloured by how much of the tolerance each case used,
the latency table and plots (with the baseline side by side), the baseline comparison, failure
details with error histograms, expected failures, stale entries and the run's versions.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from conformance.report.latency import format_seconds
from conformance.report.markdown import _detail, ratio_text
from conformance.report.parity import cell_text, matrix, suite_checks

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1200px;padding:0 24px 48px;color:#1a202c}
h2{margin-top:36px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.banner{margin:24px 0 8px;padding:18px 24px;border-radius:10px;color:#fff}
.banner.ok{background:#2f855a}.banner.bad{background:#c53030}
.banner h1{margin:0 0 6px;font-size:26px}.banner p{margin:0;opacity:.95}
.tiles{display:flex;gap:12px;margin:14px 0}.tile{flex:1;background:#f7fafc;border-radius:8px;padding:10px 14px}
.tile b{display:block;font-size:22px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}
th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f7fafc;font-weight:600}td:first-child,th:first-child{text-align:left}
td.cell{text-align:center;font-variant-numeric:tabular-nums}
.fail{background:#fed7d7;font-weight:600}.xfail{background:#e9d8fd}.skip{background:#f7fafc;color:#a0aec0}
.slower{color:#c53030;font-weight:600}.faster{color:#2f855a}
code{background:#edf2f7;padding:1px 4px;border-radius:4px;font-size:12px}
pre{background:#f7fafc;padding:10px;overflow-x:auto;font-size:12px;max-height:260px}
img{max-width:100%;border:1px solid #e2e8f0;border-radius:6px;margin:8px 0}
.legend{color:#4a5568;font-size:12px}
"""


def render_html(report: dict, figures: dict[str, Path]) -> str:
    """The whole report as one HTML string (``figures``: name -> PNG path, embedded inline)."""
    body = [_banner(report), _what_failed(report), _matrix(report), _latency(report, figures),
            _comparison(report), _failure_details(report, figures), _expected(report), _run_info(report)]
    title = "Conformance: " + ("PASS" if report["verdict"]["ok"] else "FAIL")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style>"
            f"</head><body>{''.join(b for b in body if b)}</body></html>\n")


def _img(path: Path | None, alt: str) -> str:
    if not path or not Path(path).exists():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'>"


def _banner(report: dict) -> str:
    v, rows = report["verdict"], report["parity"]
    tally = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "xfail", "skip")}
    tiles = [("passed", tally["pass"]), ("failed", tally["fail"]), ("expected failures", tally["xfail"]),
             ("skipped", tally["skip"]), ("latency cases", len(report["latency"])),
             ("slower than baseline", len(v["slower"]) if report["comparison"] else "–")]
    tile_html = "".join(f"<div class='tile'><b>{n}</b>{escape(label)}</div>" for label, n in tiles)
    word = "PASS" if v["ok"] else "FAIL"
    return (f"<div class='banner {'ok' if v['ok'] else 'bad'}'><h1>Conformance: {word}</h1>"
            f"<p>{escape(v['headline'])}</p></div><div class='tiles'>{tile_html}</div>")


def _what_failed(report: dict) -> str:
    items = [f"<li><code>{escape(r['nodeid'])}</code>: {escape(_detail(r))}"
             + (f"<br>reproducer: <code>{escape(r['reproducer'])}</code>" if r["reproducer"] else "") + "</li>"
             for r in report["parity"] if r["status"] == "fail"]
    items += [f"<li class='slower'>slower: <code>{escape(c['fullname'])}</code> {format_seconds(c['before'])} → "
              f"{format_seconds(c['after'])} ({c['change']:+.0%}; limit {c['threshold']:.0%}, quartiles apart)</li>"
              for c in report["verdict"]["slower"]]
    return f"<h2>What failed</h2><ul>{''.join(items)}</ul>" if items else ""


def _cell_class(row: dict | None) -> tuple[str, str]:
    if row is None:
        return "skip", ""
    if row["status"] in ("fail", "xfail", "skip"):
        return row["status"], ""
    margin = min(row.get("margin") or 0.0, 1.0)
    # green at 0% of the tolerance, through yellow, to amber at 100%: closeness at a glance
    return "", f"background:hsl({130 - 90 * margin:.0f},65%,{88 - 10 * margin:.0f}%)"


def _tooltip(row: dict | None) -> str:
    if row is None:
        return "not run"
    parts = [row["nodeid"], f"{row['examples']} examples, {row['failures']} failing"]
    if row.get("max_abs") is not None:
        parts.append(f"max abs {row['max_abs']:.3g} (tolerance {row['tolerance']:.2g}), max rel "
                     f"{row['max_rel']:.3g}, {row['ulp']} ULP at {row['worst_index']}")
    if row.get("oracle"):
        parts.append(f"float64 oracle: backend err {row['oracle']['backend_error']:.3g}, "
                     f"torch float32 err {row['oracle']['reference_error']:.3g}")
    if row.get("reason"):
        parts.append(f"expected failure: {row['reason']}")
    return escape("\n".join(parts), quote=True)


def _was(row: dict | None, before: dict) -> str:
    """The baseline's cell under this run's, so both runs read side by side."""
    old = before.get(row["nodeid"]) if row else None
    return f"<br><small>was {escape(cell_text(old))}</small>" if old else ""


def _matrix(report: dict) -> str:
    rows = report["parity"]
    if not rows:
        return ""
    before = (report["comparison"] or {}).get("baseline_parity", {})
    labels, columns, cells = matrix(rows)
    head = "".join(f"<th>{escape(c).replace(' · ', '<br>')}</th>" for c in columns)
    body = []
    for label in labels:
        tds = []
        for column in columns:
            row = cells.get((label, column))
            cls, style = _cell_class(row)
            tds.append(f"<td class='cell {cls}' style='{style}' title='{_tooltip(row)}'>"
                       f"{escape(cell_text(row))}{_was(row, before)}</td>")
        body.append(f"<tr><td>{escape(label)}</td>{''.join(tds)}</tr>")
    decimal = report["meta"]["decimal"]
    return (f"<h2>Parity</h2><p class='legend'>Each cell: the worst example's max abs error as a share of the "
            f"tolerance (decimal={decimal}: |Δ| &lt; {1.5 * 10 ** -decimal:.2g}); ✗ n× = failed at n times the "
            f"tolerance. Hover a cell for the error, ULP and worst index.</p>"
            f"<table><tr><th>case</th>{head}</tr>{''.join(body)}</table>"
            f"<p class='legend'>{escape(suite_checks(rows))}</p>")


def _latency(report: dict, figures: dict) -> str:
    rows = report["latency"]
    if not rows:
        return ""
    comparison = report["comparison"] or {}
    changes = {c["fullname"]: c for c in comparison.get("latency", [])}
    peak = report["meta"].get("peak") or {}
    head = ["model", "backend", "median", "IQR", "calls/s", "vs PyTorch", "GFLOP/s", "of peak"]
    if comparison:
        head += [escape(comparison["baseline"]), "change"]
    body = []
    for r in rows:
        tds = [r["group"], r["backend"] + (" (timed on device)" if r.get("measured_on") == "device" else ""),
                 format_seconds(r["median"]), format_seconds(r["iqr"]), f"{r['ops']:.1f}",
               ratio_text(r), f"{r['gflops']:.1f}" if r.get("gflops") else "",
               f"{r['peak_share']:.0%}" if r.get("peak_share") else ""]
        cells = "".join(f"<td>{escape(str(t))}</td>" for t in tds)
        if comparison:
            c = changes.get(r["fullname"])
            cells += (f"<td>{format_seconds(c['before'])}</td><td class='{c['verdict']}'>{c['change']:+.0%}</td>"
                      if c else "<td>new</td><td></td>")
        body.append(f"<tr>{cells}</tr>")
    note = (f"<p class='legend'>Peak of this machine, measured in this run: {peak['gflops']:.0f} GFLOP/s "
            f"({escape(peak.get('how', ''))}, {peak.get('threads')} threads).</p>" if peak else "")
    return (f"<h2>Latency</h2>{note}<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(body)}</table>"
            + _img(figures.get("latency_bars"), "median latency per backend")
            + _img(figures.get("latency_distributions"), "latency distributions"))


def _comparison(report: dict) -> str:
    c = report["comparison"]
    if not c:
        return ""
    items = [f"<li>newly failing: <code>{escape(x['nodeid'])}</code> (was {x['was']})</li>" for x in c["newly_failing"]]
    items += [f"<li>error grew: <code>{escape(x['nodeid'])}</code> {x['before']:.3g} → {x['after']:.3g} "
              f"({x['margin_after']:.0%} of tolerance)</li>" for x in c["errors_grew"]]
    items += [f"<li>fixed: <code>{escape(x['nodeid'])}</code></li>" for x in c["fixed"]]
    items = items or ["<li>no case newly fails, no error grew</li>"]
    return (f"<h2>Compared with baseline {escape(c['baseline'])}</h2><p class='legend'>saved {c.get('created')}, "
            f"<code>{escape(c['path'])}</code>; a case is slower when its median grew by more than "
            f"{report['meta']['max_slowdown']:.0%} and its round times' middle half lies above the baseline's "
            f"(first quartile above the baseline's third).</p>"
            f"<ul>{''.join(items)}</ul>")


def _failure_details(report: dict, figures: dict) -> str:
    failing = [r for r in report["parity"] if r["status"] in ("fail", "xfail")]
    if not failing:
        return ""
    blocks = []
    for r in failing:
        replay = f"<p>replay: <code>conformance replay {escape(r['reproducer'])}</code></p>" if r["reproducer"] else ""
        blocks.append(f"<h3><code>{escape(r['nodeid'])}</code></h3>{replay}<pre>{escape(r['message'][-1500:])}</pre>")
    return ("<h2>Failure details</h2>" + _img(figures.get("error_histograms"), "error histograms")
            + "".join(blocks))


def _expected(report: dict) -> str:
    rows = [r for r in report["parity"] if r["status"] == "xfail"]
    html = ""
    if rows:
        html += "<h2>Expected failures</h2><ul>" + "".join(
            f"<li><code>{escape(r['nodeid'])}</code>: {escape(r['reason'])}</li>" for r in rows) + "</ul>"
    if report["stale"]:
        html += "<h2>Stale expected-failure entries</h2><ul>" + "".join(
            f"<li>{escape(s['entry'])} — <b>{escape(s['why'])}</b></li>" for s in report["stale"]) + "</ul>"
    return html


def _run_info(report: dict) -> str:
    meta = report["meta"]
    lines = meta.get("header", []) + [f"created {meta['created']}", f"machine {meta.get('machine') or '?'}, "
                                      f"commit {meta.get('commit') or '?'}"]
    return "<h2>Run</h2><pre>" + escape("\n".join(lines)) + "</pre>"
