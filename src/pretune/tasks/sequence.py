"""Sequence classification: one label per text (or text pair); softmax over the classes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm

from pretune.data.encode import EncodedSplit
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.recipe import LossConfig
from pretune.tasks.base import Task, class_weights, require_labels, softmax, tasks

AVERAGES = ("macro", "micro", "weighted")


@tasks.register("sequence-classification")
class SequenceClassification(Task):
    metric_names = ("loss", "accuracy", *(f"{m}_{a}" for a in AVERAGES for m in ("precision", "recall", "f1")))
    headline = "accuracy"
    stratify = True
    budget_metric = "accuracy"
    oip_outputs = (("label", "BYTES"), ("score", "FP32"), ("scores", "FP32"))
    pipeline_flat = True
    pipeline_top_k: ClassVar[int] = 1  # labels `pipeline` answers per input unless asked (images: 5)
    curves = ("accuracy", "f1_macro")
    error_view = "confidently-wrong"
    card_limitation = "It predicts only the labels it was trained on; it has no 'none of these' answer."

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

    def decode(self, outputs: np.ndarray, split: EncodedSplit, table: TextTable) -> list[dict]:
        probs = softmax(outputs)
        return [
            {"label": self.label_names[int(p.argmax())], "score": float(p.max()),
             "scores": {name: float(p[i]) for i, name in enumerate(self.label_names)}}
            for p in probs
        ]

    def pipeline_answer(self, result: dict, top_k) -> list[dict]:
        """The top `top_k` labels by score (default: pipeline's own, 1 for text, 5 for images)."""
        return ranked_labels(result["scores"], self.pipeline_top_k if top_k == "default" else top_k)

    def report_rows(self, table: TextTable, predicted: list[dict], text_of) -> list[dict]:
        names = self.label_names
        return [{"text": text_of(i), "true": names[int(table.labels[i])], "pred": p["label"],
                 "score": round(p["score"], 4)} for i, p in enumerate(predicted)]


tasks.alias("classification", SequenceClassification.name)


def ranked_labels(scores: dict[str, float], top_k: int | None) -> list[dict]:
    """pipeline's classification answer: labels by falling score, the first top_k (None: all)."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return [{"label": label, "score": score} for label, score in ranked[:top_k]]


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
