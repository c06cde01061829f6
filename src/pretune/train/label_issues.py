"""Rows whose given label the model contradicts confidently, ranked by cleanlab's
`find_label_issues` (Northcutt et al. 2021, confident learning) over out-of-sample probabilities.

Out of sample is what makes the ranking honest: a model scores its own training rows as it
memorised them. So the probabilities are either the fitted model's on validation (no extra
training; only validation rows can be flagged), or K-fold cross-validated over the training split:
K fits of the same recipe, each predicting the fold it did not see (every training row can be
flagged, at K times a fit's cost). Written to `label_issues.json` in the run; the report lists them."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pretune import atomic
from pretune.data.prepare import TextTable, prepare
from pretune.errors import MissingExtraError, PretuneError

FILE = "label_issues.json"
MAX_TEXT = 400


def write_label_issues(run, frames=None) -> Path | None:
    """Find and write the run's label issues as its recipe's `train.label_issues` says; None when off."""
    settings = run.recipe.train.label_issues
    if settings.source == "off":
        return None
    try:
        from cleanlab.filter import find_label_issues
    except ImportError as e:
        raise MissingExtraError("cleanlab", "autopilot") from e
    predictor = run.predictor()
    task = predictor.task
    if not task.one_label_per_row or task.inputs != "text":
        raise PretuneError(f"train.label_issues needs texts with one label each; task {task.name} has not")
    prepared = prepare(run.recipe.data, task, label_names=task.label_names, frames=frames)
    split = "train" if settings.source == "cross-validation" else "validation"
    table = prepared.splits[split]
    if settings.source == "cross-validation":
        probs = _cross_validated(run, prepared, settings.folds)
    else:
        probs = _probabilities(predictor, table)
    labels = np.asarray(table.labels, dtype=np.int64)
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    names = task.label_names
    rows = [{"split": split, "row": int(i), "text": _text(table, int(i)), "given": names[labels[i]],
             "predicted": names[int(probs[i].argmax())], "given_probability": round(float(probs[i, labels[i]]), 4),
             "predicted_probability": round(float(probs[i].max()), 4)}
            for i in ranked[: settings.max_rows]]
    result = {"source": settings.source, "folds": settings.folds if split == "train" else None, "split": split,
              "rows_checked": len(labels), "found": len(ranked), "rows": rows}
    path = run.path / FILE
    atomic.write_json(path, result)
    how = f"{settings.folds}-fold cross-validation" if split == "train" else "validation probabilities"
    print(f"pretune: {len(ranked)} of {len(labels)} {split} rows look mislabelled (cleanlab, {how}): {path}",
          file=sys.stderr)
    return path


def _probabilities(predictor, table: TextTable) -> np.ndarray:
    names = predictor.task.label_names
    return np.array([[p["scores"][n] for n in names] for p in predictor.predict_table(table)], dtype=np.float64)


def _cross_validated(run, prepared, folds: int) -> np.ndarray:
    """Each training row's probabilities from a fit of the run's recipe that did not see it."""
    from sklearn.model_selection import StratifiedKFold

    from pretune.predictor import Run
    from pretune.train.fit import fit

    cfg, names = run.recipe.data, prepared.label_names
    train, validation = prepared.splits["train"], prepared.splits["validation"]
    labels = np.asarray(train.labels, dtype=np.int64)
    if np.bincount(labels, minlength=len(names)).min() < folds:
        raise PretuneError(f"train.label_issues.folds {folds}: a class has fewer training rows than folds")
    recipe = run.recipe.updated({"train.label_issues.source": "off", "train.calibrate": False, "report": False,
                                 "data.max_train_samples": None, "data.max_eval_samples": None})
    probs = np.zeros((len(labels), len(names)))
    work = Path(tempfile.mkdtemp(prefix="pretune-folds-"))
    try:
        split = StratifiedKFold(folds, shuffle=True, random_state=recipe.seed).split(np.zeros(len(labels)), labels)
        for k, (seen, unseen) in enumerate(split):
            print(f"pretune: label issues: fold {k + 1} of {folds}", file=sys.stderr)
            data = {"train": _frame(cfg, train, names, seen), "validation": _frame(cfg, validation, names),
                    "test": _frame(cfg, train, names, unseen)}
            fold = fit(recipe, work / f"fold-{k}", quiet=True, save_model=True, test=False, data=data)
            held = TextTable([train.texts[i] for i in unseen],
                             [train.pairs[i] for i in unseen] if train.pairs else None, labels[unseen])
            probs[unseen] = _probabilities(Run(fold.path).predictor(), held)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return probs


def _frame(cfg, table: TextTable, names: list[str], rows=None) -> pd.DataFrame:
    rows = range(len(table)) if rows is None else rows
    frame = {cfg.text_column: [table.texts[i] for i in rows],
             cfg.label_column: [names[int(table.labels[i])] for i in rows]}
    if table.pairs is not None:
        frame[cfg.text_pair_column] = [table.pairs[i] for i in rows]
    return pd.DataFrame(frame)


def _text(table: TextTable, i: int) -> str:
    value = table.texts[i]
    text = value if isinstance(value, str) else f"row {i}"
    if table.pairs is not None:
        text = f"{text} [SEP] {table.pairs[i]}"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
