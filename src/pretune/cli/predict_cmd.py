"""pretune predict RUN_DIR --text "..." | --data FILE"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pretune.errors import PretuneError


def predict(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit (or compress)"),
    text: list[str] = typer.Option([], "--text", help="a text to label (repeatable)"),
    data: Path | None = typer.Option(None, "--data", help="table of texts: csv, jsonl, parquet or conll"),
    text_column: str | None = typer.Option(None, help="default: the run's text column"),
) -> None:
    """Predict with a run's model; one JSON object per line (label and scores, labels,
    entities with their character offsets, or a value: as the run's task says)."""
    from pretune.predictor import Run

    if bool(text) == bool(data):
        raise PretuneError("give --text (one or more) or --data FILE, not both or neither")
    predictor = Run(run_dir).predictor()
    table = predictor.task.unlabelled(text) if data is None else predictor.read(
        data, with_labels=False, text_column=text_column)
    for row, result in zip(table.texts, predictor.predict_table(table), strict=True):
        print(json.dumps({"text": row, **result}))
