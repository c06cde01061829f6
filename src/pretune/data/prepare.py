"""From a DataConfig to checked train / validation / test tables with labels as ids.

Every problem with the data (missing column, empty table, missing labels, a test label never
seen in training) is found here, before a model is loaded, and told in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pretune.data import bundled
from pretune.data.splits import carve, split_frame
from pretune.data.tables import read_hub_dataset, read_table
from pretune.errors import PretuneError
from pretune.recipe import DataConfig

SPLITS = ("train", "validation", "test")


@dataclass
class TextTable:
    """One split: texts (and optional second texts) with label ids or regression targets."""

    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class PreparedData:
    splits: dict[str, TextTable]
    label_names: list[str] | None  # None for regression

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)


def load_frames(cfg: DataConfig) -> dict[str, pd.DataFrame]:
    """Read the configured source into up to three raw frames (train, validation, test)."""
    label = cfg.label_column if cfg.task == "classification" else None
    if cfg.train:
        frames = {"train": read_table(cfg.train)}
        for split in ("validation", "test"):
            if getattr(cfg, split):
                frames[split] = read_table(getattr(cfg, split))
    elif cfg.source in bundled.datasets:
        return bundled.load_bundled(cfg.source)
    elif cfg.source.startswith("hf:"):
        frames = read_hub_dataset(cfg.source[3:])
        if "train" not in frames:
            raise PretuneError(f"dataset '{cfg.source}' has no train split: {', '.join(frames)}")
        frames = {k: v for k, v in frames.items() if k in SPLITS}
    else:
        if not any(ch in cfg.source for ch in "./\\"):
            raise PretuneError(
                f"unknown data source '{cfg.source}': give a table file, hf:NAME, or one of "
                f"{', '.join(bundled.datasets.available())}"
            )
        return split_frame(
            _checked(read_table(cfg.source), cfg, cfg.source),
            label, cfg.validation_fraction, cfg.test_fraction, cfg.split_seed,
        )
    frames = {k: _checked(v, cfg, k) for k, v in frames.items()}
    for split, frac in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction)):
        if split not in frames:
            frames["train"], frames[split] = carve(frames["train"], label, frac, cfg.split_seed)
    return frames


def prepare(cfg: DataConfig, label_names: list[str] | None = None) -> PreparedData:
    """Load, check and encode labels. Pass `label_names` to reuse a trained model's label map."""
    frames = load_frames(cfg)
    frames = {k: _checked(v, cfg, k) for k, v in frames.items()}
    if cfg.max_train_samples and len(frames["train"]) > cfg.max_train_samples:
        frames["train"] = frames["train"].sample(n=cfg.max_train_samples, random_state=cfg.split_seed)
    if cfg.max_eval_samples:
        for split in ("validation", "test"):
            if len(frames[split]) > cfg.max_eval_samples:
                frames[split] = frames[split].sample(n=cfg.max_eval_samples, random_state=cfg.split_seed)
    if cfg.task == "classification" and label_names is None:
        label_names = sorted(str(v) for v in frames["train"][cfg.label_column].unique())
        if len(label_names) < 2:
            raise PretuneError(f"training data has only one label ({label_names[0]}); need two or more")
    tables = {split: to_table(frame, cfg, label_names, split) for split, frame in frames.items()}
    return PreparedData(tables, label_names if cfg.task == "classification" else None)


def to_table(
    frame: pd.DataFrame, cfg: DataConfig, label_names: list[str] | None, where: str,
    with_labels: bool = True,
) -> TextTable:
    frame = _checked(frame, cfg, where, with_labels)
    texts = frame[cfg.text_column].astype(str).tolist()
    pairs = frame[cfg.text_pair_column].astype(str).tolist() if cfg.text_pair_column else None
    if not with_labels:
        return TextTable(texts, pairs, np.zeros(len(texts), dtype=np.int64))
    values = frame[cfg.label_column]
    if cfg.task == "regression":
        try:
            return TextTable(texts, pairs, np.array(values, dtype=np.float32))
        except (TypeError, ValueError):
            raise PretuneError(f"{where}: regression labels must be numbers") from None
    index = {name: i for i, name in enumerate(label_names or [])}
    as_text = values.astype(str)
    unseen = sorted(set(as_text) - set(index))
    if unseen:
        raise PretuneError(
            f"{where}: label(s) {', '.join(map(repr, unseen[:5]))} never seen in training "
            f"(known: {', '.join(label_names or [])})"
        )
    return TextTable(texts, pairs, np.array(as_text.map(index), dtype=np.int64))


def _checked(frame: pd.DataFrame, cfg: DataConfig, where: str, with_labels: bool = True) -> pd.DataFrame:
    needed = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    needed += [cfg.label_column] if with_labels else []
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise PretuneError(
            f"{where}: no column {', '.join(map(repr, missing))}; the columns are "
            f"{', '.join(map(str, frame.columns))}"
        )
    if len(frame) == 0:
        raise PretuneError(f"{where}: no rows")
    if with_labels:
        bad = frame[cfg.label_column].isna()
        if bad.any():
            raise PretuneError(
                f"{where}: {int(bad.sum())} row(s) have no label (NaN) in '{cfg.label_column}', "
                f"first at row {int(np.flatnonzero(bad)[0])}"
            )
    if frame[cfg.text_column].isna().any():
        raise PretuneError(f"{where}: {int(frame[cfg.text_column].isna().sum())} row(s) have no text")
    return frame
