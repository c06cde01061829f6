"""`predictions/test.jsonl`: what a finished fit's model says on each test row, written once at the
end of `pretune.fit` so that the report (which only reads directories) can show calibration and
the errors a person can read without loading the model again.

One JSON object per row, kept small: texts cut at MAX_TEXT characters, at most MAX_ROWS rows;
image rows carry a THUMB_PX thumbnail (PNG, base64) only when misclassified, at most THUMBS.

    classification / image   {"text", "true", "pred", "score"}        (score: the top probability)
    multi-label              {"text", "true": [...], "pred": [...], "scores": {label: p}}
    regression               {"text", "true", "pred"}
    token classification     {"tokens", "true": [tag per word], "pred": [tag per word]}
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from pretune import atomic, runs

PREDICTIONS = runs.PREDICTIONS
MAX_ROWS, MAX_TEXT, THUMBS, THUMB_PX = 2000, 400, 32, 64


def write_test_predictions(run, frames=None) -> Path | None:
    """Predict the run's test split with its saved model and write the rows; None when the run
    saved no model. `frames`: the DataFrames a Python caller gave fit instead of the recipe's data."""
    from pretune.data.prepare import TextTable, prepare

    if not (run.path / "model").is_dir():
        return None
    predictor = run.predictor()
    task = predictor.task
    prepared = prepare(run.recipe.data, task, label_names=task.label_names, frames=frames)
    table = prepared.splits["test"]
    n = min(len(table), MAX_ROWS)
    labels = None if table.labels is None else table.labels[:n]
    table = TextTable(table.texts[:n], table.pairs[:n] if table.pairs else None, labels)
    predicted = predictor.predict_table(table)
    rows = _rows(task, table, predicted)
    atomic.write_jsonl(run.path / PREDICTIONS, rows)
    return run.path / PREDICTIONS


def read_predictions(run_path: Path) -> list[dict]:
    """The rows, each checked against the shape written here (runs.read_predictions)."""
    return runs.read_predictions(run_path)


def _rows(task, table, predicted: list[dict]) -> list[dict]:
    names = task.label_names
    if task.name == "token-classification":
        return [{"tokens": [str(w) for w in words], "true": [names[t] for t in gold], "pred": p["tags"]}
                for words, gold, p in zip(table.texts, table.labels, predicted, strict=True)]
    if task.name == "regression":
        return [{"text": _text(table, i), "true": float(table.labels[i]), "pred": p["value"]}
                for i, p in enumerate(predicted)]
    if task.name == "multi-label":
        return [{"text": _text(table, i), "true": [names[j] for j in np.flatnonzero(table.labels[i])],
                 "pred": p["labels"], "scores": {k: round(v, 4) for k, v in p["scores"].items()}}
                for i, p in enumerate(predicted)]
    rows, thumbs = [], 0
    for i, p in enumerate(predicted):
        row = {"text": _text(table, i), "true": names[int(table.labels[i])], "pred": p["label"],
               "score": round(p["score"], 4)}
        if task.inputs == "image" and row["true"] != row["pred"] and thumbs < THUMBS:
            row["thumbnail"] = _thumbnail(table.texts[i])
            thumbs += 1
        rows.append(row)
    return rows


def _text(table, i: int) -> str:
    value = table.texts[i]
    if not isinstance(value, str):  # an image given as an array or a PIL image: no name to show
        return f"row {i}"
    text = value if table.pairs is None else f"{value} [SEP] {table.pairs[i]}"
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def _thumbnail(image) -> str:
    from PIL import Image

    from pretune.data.images import decode_images

    pixels = decode_images([image], THUMB_PX, "thumbnail", workers=0)[0].permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
