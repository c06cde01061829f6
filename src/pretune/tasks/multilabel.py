"""Multi-label: any number of labels per text; one sigmoid per label, BCE loss, per-label
decision thresholds tuned on validation and saved in the model's config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pretune.data.encode import EncodedSplit
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.recipe import LossConfig
from pretune.tasks.base import Task
from pretune.tasks.multilabel_utils import (
    binarize,
    multilabel_metrics,
    parse_label_lists,
    positive_weights,
    tune_thresholds,
)


class MultiLabel(Task):
    name = "multi-label"
    default_loss = "bce"
    losses = ("bce",)
    metric_names = ("loss", "f1_micro", "f1_macro", "precision_micro", "recall_micro", "subset_accuracy",
                    "hamming_loss")
    headline = "f1_micro"
    calibrates = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.thresholds: np.ndarray | None = None  # None until tuned: 0.5 for every label

    def _lists(self, frame: pd.DataFrame) -> list[list[str]]:
        return parse_label_lists(frame[self.cfg.label_column], self.cfg.label_separator)

    def learn_labels(self, train: pd.DataFrame) -> None:
        names = sorted({label for row in self._lists(train) for label in row})
        if not names:
            raise PretuneError(f"train: no row has a label in '{self.cfg.label_column}'")
        self.label_names = names

    def labels_of(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        try:
            return binarize(self._lists(frame), self.label_names)
        except PretuneError as e:
            raise PretuneError(f"{where}: {e}") from None

    def configure(self, config) -> None:
        super().configure(config)
        config.problem_type = "multi_label_classification"
        if self.thresholds is not None:
            config.pretune_thresholds = [float(t) for t in self.thresholds]

    def restore(self, config) -> None:
        super().restore(config)
        saved = getattr(config, "pretune_thresholds", None)
        self.thresholds = None if saved is None else np.array(saved, dtype=np.float32)

    def sampling_classes(self, split: EncodedSplit) -> list[list[int]]:
        # A row without labels forms its own class (index k), so balancing also sees it.
        k = self.num_labels
        return [np.flatnonzero(row).tolist() or [k] for row in split.labels]

    def loss_weight(self, cfg: LossConfig, train: EncodedSplit) -> torch.Tensor | None:
        if not cfg.positive_weights:
            return None
        return torch.tensor(positive_weights(train.labels), dtype=torch.float32)

    def _threshold(self) -> np.ndarray:
        return np.full(self.num_labels, 0.5) if self.thresholds is None else self.thresholds

    def metrics(self, outputs: np.ndarray, split: EncodedSplit) -> dict:
        preds = (sigmoid(outputs) >= self._threshold()).astype(np.int64)
        return multilabel_metrics(split.labels.astype(np.int64), preds, self.label_names)

    def calibrate(self, outputs: np.ndarray, split: EncodedSplit) -> dict:
        self.thresholds = tune_thresholds(sigmoid(outputs), split.labels.astype(np.int64))
        return {"thresholds": dict(zip(self.label_names, map(float, self.thresholds), strict=True))}

    def decode(self, outputs: np.ndarray, split: EncodedSplit, table: TextTable) -> list[dict]:
        probs, cut = sigmoid(outputs), self._threshold()
        return [
            {"labels": [n for i, n in enumerate(self.label_names) if p[i] >= cut[i]],
             "scores": {n: float(p[i]) for i, n in enumerate(self.label_names)}}
            for p in probs
        ]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
