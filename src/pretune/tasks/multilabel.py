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
from pretune.tasks.base import Task, tasks
from pretune.tasks.multilabel_utils import (
    binarize,
    multilabel_metrics,
    parse_label_lists,
    positive_weights,
    tune_thresholds,
)


@tasks.register("multi-label")
class MultiLabel(Task):
    default_loss = "bce"
    losses = ("bce",)
    metric_names = ("loss", "f1_micro", "f1_macro", "precision_micro", "recall_micro", "subset_accuracy",
                    "hamming_loss")
    headline = "f1_micro"
    calibrates = True
    label_column = "labels"
    inferred_from = "label-lists"
    oip_outputs = (("labels", "BYTES"), ("scores", "FP32"))
    curves = ("f1_micro", "f1_macro")
    error_view = "wrong-label-sets"
    card_limitation = "It predicts only the labels it was trained on; it has no 'none of these' answer."

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

    def pipeline_answer(self, result: dict, top_k) -> list[dict]:
        """The labels over their tuned thresholds by falling score (None: all; a number: that many)."""
        ranked = sorted(result["scores"].items(), key=lambda kv: -kv[1])
        if top_k == "default":
            chosen = set(result["labels"])
            ranked = [kv for kv in ranked if kv[0] in chosen]
        return [{"label": label, "score": score} for label, score in ranked[:None if top_k == "default" else top_k]]

    def report_rows(self, table: TextTable, predicted: list[dict], text_of) -> list[dict]:
        names = self.label_names
        return [{"text": text_of(i), "true": [names[j] for j in np.flatnonzero(table.labels[i])],
                 "pred": p["labels"], "scores": {k: round(v, 4) for k, v in p["scores"].items()}}
                for i, p in enumerate(predicted)]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
