"""Figures of a classifier's test predictions: the confusion matrix, a reliability diagram,
per-label bars, and (regression) predicted against true."""

from __future__ import annotations

import numpy as np

from pretune.plots.canvas import pyplot
from pretune.tasks.temperature import calibration_error, reliability_bins

MAX_TICK = 18  # characters of a class name shown on an axis; the table beside it has the whole name


def confusion_matrix(matrix: list[list[int]], labels: list[str]):
    """Counts and row-normalised shares side by side (rows: true class, columns: predicted)."""
    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    k = len(labels)
    side = min(3.2 + 0.35 * k, 9)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1, side))
    ticks = [_short(name) for name in labels]
    for ax, values, title, fmt in ((axes[0], counts, "Counts", "{:.0f}"),
                                   (axes[1], shares, "Share of each true class", "{:.2f}")):
        ax.imshow(values, cmap="Blues", vmin=0, vmax=max(values.max(), 1e-9))
        ax.grid(False)
        ax.set_xticks(range(k), ticks, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
        ax.set_yticks(range(k), ticks)
        ax.set(xlabel="predicted", ylabel="true", title=title)
        if k <= 20:
            top = values.max() or 1
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if values[i, j] > top * 0.6 else "#222222")
    fig.tight_layout()
    return fig


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10,
                before: np.ndarray | None = None) -> tuple:
    """(figure, ECE): accuracy against confidence in equal-width bins, with the share of rows in
    each; ECE is the row-weighted mean |accuracy - confidence| (Guo et al. 2017). `before`: the
    same rows' confidence without temperature scaling, drawn as a second curve."""
    plt = pyplot()
    edges = np.linspace(0, 1, bins + 1)
    acc, conf, share = reliability_bins(confidence, correct, bins)
    ece = calibration_error(confidence, correct, bins)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    centers = (edges[:-1] + edges[1:]) / 2
    ax.bar(centers, acc, width=1 / bins * 0.9, color="C0", alpha=0.85, label="accuracy in bin")
    ax.plot([0, 1], [0, 1], ls="--", color="#888888", lw=1, label="perfect calibration")
    if before is not None:
        acc_b, conf_b, share_b = reliability_bins(before, correct, bins)
        seen = share_b > 0
        ece_b = calibration_error(before, correct, bins)
        ax.plot(conf_b[seen], acc_b[seen], "s-", color="C3", ms=3, lw=1, label=f"before scaling (ECE {ece_b:.3f})")
    ax2 = ax.twinx()
    ax2.plot(centers, share, "o-", color="C1", ms=3, lw=1, label="share of rows")
    ax2.set_ylim(0, 1)
    ax2.grid(False)
    ax2.set_ylabel("share of rows")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy",
           title=f"Reliability (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig, ece


def label_bars(values: dict[str, float], title: str, xlabel: str, extra: dict[str, float] | None = None,
               extra_label: str = ""):
    """One horizontal bar per label (e.g. F1), optionally a second marker per label (a threshold)."""
    plt = pyplot()
    names = list(values)
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.32 * len(names)))
    ax.barh(range(len(names)), [values[n] for n in names], color="C0", label=xlabel)
    if extra:
        ax.plot([extra.get(n, np.nan) for n in names], range(len(names)), "D", color="C1", ms=5, label=extra_label)
        ax.legend(loc="lower right")
    ax.set_yticks(range(len(names)), [_short(n) for n in names])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel=xlabel, title=title)
    fig.tight_layout()
    return fig


def predicted_vs_true(true: np.ndarray, pred: np.ndarray):
    """Regression: a scatter of predicted against true with the diagonal, and residuals."""
    plt = pyplot()
    fig, (ax, ax_res) = plt.subplots(1, 2, figsize=(10, 4))
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.scatter(true, pred, s=9, alpha=0.6)
    ax.plot([lo, hi], [lo, hi], ls="--", color="#888888", lw=1)
    ax.set(xlabel="true", ylabel="predicted", title="Predicted against true")
    ax_res.scatter(pred, pred - true, s=9, alpha=0.6, color="C1")
    ax_res.axhline(0, color="#888888", lw=1)
    ax_res.set(xlabel="predicted", ylabel="predicted - true", title="Residuals")
    fig.tight_layout()
    return fig


def _short(name: str) -> str:
    return name if len(name) <= MAX_TICK else name[:MAX_TICK - 1] + "…"
