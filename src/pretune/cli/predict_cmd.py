"""pretune predict RUN_DIR --text "..." | --data FILE"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pretune.errors import PretuneError


def predict(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit"),
    text: list[str] = typer.Option([], "--text", help="a text to label (repeatable)"),
    data: Path | None = typer.Option(None, "--data", help="table of texts: csv, jsonl or parquet"),
    text_column: str | None = typer.Option(None, help="default: the run's text column"),
) -> None:
    """Label texts with a run's model; one JSON object per line."""
    from pretune.runs import Run

    if bool(text) == bool(data):
        raise PretuneError("give --text (one or more) or --data FILE, not both or neither")
    run = Run(run_dir)
    pairs = None
    if data is not None:
        text, pairs = run.predictor().read_texts(data, run.recipe.data, text_column)
    for t, result in zip(text, run.predict(list(text), pairs), strict=True):
        print(json.dumps({"text": t, **result}))
