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


def lr_range_test(result, path: Path, diverge: float) -> None:
    """Loss against learning rate (log scale) with the suggestion marked; `result` is an LRFindResult."""
    import math

    import numpy as np

    plt = _pyplot()
    lrs, smoothed = np.asarray(result.lrs), np.asarray(result.smoothed)
    at = int(np.argmin(np.abs(np.log(lrs) - math.log(result.suggested_lr))))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(lrs, result.losses, color="0.75", lw=0.8, label="loss")
    ax.plot(lrs, smoothed, color="C0", label="smoothed loss")
    ax.plot([lrs[at]], [smoothed[at]], "o", color="C3", label=f"suggested {result.suggested_lr:.2e}")
    ax.axvline(result.alternative_lr, ls="--", color="C2", lw=1, label=f"min-loss lr / 10: {result.alternative_lr:.2e}")
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size and finite.min() > 0:  # the blow-up would squash the interesting part of the curve
        ax.set_ylim(finite.min() * 0.95, min(np.nanmax(finite), diverge * finite.min()) * 1.05)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss", title="learning-rate range test")
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path, plt)


def _save(fig, path: Path, plt) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_run(run) -> None:
    """A finished run's learning curves (loss and the task's headline metric) and lr schedule."""
    from pretune.tasks import tasks
    from pretune.train.schedules import lr_multiplier

    recipe, total = run.recipe, run.metrics["train"]["total_steps"]
    headline = tasks.get(recipe.data.task).headline
    learning_curves(run.history, run.path / "plots" / "learning_curves.png", headline)
    mult = lr_multiplier(recipe.train.schedule, total)
    steps = list(range(total))
    lr_schedule(steps, [recipe.train.optimizer.lr * mult(s) for s in steps], run.path / "plots" / "lr_schedule.png")
