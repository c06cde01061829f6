"""Experiment tracking: TensorBoard event files and MLflow runs, written as a fit goes.

Off by default (the recipe's `tracking:` section); a backend's package is imported only when it
is turned on, and a missing one is a MissingExtraError naming the `tracking` extra. The fit's
callbacks log every record of metrics.jsonl as it is written; `finish_tracking` (called by the
public verbs once metrics.json, the model card and the report exist) adds the final metrics and
those files.
"""

from __future__ import annotations

from pathlib import Path

from pretune.recipe import TrackingConfig


def create_tracking_callbacks(cfg: TrackingConfig, run_dir: str | Path) -> list:
    """The callbacks the recipe's tracking section asks for (none when it is off)."""
    callbacks = []
    if cfg.tensorboard:
        from pretune.tracking.tensorboard_events import TensorBoardCallback

        callbacks.append(TensorBoardCallback(Path(run_dir)))
    if cfg.mlflow:
        from pretune.tracking.mlflow_runs import MlflowCallback

        callbacks.append(MlflowCallback(cfg.mlflow, Path(run_dir)))
    return callbacks


def finish_tracking(run, measured: dict | None = None) -> None:
    """Final metrics (and for MLflow metrics.json, the model card and the report) of a finished
    run whose recipe turned tracking on; `measured`: a compression table's row for it."""
    cfg = run.recipe.tracking
    if cfg.tensorboard:
        from pretune.tracking.tensorboard_events import write_hparams

        write_hparams(run, measured)
    if cfg.mlflow:
        from pretune.tracking.mlflow_runs import finish_run

        finish_run(run, cfg.mlflow, measured)


def start_group(directory: str | Path, cfg: TrackingConfig, kind: str, params: dict | None = None) -> None:
    """A parent MLflow run for a search or a compression, under which the runs made in
    `directory` nest (nothing when MLflow is off; TensorBoard needs no parent)."""
    if cfg.mlflow:
        from pretune.tracking.mlflow_runs import start_parent

        start_parent(Path(directory), cfg.mlflow, kind, params)


def end_group(directory: str | Path, cfg: TrackingConfig, files: list[str], metrics: dict | None = None,
              failed: bool = False) -> None:
    """Close the parent run: its summary `files` (found in `directory`) as artefacts, `metrics`."""
    if cfg.mlflow:
        from pretune.tracking.mlflow_runs import end_parent

        end_parent(Path(directory), files, metrics, failed)
