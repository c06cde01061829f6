"""Regression: one number per text; MSE or Huber loss; MAE, RMSE, R^2, Pearson and Spearman."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from pretune.data.encode import EncodedSplit
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.tasks.base import Task, require_labels, tasks


@tasks.register("regression")
class Regression(Task):
    default_loss = "mse"
    losses = ("mse", "huber")
    metric_names = ("loss", "mse", "mae", "rmse", "r2", "pearson", "spearman")
    headline = "mse"
    predicts_values = True
    inferred_from = "quantities"
    oip_outputs = (("value", "FP32"),)
    pipeline_flat = True
    curves = ("mse", "mae")
    error_view = "largest-errors"

    def configure(self, config) -> None:
        config.num_labels = 1
        config.problem_type = "regression"

    def labels_of(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        values = frame[self.cfg.label_column]
        require_labels(values, where, self.cfg.label_column)
        try:
            return np.array(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise PretuneError(f"{where}: regression labels must be numbers") from None

    def metrics(self, outputs: np.ndarray, split: EncodedSplit) -> dict:
        return regression_metrics(split.labels, outputs.reshape(-1))

    def decode(self, outputs: np.ndarray, split: EncodedSplit, table: TextTable) -> list[dict]:
        return [{"value": float(v)} for v in outputs.reshape(-1)]

    def pipeline_answer(self, result: dict, top_k) -> list[dict]:
        """The value as the score of the model's one label (pipeline with function_to_apply="none")."""
        return [{"label": (self.label_names or ["LABEL_0"])[0], "score": result["value"]}]

    def report_rows(self, table: TextTable, predicted: list[dict], text_of) -> list[dict]:
        return [{"text": text_of(i), "true": float(table.labels[i]), "pred": p["value"]}
                for i, p in enumerate(predicted)]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    mse = float(skm.mean_squared_error(y_true, y_pred))
    out = {"mse": mse, "mae": float(skm.mean_absolute_error(y_true, y_pred)), "rmse": mse ** 0.5}
    # Correlations are undefined on fewer than two rows or a constant side: report NaN, not a crash.
    varied = len(y_true) > 1 and np.ptp(y_true) > 0 and np.ptp(y_pred) > 0
    out["r2"] = float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan")
    out["pearson"] = float(stats.pearsonr(y_true, y_pred)[0]) if varied else float("nan")
    out["spearman"] = float(stats.spearmanr(y_true, y_pred)[0]) if varied else float("nan")
    return out
