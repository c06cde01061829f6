"""Curves of a run as PNG files: learning curves, the learning rate, the lr range test."""

from __future__ import annotations

from pathlib import Path

from pretune.plots.canvas import pyplot, save_png

MAX_EPOCH_LINES = 200


def learning_curves(history: list[dict], path: Path, metric: str = "accuracy") -> None:
    plt = pyplot()
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
    save_png(fig, path)


def lr_schedule(steps: list[int], lrs: list[float], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, lrs)
    ax.set(xlabel="optimizer step", ylabel="learning rate", title="learning-rate schedule")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    save_png(fig, path)


def lr_range_test(result, path: Path, diverge: float) -> None:
    """Loss against learning rate (log scale) with the suggestion marked; `result` is an LRFindResult."""
    import math

    import numpy as np

    plt = pyplot()
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
    save_png(fig, path)


def plot_run(run) -> None:
    """A finished run's learning curves (loss and the task's headline metric) and the learning
    rate it logged, from the run directory alone."""
    from pretune.tasks import tasks

    headline = tasks.get(run.recipe.data.task).headline
    learning_curves(run.history, run.path / "plots" / "learning_curves.png", headline)
    logged = [r for r in run.history if r["split"] == "train" and "lr" in r]
    lr_schedule([r["step"] for r in logged], [r["lr"] for r in logged], run.path / "plots" / "lr_schedule.png")


def history_figures(history: list[dict], steps_per_epoch: float | None, best_step: int | None,
                    metrics: list[str]) -> dict:
    """The report's curves of one run: loss (train per logged step, validation per evaluation),
    each validation metric per evaluation, and the learning rate; epochs as dotted lines, the
    step keep_best chose as a star. Returns {name: Figure} for what the history holds."""
    plt = pyplot()
    train = [r for r in history if r["split"] == "train"]
    val = _by_step([r for r in history if r["split"] == "validation"])
    last = max([r["step"] for r in history], default=0)
    figures = {}

    def marks(ax):
        # One dotted line per epoch, while they stay readable: a history claiming millions of
        # epochs (an edited file) draws none rather than one line each.
        if steps_per_epoch and steps_per_epoch > 0 and last / steps_per_epoch <= MAX_EPOCH_LINES:
            for k in range(1, int(last / steps_per_epoch) + 1):
                ax.axvline(k * steps_per_epoch, color="#bbbbbb", ls=":", lw=1)
        if best_step is not None:
            ax.axvline(best_step, color="C3", lw=1, alpha=0.6)

    if train or val:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1.2, label="train (per logged step)")
        if val:
            ax.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", ms=4, label="validation")
        _star(ax, val, best_step, "loss")
        marks(ax)
        ax.set(xlabel="optimizer step", ylabel="loss", title="Loss")
        ax.legend()
        figures["loss"] = fig
    shown = [m for m in metrics if m != "loss" and val and any(m in r for r in val)]
    sampled = _by_step([r for r in history if r["split"] == "train_sample"])  # train/convergence.py
    if shown:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        for m in shown:
            pts = [r for r in val if m in r]
            (line,) = ax.plot([r["step"] for r in pts], [r[m] for r in pts], "o-", ms=4, label=m)
            pts = [r for r in sampled if m in r]
            if pts:  # the same metric on the fixed training sample: the gap is the space between
                ax.plot([r["step"] for r in pts], [r[m] for r in pts], "--", lw=1, color=line.get_color(),
                        label=f"{m} (train sample)")
        _star(ax, val, best_step, shown[0])
        marks(ax)
        ax.set(xlabel="optimizer step", ylabel="value", title="Validation metrics per evaluation")
        ax.legend()
        figures["validation"] = fig
    lrs = [r for r in train if "lr" in r]
    if lrs:
        fig, ax = plt.subplots(figsize=(6.4, 2.6))
        ax.plot([r["step"] for r in lrs], [r["lr"] for r in lrs], color="C4")
        marks(ax)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.set(xlabel="optimizer step", ylabel="learning rate", title="Learning rate")
        figures["lr"] = fig
    return figures


def overlaid_curves(histories: dict[str, list[dict]], metric: str) -> dict:
    """Several runs on shared axes: train loss and the validation `metric`, one colour per run."""
    plt = pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, history in histories.items():
        train = [r for r in history if r["split"] == "train"]
        val = _by_step([r for r in history if r["split"] == "validation" and metric in r])
        (line,) = ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1.2, label=name)
        ax_metric.plot([r["step"] for r in val], [r[metric] for r in val], "o-", ms=4, color=line.get_color(),
                       label=name)
    ax_loss.set(xlabel="optimizer step", ylabel="train loss", title="Train loss")
    ax_metric.set(xlabel="optimizer step", ylabel=metric, title=f"Validation {metric}")
    ax_metric.legend()
    fig.tight_layout()
    return {"overlaid": fig}


def _by_step(rows: list[dict]) -> list[dict]:
    """One evaluation per step (an epoch end that falls on an eval_every step logs it twice)."""
    return list({r["step"]: r for r in rows}.values())


def _star(ax, val: list[dict], best_step: int | None, metric: str) -> None:
    best = [r for r in val if r["step"] == best_step and metric in r]
    if best:
        ax.plot([best_step], [best[0][metric]], "*", ms=13, color="C3", label=f"kept: step {best_step}")
