"""Multi-label's pure parts: label lists from table cells, per-label thresholds, metrics, BCE weights.

A row holds a set of labels (possibly none); the model gives one sigmoid per label, and a label is
predicted when its probability reaches that label's threshold, tuned on validation.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

from pretune.errors import PretuneError

DEFAULT_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)  # 0.05 ... 0.95, 0.5 among them


def parse_label_lists(series: pd.Series | Sequence, separator: str | None = None) -> list[list[str]]:
    """One list of label names per row, from list cells (JSONL, Parquet) or strings.

    A string cell is a JSON list (`["a", "b"]`), a Python list as pandas writes one to CSV
    (`['a', 'b']`), or with `separator` labels joined by it (`a|b`; an empty string is no label).
    An empty list is a row with no label; a missing cell (NaN / None) is an error naming the row
    (position from 0), since it more often means a broken file than "no label".
    """
    rows = []
    for row, cell in enumerate(series):
        where = f"row {row}"
        if cell is None or (not isinstance(cell, str | list | tuple | np.ndarray) and pd.isna(cell)):
            raise PretuneError(f"{where}: the label cell is empty; write [] for a row with no label")
        if isinstance(cell, str):
            cell = _split_string(cell, separator, where)
        if isinstance(cell, np.ndarray):  # Parquet list columns arrive as arrays
            cell = cell.tolist()
        if not isinstance(cell, list | tuple):
            raise PretuneError(f"{where}: expected a list of labels, found {str(cell)[:60]!r}")
        labels = []
        for label in cell:
            if isinstance(label, bool) or not isinstance(label, str | int) or not str(label).strip():
                raise PretuneError(f"{where}: {label!r} is not a label name (in {str(cell)[:60]})")
            if str(label).strip() not in labels:
                labels.append(str(label).strip())
        rows.append(labels)
    return rows


def _split_string(cell: str, separator: str | None, where: str) -> list:
    if separator is not None:
        return [part.strip() for part in cell.split(separator) if part.strip()]
    text = cell.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, list):
            return value
    raise PretuneError(
        f"{where}: label cell {cell[:60]!r} is not a list like [\"a\", \"b\"]; "
        f"for labels joined like 'a|b', name the separator"
    )


def binarize(label_lists: Iterable[Sequence[str]], label_names: Sequence[str]) -> np.ndarray:
    """A (rows, labels) 0/1 float32 matrix; a label not in `label_names` is an error naming the row."""
    index = {name: i for i, name in enumerate(label_names)}
    rows = list(label_lists)
    matrix = np.zeros((len(rows), len(index)), dtype=np.float32)
    for row, labels in enumerate(rows):
        for label in labels:
            if label not in index:
                raise PretuneError(f"row {row}: label '{label}' was not seen in training; known: "
                                   f"{', '.join(label_names)}")
            matrix[row, index[label]] = 1.0
    return matrix


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, grid: Sequence[float] | None = None) -> np.ndarray:
    """Per label, the threshold on the grid that maximises that label's F1 on validation.

    Predicted means prob >= threshold. Among thresholds with the best F1 the one closest to 0.5
    wins (the untuned default, and the least surprising). A label with no positive row in
    validation has no F1 to maximise, so it keeps 0.5.
    """
    probs, targets = np.asarray(probs, dtype=float), np.asarray(targets) > 0.5
    if probs.shape != targets.shape or probs.ndim != 2:
        raise ValueError(f"probs {probs.shape} and targets {targets.shape} must both be (rows, labels)")
    grid = np.asarray(DEFAULT_GRID if grid is None else grid, dtype=float)
    # Ties resolved by order: closest to 0.5 first, then the lower of two equally close (rounded,
    # or float error makes 0.7 closer than 0.3).
    grid = grid[np.lexsort((grid, np.round(np.abs(grid - 0.5), 9)))]
    thresholds = np.full(probs.shape[1], 0.5)
    for k in range(probs.shape[1]):
        positive = targets[:, k]
        if not positive.any():
            continue
        predicted = probs[:, k][:, None] >= grid[None, :]  # (rows, thresholds)
        tp = (predicted & positive[:, None]).sum(axis=0)
        f1 = 2 * tp / (predicted.sum(axis=0) + positive.sum())  # 2tp / (2tp + fp + fn)
        thresholds[k] = grid[int(np.argmax(f1))]  # argmax takes the first of equal maxima
    return thresholds


def multilabel_metrics(targets: np.ndarray, preds: np.ndarray, label_names: Sequence[str]) -> dict:
    """Micro / macro F1, micro precision and recall, subset accuracy (every label of a row right),
    Hamming loss (share of wrong row-label cells), and `per_label: {name: {precision, recall, f1,
    support}}`. An undefined ratio (nothing predicted or nothing true) counts as 0."""
    targets, preds = np.asarray(targets).astype(int), np.asarray(preds).astype(int)
    if targets.shape != preds.shape or targets.shape[1] != len(label_names):
        raise ValueError(f"targets {targets.shape}, preds {preds.shape}, {len(label_names)} label names")
    precision, recall, f1, _ = precision_recall_fscore_support(targets, preds, average="micro", zero_division=0)
    per = precision_recall_fscore_support(targets, preds, average=None, zero_division=0)
    return {
        "f1_micro": float(f1),
        "f1_macro": float(f1_score(targets, preds, average="macro", zero_division=0)),
        "precision_micro": float(precision),
        "recall_micro": float(recall),
        "subset_accuracy": float(accuracy_score(targets, preds)),
        "hamming_loss": float(hamming_loss(targets, preds)),
        "per_label": {
            name: {"precision": float(per[0][k]), "recall": float(per[1][k]), "f1": float(per[2][k]),
                   "support": int(per[3][k])}
            for k, name in enumerate(label_names)
        },
    }


def positive_weights(targets: np.ndarray) -> np.ndarray:
    """Per label, negatives / positives in training: BCEWithLogitsLoss's `pos_weight`, which makes a
    rare label's positives weigh as much in the loss as its negatives. A label with no positive
    row gets 1 (there is no positive term to weigh)."""
    targets = np.asarray(targets) > 0.5
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    return np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0).astype(np.float32)
