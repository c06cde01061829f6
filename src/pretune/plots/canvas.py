"""The one place matplotlib is set up: a file-only backend, a quiet house style, and the two
ways a figure leaves (a PNG file written atomically, SVG bytes for a page)."""

from __future__ import annotations

import io
from pathlib import Path

from pretune.atomic import atomic_path

PALETTE = ["#3b6ea8", "#d9822b", "#3a9b5c", "#c8474b", "#7d5ba6", "#8c6d4f", "#d36fae", "#7f7f7f"]
STYLE = {
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#e6e6e6",
    "grid.linewidth": 0.8, "axes.edgecolor": "#888888", "axes.titlesize": 11, "axes.titleweight": "bold",
    "axes.labelsize": 9.5, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "legend.fontsize": 8.5,
    "legend.frameon": False, "font.family": "DejaVu Sans",
    # Text stays text in SVG (a tenth of the size of glyph outlines, and searchable on the page).
    "svg.fonttype": "none", "svg.hashsalt": "pretune",
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update({**STYLE, "axes.prop_cycle": cycler(color=PALETTE)})
    return plt


def save_png(fig, path: Path, dpi: int = 110) -> None:
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def svg_bytes(fig) -> bytes:
    """The figure as SVG, closed afterwards (a report draws dozens: open figures hold memory)."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()  # not bbox_inches="tight": that draws every figure twice
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()
