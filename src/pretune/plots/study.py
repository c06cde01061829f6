"""Figures of a hyperparameter study from its trials table (one row per trial, one column per
metric and per searched key): optimisation history, parallel coordinates, each parameter against
the metric, importances, the Pareto front of two metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from pretune.plots.canvas import pyplot


def history(done: pd.DataFrame, metric: str, maximize: bool):
    """Each complete trial's value in order, and the best so far."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    values = done[metric].astype(float)
    best = values.cummax() if maximize else values.cummin()
    ax.plot(done["number"], values, "o", ms=5, label="trial")
    ax.step(done["number"], best, where="post", color="C3", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel=metric, title="Optimisation history")
    ax.legend()
    return fig


def parallel_coordinates(done: pd.DataFrame, params: list[str], metric: str):
    """One line per trial across the parameters (each scaled to its own range), coloured by the metric;
    a categorical parameter is placed by its sorted values."""
    plt = pyplot()
    columns = [*params, metric]
    scaled, ticks = [], []
    for c in columns:
        values, labels = _as_numbers(done[c])
        lo, hi = np.nanmin(values), np.nanmax(values)
        scaled.append((values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5))
        ticks.append(labels or [f"{lo:.3g}", f"{hi:.3g}"])
    data = np.vstack(scaled).T
    metric_values = done[metric].astype(float).to_numpy()
    colours = plt.get_cmap("viridis")((metric_values - np.nanmin(metric_values)) /
                                      max(np.nanmax(metric_values) - np.nanmin(metric_values), 1e-12))
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(columns)), 3.6))
    for row, colour in zip(data, colours, strict=True):
        ax.plot(range(len(columns)), row, color=colour, alpha=0.8, lw=1.4)
    ax.set_xticks(range(len(columns)), [c.split(".")[-1] if c.count(".") else c for c in columns])
    for x, t in enumerate(ticks):
        ax.text(x, -0.08, t[0], ha="center", va="top", fontsize=7, color="#666666")
        ax.text(x, 1.04, t[-1], ha="center", va="bottom", fontsize=7, color="#666666")
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.12)
    ax.set_title("Parallel coordinates (colour: " + metric + ")")
    return fig


def param_vs_metric(done: pd.DataFrame, params: list[str], metric: str, log: set[str]):
    """One panel per searched key: the metric of each trial against the key's value."""
    plt = pyplot()
    n = len(params)
    fig, axes = plt.subplots(1, n, figsize=(min(3.4 * n, 12), 3.2), squeeze=False, sharey=True)
    for ax, p in zip(axes[0], params, strict=True):
        values, labels = _as_numbers(done[p])
        ax.scatter(values, done[metric].astype(float), s=22, c=done["number"], cmap="Blues", edgecolor="#335")
        if labels:
            ax.set_xticks(range(len(labels)), labels)
        elif p in log:
            ax.set_xscale("log")
        ax.set(xlabel=p, title=p.split(".")[-1])
    axes[0][0].set_ylabel(metric)
    fig.tight_layout()
    return fig


def importances(values: dict[str, float]):
    plt = pyplot()
    names = list(values)
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.4 * len(names)))
    ax.barh(range(len(names)), [values[n] for n in names], color="C2")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set(xlabel="importance (fANOVA, share of the variance)", title="Hyperparameter importances")
    fig.tight_layout()
    return fig


def pareto(done: pd.DataFrame, metrics: list[str], front: set[int]):
    """The first two metrics of every complete trial, the Pareto front joined and marked."""
    plt = pyplot()
    x, y = metrics[:2]
    fig, ax = plt.subplots(figsize=(5.6, 4))
    on = done[done["number"].isin(front)].sort_values(x)
    off = done[~done["number"].isin(front)]
    ax.scatter(off[x], off[y], s=24, color="#aaaaaa", label="trial")
    ax.plot(on[x], on[y], "o-", ms=6, color="C3", label="Pareto front")
    for _, r in on.iterrows():
        ax.annotate(str(int(r["number"])), (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel=x, ylabel=y, title="Pareto front")
    ax.legend()
    fig.tight_layout()
    return fig


def _as_numbers(column: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """A numeric column as floats; any other as the index of its sorted distinct values (and those)."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() == column.notna().sum():
        return numeric.to_numpy(dtype=float), None
    labels = sorted(column.dropna().astype(str).unique())
    return column.astype(str).map({v: i for i, v in enumerate(labels)}).to_numpy(dtype=float), _short(labels)


def _short(labels: list[str]) -> list[str]:
    """Tick labels that fit under a panel: a model path by its last part (while those stay
    distinct), anything else cut at 18 characters."""
    tails = [label.rstrip("/").rsplit("/", 1)[-1] for label in labels]
    if len(set(tails)) == len(tails):
        labels = tails
    return [label if len(label) <= 18 else label[:17] + "…" for label in labels]
