"""Plots of a run: learning curves and the learning-rate schedule, as PNG."""

from __future__ import annotations

from pathlib import Path

from pretune.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: list[dict], path: Path, metric: str = "accuracy") -> None:
    plt = _pyplot()
    train = [r for r in history if r["split"] == "train"]
    val = [r for r in history if r["split"] == "validation"]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    ax_loss.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="validation")
    ax_loss.set(xlabel="optimizer step", ylabel="loss", title="loss")
    ax_loss.legend()
    if val and metric in val[0]:
        ax_metric.plot([r["step"] for r in val], [r[metric] for r in val], "o-", color="C1")
    ax_metric.set(xlabel="optimizer step", ylabel=metric, title=f"validation {metric}")
    fig.tight_layout()
    _save(fig, path, plt)


def lr_schedule(steps: list[int], lrs: list[float], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, lrs)
    ax.set(xlabel="optimizer step", ylabel="learning rate", title="learning-rate schedule")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    _save(fig, path, plt)


def _save(fig, path: Path, plt) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
