"""pretune predict RUN_DIR --text "..." | --data FILE | --image FILE|DIR"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import to_json
from pretune.errors import PretuneError


def predict(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit (or compress)"),
    text: list[str] = typer.Option([], "--text", help="a text to label (repeatable)"),
    data: Path | None = typer.Option(None, "--data", help="table of texts: csv, jsonl, parquet or conll"),
    image: list[Path] = typer.Option([], "--image", help="an image file, or a folder of them (repeatable)"),
    text_column: str | None = typer.Option(None, help="default: the run's text column"),
    encoding: str | None = typer.Option(None, help="of the --data file (default: UTF-8, else detected, "
                                        "with a notice)"),
) -> None:
    """Predict with a run's model; one JSON object per line (label and scores, labels,
    entities with their character offsets, or a value: as the run's task says)."""
    from pretune.predictor import Run

    if (bool(text) + bool(data) + bool(image)) != 1:
        raise PretuneError("give --text (one or more), --data FILE or --image FILE|DIR: exactly one of them")
    predictor = Run(run_dir).predictor()
    inputs = predictor.task.inputs
    if (image and inputs != "image") or (text and inputs == "image"):
        given = "--image" if image else "--text"
        wanted = "--image FILE|DIR or --data TABLE" if inputs == "image" else "--text or --data FILE"
        raise PretuneError(f"{given} does not fit {run_dir}: its model is a {predictor.task.name} model of "
                           f"{'images' if inputs == 'image' else 'text'}; give {wanted}")
    if image:
        from pretune.data.images import list_images

        files = [str(f) for item in image for f in list_images(item)]
        for path, result in zip(files, predictor.predict(files), strict=True):
            print(to_json({"image": path, **result}))
        return
    table = predictor.task.unlabelled(text) if data is None else predictor.read(
        data, with_labels=False, text_column=text_column, encoding=encoding)
    for row, result in zip(table.texts, predictor.predict_table(table), strict=True):
        print(to_json({"text": row, **result}))
