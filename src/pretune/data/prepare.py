"""From a DataConfig (or DataFrames given in Python) to checked train / validation / test tables.

Every problem with the data (missing column, empty table, missing labels, a test label never
seen in training) is found here, before a model is loaded, and told in one line. What a label
is (a class, a number, a list, a tag per word) is the task's business: it is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretune.data import bundled
from pretune.data.clean import drop_from_train, labels_as_text, refuse_too_many_classes, settle_missing
from pretune.data.splits import carve, split_frame
from pretune.data.tables import read_hub_dataset, read_table
from pretune.errors import PretuneError
from pretune.recipe import DataConfig

SPLITS = ("train", "validation", "test")


@dataclass
class TextTable:
    """One split: texts (a string, or a list of words, per row), optional second texts, and the
    task's labels (None when unlabelled)."""

    texts: list
    pairs: list[str] | None
    labels: Any

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class PreparedData:
    splits: dict[str, TextTable]
    label_names: list[str] | None  # None for regression
    notices: list[str] = field(default_factory=list)  # what reading changed (rows dropped, labels made text)

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)


FramesLike = pd.DataFrame | dict[str, pd.DataFrame]


def load_frames(cfg: DataConfig, stratify: bool, given: FramesLike | None = None,
                notices: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read the configured source (or take the given frames) into train, validation and test.
    `stratify`: the labels are class names (read as text, split stratified by them); what the
    reading changed is appended to `notices`."""
    label = cfg.label_column if stratify else None
    notices = [] if notices is None else notices

    def checked(frame, where):
        return _checked_frame(frame, cfg, where, True, stratify, notices)

    if given is not None:
        frames = {"train": given} if isinstance(given, pd.DataFrame) else dict(given)
        unknown = set(frames) - set(SPLITS)
        if unknown or "train" not in frames:
            raise PretuneError(f"data= takes a DataFrame or a dict with 'train' (and 'validation', 'test'); "
                               f"got keys {', '.join(map(str, frames))}")
    elif cfg.train:
        frames = {"train": read_source(cfg.train, cfg, stratify)}
        for split in ("validation", "test"):
            if getattr(cfg, split):
                frames[split] = read_source(getattr(cfg, split), cfg, stratify)
    elif cfg.source in bundled.datasets:
        return bundled.load_bundled(cfg.source)
    elif cfg.source.startswith("hf:"):
        frames = read_hub_dataset(cfg.source[3:])
        if "train" not in frames:
            raise PretuneError(f"dataset '{cfg.source}' has no train split: {', '.join(frames)}")
        frames = {k: v for k, v in frames.items() if k in SPLITS}
    else:
        if not any(ch in cfg.source for ch in "./\\") and not Path(cfg.source).is_dir():
            raise PretuneError(
                f"unknown data source '{cfg.source}': give a table file, hf:NAME, or one of "
                f"{', '.join(bundled.datasets.available())}"
            )
        whole = checked(read_source(cfg.source, cfg, stratify), cfg.source)
        if stratify:  # on the whole file, before the split: the message names the file
            refuse_too_many_classes(whole[cfg.label_column], cfg.source, cfg.label_column)
        return split_frame(
            whole,
            label, cfg.validation_fraction, cfg.test_fraction, cfg.split_seed,
        )
    frames = {k: checked(v, k) for k, v in frames.items()}
    for split, frac in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction)):
        if split not in frames:
            frames["train"], frames[split] = carve(frames["train"], label, frac, cfg.split_seed)
    return frames


def load_checked(cfg: DataConfig, stratify: bool, given: FramesLike | None = None,
                 notices: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """`load_frames`, each split checked (missing cells, class names as text) and, for classes,
    too many of them for the training rows refused: the frames `prepare` and `pretune check` see."""
    notices = [] if notices is None else notices
    frames = load_frames(cfg, stratify, given, notices)
    frames = {k: _checked_frame(v, cfg, k, True, stratify, notices) for k, v in frames.items()}
    if stratify:
        refuse_too_many_classes(frames["train"][cfg.label_column], "train", cfg.label_column)
    return frames


def prepare(cfg: DataConfig, task, label_names: list[str] | None = None,
            frames: FramesLike | None = None) -> PreparedData:
    """Load, check and turn labels into `task`'s targets (tasks.create_task(cfg): tasks build
    on this module, so it never imports them). `label_names` reuses a trained model's labels;
    `frames` (a DataFrame or a dict of splits) replaces reading files."""
    notices: list[str] = []
    frames = load_checked(cfg, task.stratify, frames, notices)
    if cfg.drop_duplicates or cfg.drop_leaked:
        notices += drop_from_train(frames, cfg.text_column, cfg.drop_duplicates, cfg.drop_leaked)
    if cfg.max_train_samples and len(frames["train"]) > cfg.max_train_samples:
        frames["train"] = frames["train"].sample(n=cfg.max_train_samples, random_state=cfg.split_seed)
    if cfg.max_eval_samples:
        for split in ("validation", "test"):
            if len(frames[split]) > cfg.max_eval_samples:
                frames[split] = frames[split].sample(n=cfg.max_eval_samples, random_state=cfg.split_seed)
    if label_names is None:
        task.learn_labels(frames["train"])
    else:
        task.label_names = label_names
    tables = {split: task.to_table(frame, split) for split, frame in frames.items()}
    return PreparedData(tables, task.label_names, notices)


def resolve_data_paths(cfg: DataConfig) -> DataConfig:
    """The config with its file paths made absolute, so a saved run reads the same files from
    any working directory (`load_run(RUN).evaluate()` elsewhere)."""
    update = {}
    for key in ("train", "validation", "test", "source", "unlabeled"):
        value = getattr(cfg, key)
        if value is None or (key == "source" and (value in bundled.datasets or value.startswith("hf:"))):
            continue
        path = Path(value).expanduser()
        if path.exists() and not path.is_absolute():
            update[key] = str(path.resolve())
    return cfg.model_copy(update=update) if update else cfg


def read_source(path, cfg: DataConfig, labels_as_text: bool = False) -> pd.DataFrame:
    """A table file; for images also a folder per label or an IDX images file (labels beside
    it), and a table's relative image paths are taken from the table's own folder. Text columns
    (and the label column when `labels_as_text`) keep a delimited file's spelling (`007`)."""
    text = [cfg.text_column, cfg.text_pair_column] + ([cfg.label_column] if labels_as_text else [])
    if cfg.inputs != "image":
        return read_table(path, cfg.encoding, cfg.delimiter, text)
    from pretune.data import images

    path = Path(path)
    if path.is_dir():
        return images.read_image_folder(path, cfg.text_column, cfg.label_column)
    if images.is_idx(path):
        return images.read_idx_pair(path, cfg.text_column, cfg.label_column)
    return images.resolve_paths(read_table(path, cfg.encoding, cfg.delimiter, text), cfg.text_column, path.parent)


def read_rows(path, cfg: DataConfig, task, with_labels: bool) -> TextTable:
    """A table file as the task's rows, with or without labels (eval, predict); what reading
    changed (rows dropped, labels made text) is told on stderr."""
    import sys

    notices: list[str] = []
    frame = _checked_frame(read_source(path, cfg, task.stratify and with_labels), cfg, str(path), with_labels,
                           task.stratify, notices)
    for notice in notices:
        print(f"pretune: notice: {notice}", file=sys.stderr)
    return task.to_table(frame, str(path), with_labels)


def _checked_frame(frame: pd.DataFrame, cfg: DataConfig, where: str, with_labels: bool, classes: bool,
                   notices: list[str]) -> pd.DataFrame:
    """`_checked`, then missing cells refused (or dropped: data.drop_missing) and, when the labels
    are `classes`, the label column made class-name strings; what changed goes to `notices`."""
    frame = _checked(frame, cfg, where, with_labels, missing_text=False)
    columns = {cfg.text_column: "text"} | ({cfg.label_column: "label"} if with_labels else {})
    frame, said = settle_missing(frame, columns, where, cfg.drop_missing, (cfg.label_column,) if classes else ())
    notices += said
    if with_labels and classes:
        frame, said = labels_as_text(frame, cfg.label_column, where)
        notices += said
    return frame


def _checked(frame: pd.DataFrame, cfg: DataConfig, where: str, with_labels: bool = True,
             missing_text: bool = True) -> pd.DataFrame:
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
    empty = frame[cfg.text_column].isna()
    if missing_text and empty.any():
        raise PretuneError(f"{where}: {int(empty.sum())} row(s) have no text, first at row "
                           f"{int(np.flatnonzero(empty)[0])}")
    return frame
