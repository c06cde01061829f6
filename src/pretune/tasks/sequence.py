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
from pretune.tasks.temperature import expected_calibration_error, fit_temperature

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
    one_label_per_row = True
    inferred_from = "classes"

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

    def warnings(self, figures: dict) -> list[str]:
        return collapse_warnings(figures, self.label_names)

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


# A model "predicts one class" when that class takes this share of its answers while being less of the
# truth; its macro F1 is "at chance" within this margin of what answering the majority class always scores.
ONE_CLASS_SHARE, CHANCE_MARGIN = 0.95, 0.02
REMEDY = ("try train.loss.class_weights: balanced or data.sampling: balanced, a lower learning rate, "
          "or more epochs")


def collapse_warnings(figures: dict, label_names: list[str]) -> list[str]:
    """One line each when the confusion matrix shows a model that answers (nearly) one class, or whose
    macro F1 is no better than always answering the majority class (the drug-review fit that said
    'positive' for all 379 test rows, accuracy 0.654 = the majority share, macro F1 0.264)."""
    counts = np.asarray(figures.get("confusion_matrix") or [], dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != len(label_names) or counts.sum() == 0:
        return []
    n, k = counts.sum(), len(label_names)
    predicted, true = counts.sum(0) / n, counts.sum(1) / n
    top = int(predicted.argmax())
    out = []
    if predicted[top] >= ONE_CLASS_SHARE and true[top] < ONE_CLASS_SHARE:
        out.append(f"the model answers '{label_names[top]}' for {predicted[top]:.0%} of {int(n)} rows "
                   f"(the class is {true[top]:.0%} of them): it has not learnt to tell the classes apart; {REMEDY}")
    majority = true.max()
    # The better of two answers without skill: always the majority class, or guessing with the class
    # shares (each class's precision and recall are then its share: macro F1 1/k).
    chance = max((2 * majority / (1 + majority)) / k, 1 / k)
    f1 = figures.get("f1_macro")
    if isinstance(f1, (int, float)) and f1 <= chance + CHANCE_MARGIN and not out:
        out.append(f"macro F1 {f1:.3f} is at chance (answering without skill scores {chance:.3f}); {REMEDY}")
    return out
