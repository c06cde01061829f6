"""What a task is: everything that differs between problems, asked for by the loop, evaluation,
prediction and strategies, which never assume one label per row themselves.

A task reads and checks labels (`learn_labels`, `to_table`), encodes and says how rows are
sampled (`encode`, `sampling_classes`), configures the model (`auto_class`, `configure`), picks
and shapes the loss (`default_loss`, `losses`, `loss_weight`, `shape_loss`), scores outputs
(`metrics`, `calibrate`) and turns them into predictions (`decode`). One object per run: it
holds the label names (and, for multi-label, tuned thresholds) that the saved config carries.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from pretune.data.encode import EncodedSplit, encode_texts
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.recipe import DataConfig, LossConfig


class Task:
    name: ClassVar[str]
    auto_class: ClassVar[str] = "AutoModelForSequenceClassification"
    default_loss: ClassVar[str] = "cross_entropy"
    losses: ClassVar[tuple[str, ...]] = ("cross_entropy", "focal")
    metric_names: ClassVar[tuple[str, ...]] = ("loss",)  # scalar validation metrics
    headline: ClassVar[str] = "loss"  # the metric a plot or a summary shows first
    stratify: ClassVar[bool] = False  # carve splits stratified by the label column
    calibrates: ClassVar[bool] = False  # `calibrate` tunes something on validation after training
    one_label_per_row: ClassVar[bool] = False  # rows carry one class each (label issues, calibration)
    inputs: ClassVar[str] = "text"  # what rows hold: "text" (a tokenizer encodes) or "image"

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.label_names: list[str] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={self.label_names})"

    # -- data ------------------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return len(self.label_names or ()) or 1

    def learn_labels(self, train: pd.DataFrame) -> None:
        """Fix the label names from the training split (kept for every later split)."""

    def labels_of(self, frame: pd.DataFrame, where: str):
        """The label column as the model's targets."""
        raise NotImplementedError

    def to_table(self, frame: pd.DataFrame, where: str, with_labels: bool = True) -> TextTable:
        cfg = self.cfg
        texts = frame[cfg.text_column].astype(str).tolist()
        pairs = frame[cfg.text_pair_column].astype(str).tolist() if cfg.text_pair_column else None
        labels = self.labels_of(frame, where) if with_labels else None
        return TextTable(texts, pairs, labels)

    def unlabelled(self, texts: list, pairs: list | None = None) -> TextTable:
        return TextTable(list(texts), pairs, None)

    def encode(self, table: TextTable, tokenizer, max_length: int) -> EncodedSplit:
        return encode_texts(table, tokenizer, max_length)

    def for_training(self, split: EncodedSplit, seed: int) -> EncodedSplit:
        """The training split as the loop draws it (image augmentation); default: as it is."""
        return split

    def notices(self) -> list[str]:
        """What the data made the fit do differently from what the recipe reads (tags fixed up,
        sentences cut), told to the user even under --quiet and kept in metrics.json."""
        return []

    def check_model(self, model, preprocessor) -> None:
        """Fail in one line, before training, when the model cannot take the encoded input."""

    def sampling_classes(self, split: EncodedSplit) -> list[list[int]] | None:
        """The classes each training row belongs to, for balanced sampling; None: not sampleable."""
        return None

    # -- model -----------------------------------------------------------------------------
    def configure(self, config) -> None:
        """Write the task's labels (and settings) into a Hugging Face config before loading."""
        config.num_labels = self.num_labels
        if self.label_names:
            config.id2label = dict(enumerate(self.label_names))
            config.label2id = {name: i for i, name in enumerate(self.label_names)}

    def restore(self, config) -> None:
        """The inverse of `configure`: read labels back from a saved model's config."""
        if getattr(config, "id2label", None):
            self.label_names = [config.id2label[i] for i in range(config.num_labels)]

    # -- loss ------------------------------------------------------------------------------
    def loss_weight(self, cfg: LossConfig, train: EncodedSplit) -> torch.Tensor | None:
        return None

    def shape_loss(self, loss_fn):
        return loss_fn

    # -- outputs ---------------------------------------------------------------------------
    def metrics(self, outputs, split: EncodedSplit) -> dict:
        raise NotImplementedError

    def calibrate(self, outputs, split: EncodedSplit) -> dict | None:
        """Settle what validation decides (multi-label thresholds); return what was decided."""
        return None

    def scale_confidence(self, outputs, split: EncodedSplit) -> dict | None:
        """Fit what makes the stated probabilities honest on validation outputs (temperature
        scaling, `train.calibrate`), keep it for `decode` and the saved config, and return what was
        fitted with the calibration error before and after; None: the task states no probabilities."""
        return None

    def warnings(self, figures: dict) -> list[str]:
        """What a user must hear about a finished fit's figures (one split's metrics): a model that
        learnt nothing useful, said on the terminal, in the report and in the card."""
        return []

    def decode(self, outputs, split: EncodedSplit, table: TextTable) -> list[dict]:
        raise NotImplementedError


def require_labels(values: pd.Series, where: str, column: str) -> None:
    bad = values.isna()
    if bad.any():
        raise PretuneError(
            f"{where}: {int(bad.sum())} row(s) have no label (NaN) in '{column}', "
            f"first at row {int(np.flatnonzero(bad)[0])}"
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


def class_weights(cfg: LossConfig, label_counts: np.ndarray) -> torch.Tensor | None:
    """'balanced' weights n / (k * count_c), as scikit-learn computes them; or the given list."""
    if cfg.class_weights is None:
        return None
    k = len(label_counts)
    if cfg.class_weights == "balanced":
        counts = np.maximum(label_counts, 1)
        return torch.tensor(counts.sum() / (k * counts), dtype=torch.float32)
    if len(cfg.class_weights) != k:
        raise PretuneError(f"train.loss.class_weights has {len(cfg.class_weights)} values for {k} classes")
    return torch.tensor(cfg.class_weights, dtype=torch.float32)
