"""Metrics from predictions: classification (accuracy, P/R/F1 macro/micro/weighted, per class,
confusion matrix) and regression (MSE, MAE, R^2). scikit-learn computes each figure."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# Lower is better for these; higher for the rest.
LOWER_IS_BETTER = {"loss", "mse", "mae"}


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]
) -> dict:
    labels = list(range(len(label_names)))
    out: dict = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        out |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(label_names)
    }
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    return {
        "mse": float(skm.mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def compute_metrics(
    logits: np.ndarray, labels: np.ndarray, label_names: list[str] | None
) -> dict:
    if label_names is None:
        return regression_metrics(labels, logits.reshape(-1))
    return classification_metrics(labels, logits.argmax(-1), label_names)


def is_better(metric: str, new: float, old: float | None, min_delta: float = 0.0,
              mode: str = "auto") -> bool:
    if old is None:
        return True
    lower = metric in LOWER_IS_BETTER if mode == "auto" else mode == "min"
    return new < old - min_delta if lower else new > old + min_delta
