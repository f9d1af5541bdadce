"""The report's figures (matplotlib, Agg backend): latency bars per backend, latency
distributions, and error histograms of failing cases. Each function writes one PNG and returns
its path, or None when there is nothing to draw."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines; set before pyplot loads
import matplotlib.pyplot as plt  # noqa: E402

from conformance.engine.compare import HISTOGRAM_EDGES  # noqa: E402
from conformance.report.latency_rows import format_seconds  # noqa: E402
from conformance.report.parity_rows import column_label  # noqa: E402

REFERENCE_COLOR = "#8c8c8c"
PALETTE = ["#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030", "#0987a0"]
STYLE = {"axes.spines.top": False, "axes.spines.right": False, "axes.titleweight": "bold",
         "axes.titlesize": 11, "font.size": 9, "axes.grid": True, "grid.alpha": 0.25}


def _colors(rows: list[dict]) -> dict[str, str]:
    others = sorted({r["backend"] for r in rows if not r["reference"]})
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(others)}
    colors.update({r["backend"]: REFERENCE_COLOR for r in rows if r["reference"]})
    return colors


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return groups


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a PNG
    return path


def latency_bars(rows: list[dict], path: Path, baseline: list[dict] | None = None) -> Path | None:
    """Median latency per backend (IQR as whiskers), one panel per model/operator; a black tick
    marks the baseline's median when one is given."""
    if not rows:
        return None
    groups, colors = _groups(rows), _colors(rows)
    before = {r["fullname"]: r["median"] for r in baseline or []}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(groups), 1, squeeze=False,
                                 figsize=(8, 0.5 + sum(0.45 * len(g) + 0.6 for g in groups.values())),
                                 gridspec_kw={"height_ratios": [len(g) for g in groups.values()]})
        for ax, (group, members) in zip(axes[:, 0], groups.items()):
            _bar_panel(ax, group, members, colors, before)
        axes[-1, 0].set_xlabel("median latency per call (ms); whiskers: interquartile range"
                               + ("; black tick: baseline median" if before else ""))
        fig.tight_layout()
    return _save(fig, path)


def _bar_panel(ax, group: str, members: list[dict], colors: dict, before: dict) -> None:
    labels = [m["backend"] for m in members]
    ms = [m["median"] * 1e3 for m in members]
    err = [[(m["median"] - m["q1"]) * 1e3 for m in members], [(m["q3"] - m["median"]) * 1e3 for m in members]]
    ax.barh(labels, ms, xerr=err, color=[colors[b] for b in labels], height=0.6,
            error_kw={"ecolor": "#333", "capsize": 3, "lw": 1})
    ax.invert_yaxis()
    ax.set_title(group, loc="left")
    ax.grid(axis="y", visible=False)
    top = max(m["q3"] for m in members) * 1e3
    for i, m in enumerate(members):
        note = format_seconds(m["median"])
        if m.get("ratio") and not m["reference"]:
            note += f"   {m['ratio']:.2f}× PyTorch"
        ax.text(m["q3"] * 1e3 + top * 0.02, i, note, va="center", fontsize=8)
        if m["fullname"] in before:
            ax.plot([before[m["fullname"]] * 1e3] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
    ax.set_xlim(0, top * 1.45)


def latency_distributions(rows: list[dict], path: Path) -> Path | None:
    """Per model/operator, each backend's distribution of round times: violins of the raw
    rounds when saved (``--benchmark-save-data``), else box plots from the saved quartiles."""
    if not rows:
        return None
    groups, colors = _groups(rows), _colors(rows)
    cols = min(3, len(groups))
    nrows = math.ceil(len(groups) / cols)
    with plt.rc_context(STYLE):
        width = max(5.0, 1.3 * max(len(g) for g in groups.values()))  # room for the backend names
        fig, axes = plt.subplots(nrows, cols, squeeze=False, figsize=(width * cols, 3.2 * nrows))
        for ax, (group, members) in zip(axes.flat, groups.items()):
            _distribution_panel(ax, group, members, colors)
        for ax in list(axes.flat)[len(groups):]:
            ax.set_visible(False)
        fig.supylabel("ms per call")
        fig.tight_layout()
    return _save(fig, path)


def _distribution_panel(ax, group: str, members: list[dict], colors: dict) -> None:
    positions = range(1, len(members) + 1)
    if all(m.get("data") for m in members):
        parts = ax.violinplot([[v * 1e3 for v in m["data"]] for m in members], positions,
                              showmedians=True, showextrema=False)
        for body, m in zip(parts["bodies"], members):
            body.set_facecolor(colors[m["backend"]])
            body.set_alpha(0.6)
        parts["cmedians"].set_color("black")
    else:
        stats = [{"med": m["median"] * 1e3, "q1": m["q1"] * 1e3, "q3": m["q3"] * 1e3,
                  "whislo": m["min"] * 1e3, "whishi": m["max"] * 1e3, "label": m["backend"]} for m in members]
        boxes = ax.bxp(stats, positions=list(positions), showfliers=False, patch_artist=True, widths=0.5,
                       medianprops={"color": "black", "lw": 1.5})
        for box, m in zip(boxes["boxes"], members):
            box.set_facecolor(colors[m["backend"]])
            box.set_alpha(0.6)
    ax.set_xticks(list(positions), [m["backend"] for m in members], rotation=20, ha="right")
    ax.set_title(group, loc="left")
    spread = max(m["max"] for m in members) / max(min(m["min"] for m in members), 1e-12)
    if spread > 20:  # a backend 20x slower than another would flatten the rest
        ax.set_yscale("log")


def error_histograms(rows: list[dict], path: Path, limit: int = 12) -> Path | None:
    """For each failing case, the distribution of |backend - reference| over its worst example's
    elements on a log axis, with the tolerance as a red line."""
    fig = histogram_figure(rows, limit)
    return _save(fig, path) if fig is not None else None


#: Characters of a histogram title per line: a panel is 4.2 inches wide at 9 pt.
TITLE_WIDTH = 40


def histogram_figure(rows: list[dict], limit: int = 12):
    """The error-histogram figure (None when no failing case has a histogram). Titles are
    wrapped to their panel's width, so long backend names never run into the next panel."""
    failing = [r for r in rows if r["status"] in ("fail", "xfail") and r.get("histogram")][:limit]
    if not failing:
        return None
    cols = min(3, len(failing))
    nrows = math.ceil(len(failing) / cols)
    titles = [_histogram_title(row) for row in failing]
    lines = max(t.count("\n") + 1 for t in titles)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, cols, squeeze=False, figsize=(4.2 * cols, (2.5 + 0.18 * lines) * nrows),
                                 layout="constrained")
        for ax, row, title in zip(axes.flat, failing, titles):
            _histogram_panel(ax, row)
            ax.set_title(title, loc="left", fontsize=9)
        for ax in list(axes.flat)[len(failing):]:
            ax.set_visible(False)
    return fig


def _histogram_title(row: dict) -> str:
    import textwrap

    status = "expected failure" if row["status"] == "xfail" else f"{row['failures']} failing example(s)"
    what = f"{row['case']} · {column_label(row)}"  # the matrix's column: the cat pipeline's, its runtime alone
    # long words (a dotted backend path) are broken too: no line is wider than its panel
    wrapped = textwrap.wrap(what, TITLE_WIDTH, break_on_hyphens=False) or [what]
    return "\n".join(wrapped + [f"{status}, max abs {row.get('max_abs') or 0:.2g}"])


def _histogram_panel(ax, row: dict) -> None:
    counts = row["histogram"]
    # Bin 0 (below the first edge) and the last (above the last) are drawn as one extra bin each.
    edges = [HISTOGRAM_EDGES[0] / 10 ** 0.25] + list(HISTOGRAM_EDGES) + [HISTOGRAM_EDGES[-1] * 10 ** 0.25]
    used = [i for i, c in enumerate(counts) if c]
    lo, hi = max(min(used) - 2, 0), min(max(used) + 3, len(counts))
    lefts, widths = edges[lo:hi], [edges[i + 1] - edges[i] for i in range(lo, hi)]
    colors = ["#c53030" if left >= row["tolerance"] else "#2b6cb0" for left in lefts]
    ax.bar(lefts, counts[lo:hi], width=widths, align="edge", color=colors, edgecolor="white", lw=0.5)
    ax.axvline(row["tolerance"], color="#c53030", ls="--", lw=1.2)
    ax.text(row["tolerance"], 0.97, f"tolerance {row['tolerance']:.2g} ", transform=ax.get_xaxis_transform(),
            color="#c53030", va="top", ha="right", fontsize=8)
    ax.set_xscale("log")
    if max(counts) > 50:  # a few bad elements among thousands of good ones stay visible
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("|backend − PyTorch| per element (worst example)")
    ax.set_ylabel("elements")
