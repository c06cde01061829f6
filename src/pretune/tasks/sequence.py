"""Sequence classification: one label per text (or text pair); softmax over the classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm

from pretune.data.encode import EncodedSplit
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.recipe import LossConfig
from pretune.tasks.base import Task, class_weights, require_labels, softmax
from pretune.tasks.temperature import expected_calibration_error, fit_temperature

AVERAGES = ("macro", "micro", "weighted")


class SequenceClassification(Task):
    name = "sequence-classification"
    metric_names = ("loss", "accuracy", *(f"{m}_{a}" for a in AVERAGES for m in ("precision", "recall", "f1")))
    headline = "accuracy"
    stratify = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.temperature: float | None = None  # None: probabilities are the plain softmax

    def learn_labels(self, train: pd.DataFrame) -> None:
        column = train[self.cfg.label_column]
        require_labels(column, "train", self.cfg.label_column)
        names = sorted(str(v) for v in column.unique())
        if len(names) < 2:
            raise PretuneError(f"training data has only one label ({names[0]}); need two or more")
        self.label_names = names

    def labels_of(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        values = frame[self.cfg.label_column]
        require_labels(values, where, self.cfg.label_column)
        index = {name: i for i, name in enumerate(self.label_names)}
        as_text = values.astype(str)
        unseen = sorted(set(as_text) - set(index))
        if unseen:
            raise PretuneError(
                f"{where}: label(s) {', '.join(map(repr, unseen[:5]))} never seen in training "
                f"(known: {', '.join(self.label_names)})"
            )
        return np.array(as_text.map(index), dtype=np.int64)

    def sampling_classes(self, split: EncodedSplit) -> list[list[int]]:
        return [[int(y)] for y in split.labels]

    def loss_weight(self, cfg: LossConfig, train: EncodedSplit) -> torch.Tensor | None:
        if cfg.class_weights is None:
            return None
        return class_weights(cfg, np.bincount(train.labels, minlength=self.num_labels))

    def metrics(self, outputs: np.ndarray, split: EncodedSplit) -> dict:
        return classification_metrics(split.labels, outputs.argmax(-1), self.label_names)

    # -- temperature scaling (train.calibrate): saved in the model's config, read back by every runner's decode
    def configure(self, config) -> None:
        super().configure(config)
        if self.temperature is not None:
            config.pretune_temperature = float(self.temperature)

    def restore(self, config) -> None:
        super().restore(config)
        saved = getattr(config, "pretune_temperature", None)
        self.temperature = None if saved is None else float(saved)

    def probabilities(self, outputs: np.ndarray, scaled: bool = True) -> np.ndarray:
        outputs = np.asarray(outputs, dtype=np.float64)
        return softmax(outputs / self.temperature if scaled and self.temperature else outputs)

    def scale_confidence(self, outputs: np.ndarray, split: EncodedSplit) -> dict:
        before = expected_calibration_error(self.probabilities(outputs, scaled=False), split.labels)
        self.temperature = fit_temperature(outputs, split.labels)
        after = expected_calibration_error(self.probabilities(outputs), split.labels)
        return {"temperature": self.temperature, "validation_ece_before": before, "validation_ece_after": after}

    def calibration_errors(self, outputs: np.ndarray, split: EncodedSplit) -> dict:
        """ECE of `outputs` without and with the fitted temperature (e.g. on the test split)."""
        return {"ece_before": expected_calibration_error(self.probabilities(outputs, scaled=False), split.labels),
                "ece_after": expected_calibration_error(self.probabilities(outputs), split.labels)}

    def decode(self, outputs: np.ndarray, split: EncodedSplit, table: TextTable) -> list[dict]:
        probs = self.probabilities(outputs)
        return [
            {"label": self.label_names[int(p.argmax())], "score": float(p.max()),
             "scores": {name: float(p[i]) for i, name in enumerate(self.label_names)}}
            for p in probs
        ]


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> dict:
    """Accuracy, P/R/F1 macro/micro/weighted, per class and the confusion matrix (scikit-learn)."""
    labels = list(range(len(label_names)))
    out: dict = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    for avg in AVERAGES:
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
