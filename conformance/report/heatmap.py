"""Difference heat maps as PNG files (matplotlib's Agg canvas, no display or global backend)."""

from __future__ import annotations

import os

import numpy as np


def save_heatmap(diff: np.ndarray, path: str | os.PathLike, *, title: str = "") -> None:
    """Save a 2-D array of differences as a heat map with a colour bar and its maximum."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Figure + FigureCanvasAgg instead of pyplot: no global state, no GUI backend, thread-safe.
    # About one figure pixel per image pixel (up to 1600 px): a one-pixel difference stays visible.
    height, width = diff.shape
    scale = min(1.0, 1600 / max(height, width)) / 100
    fig = Figure(figsize=(max(3.0, width * scale) + 1.2, max(2.5, height * scale) + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # vmax of at least 1 so an all-zero map reads as "no difference", not as noise.
    shown = ax.imshow(diff, cmap="magma", vmin=0, vmax=max(1, int(diff.max())), interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(f"{title}  max={int(diff.max())}" if title else f"max={int(diff.max())}", fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", pil_kwargs={"compress_level": 1})  # ~5x faster than 6
