"""Seeded, stratified splitting of one table into train / validation / test."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split


def split_frame(
    frame: pd.DataFrame, label_column: str | None, val_frac: float, test_frac: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Carve validation and test parts off `frame`, stratified by label when it is categorical."""
    train, test = _split(frame, label_column, test_frac, seed)
    train, validation = _split(train, label_column, val_frac / (1 - test_frac), seed)
    return {"train": train, "validation": validation, "test": test}


def carve(
    frame: pd.DataFrame, label_column: str | None, frac: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `frame` into (rest, part) with `part` holding about `frac` of the rows."""
    return _split(frame, label_column, frac, seed)


def _split(frame, label_column, frac, seed):
    stratify = None
    if label_column is not None and not pd.api.types.is_float_dtype(frame[label_column]):
        counts = frame[label_column].value_counts()
        # Stratifying needs at least two rows per class in each part; fall back to random.
        if counts.min() >= 2 and len(counts) <= frac * len(frame):
            stratify = frame[label_column]
    # The index keeps each row's number in the source table, so that errors can name it.
    return train_test_split(frame, test_size=frac, random_state=seed, stratify=stratify)
