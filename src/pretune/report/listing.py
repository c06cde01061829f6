"""`pretune runs`: every run directory under a folder, one summary row each, from its files."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from pretune import runs
from pretune.errors import PretuneError
from pretune.runs import RunDir

LOWER_IS_BETTER = {"loss", "mse", "mae", "rmse", "hamming_loss", "train_seconds"}
SKIPPED = {"model", "checkpoints", "plots", "predictions", "tb", "mlruns"}  # inside a run: never runs


def find_runs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise PretuneError(f"{root}: no such directory")
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.startswith("."))
        # A study holds its base recipe, a pipeline its recipe as written: neither is a run.
        if runs.RECIPE in files and runs.STUDY not in files and runs.PIPELINE not in files:
            found.append(Path(here))
    return found


def summarise(path: Path) -> dict:
    from pretune.tasks import tasks

    run = RunDir(path)
    recipe = run.recipe
    metrics = run.metrics if run.finished else {}
    task = metrics.get("task", recipe.data.task)
    headline = tasks.get(task).headline if task in tasks.available() else "loss"
    split = "test" if headline in metrics.get("test", {}) else "validation"
    value = metrics.get(split, {}).get(headline)
    stamp = (path / (runs.METRICS if run.finished else runs.RECIPE)).stat().st_mtime
    return {"name": str(path), "status": run.status if run.finished else "unfinished", "task": task,
            "model": recipe.model.source, "strategy": recipe.strategy.name, "metric": headline,
            "split": split if value is not None else None, "value": value,
            "train_seconds": metrics.get("train", {}).get("train_seconds"),
            "date": dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M"),
            "test": {k: v for k, v in metrics.get("test", {}).items() if isinstance(v, (int, float))},
            "validation": {k: v for k, v in metrics.get("validation", {}).items() if isinstance(v, (int, float))}}


def list_runs(root: str | Path = "runs", sort: str | None = None) -> list[dict]:
    """One summary per run under `root`, newest first, or best first by `sort` (a test metric,
    else the validation one; `train_seconds`; a run without it last)."""
    rows = [summarise(p) for p in find_runs(Path(root))]
    if sort is None:
        return sorted(rows, key=lambda r: r["date"], reverse=True)

    def key(row):
        value = row["train_seconds"] if sort == "train_seconds" else row["test"].get(sort, row["validation"].get(sort))
        if value is None:
            return (1, 0.0)
        return (0, value if sort in LOWER_IS_BETTER else -value)

    if rows and not any(key(r)[0] == 0 for r in rows):
        known = sorted({k for r in rows for k in (*r["test"], *r["validation"])} | {"train_seconds"})
        raise PretuneError(f"--sort {sort}: no run has that metric; known: {', '.join(known)}")
    return sorted(rows, key=key)
