"""`predictions/test.jsonl`: what a finished fit's model says on each test row, written once at the
end of `pretune.fit` so that the report (which only reads directories) can show calibration and
the errors a person can read without loading the model again.

One JSON object per row, kept small: texts cut at MAX_TEXT characters, at most MAX_ROWS rows;
image rows carry a THUMB_PX thumbnail (PNG, base64) only when misclassified, at most THUMBS.
Each task shapes its rows (Task.report_rows), e.g.

    classification / image   {"text", "true", "pred", "score"}        (score: the top probability;
                             with a fitted temperature also "score_before", the unscaled one)
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
    """Write the rows of the run's test split; None when the run saved no model. A run fit just
    returned holds its test answers (`run.test_predictions`: fit's one test pass); otherwise the
    saved model predicts them. `frames`: the DataFrames a Python caller gave fit instead of the
    recipe's data."""
    from pretune.data.prepare import TextTable, prepare

    if not (run.path / "model").is_dir():
        return None
    held = getattr(run, "test_predictions", None)
    if held is not None:
        task, table, predicted = held.task, held.table, held.answers
    else:
        predictor = run.predictor()
        task = predictor.task
        table = prepare(run.recipe.data, task, label_names=task.label_names, frames=frames).splits["test"]
        predicted = None
    n = min(len(table), MAX_ROWS)
    labels = None if table.labels is None else table.labels[:n]
    table = TextTable(table.texts[:n], table.pairs[:n] if table.pairs else None, labels)
    predicted = predicted[:n] if predicted is not None else predictor.predict_table(table)
    rows = _rows(task, table, predicted)
    _add_unscaled_scores(getattr(task, "temperature", None), rows, predicted)
    atomic.write_jsonl(run.path / PREDICTIONS, rows)
    return run.path / PREDICTIONS


def read_predictions(run_path: Path) -> list[dict]:
    """The rows, each checked against the shape written here (runs.read_predictions)."""
    return runs.read_predictions(run_path)


def _rows(task, table, predicted: list[dict]) -> list[dict]:
    rows, thumbs = task.report_rows(table, predicted, lambda i: _text(table, i)), 0
    if task.inputs == "image":
        for i, row in enumerate(rows):
            if row.get("true") != row.get("pred") and thumbs < THUMBS:
                row["thumbnail"] = _thumbnail(table.texts[i])
                thumbs += 1
    return rows


def _add_unscaled_scores(temperature: float | None, rows: list[dict], predicted: list[dict]) -> None:
    """With a fitted temperature T, each row also keeps its top probability before scaling, for the
    report's before/after reliability diagram: softmax(T * log p) undoes softmax(z / T) exactly."""
    if not temperature:
        return
    for row, p in zip(rows, predicted, strict=True):
        if "score" in row and p.get("scores"):
            logp = np.log(np.clip(np.array(list(p["scores"].values()), dtype=np.float64), 1e-300, None))
            z = temperature * logp
            probs = np.exp(z - z.max())
            row["score_before"] = round(float(probs.max() / probs.sum()), 4)


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
