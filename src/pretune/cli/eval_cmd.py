"""pretune eval RUN_DIR [--data FILE]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import console, metrics_table, to_json


def eval_(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit (or compress)"),
    data: Path | None = typer.Option(None, "--data", help="labelled table: csv, jsonl, parquet, conll "
                                     "(default: the run's own test split)"),
    text_column: str | None = typer.Option(None, help="default: the run's text column"),
    label_column: str | None = typer.Option(None, help="default: the run's label column"),
    encoding: str | None = typer.Option(None, help="of the --data file (default: UTF-8, else detected, "
                                        "with a notice)"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Measure a run's model on labelled data."""
    from pretune.predictor import Run

    metrics = Run(run_dir).evaluate(data, text_column=text_column, label_column=label_column, encoding=encoding)
    if as_json:
        print(to_json(metrics, indent=2))
    else:
        console.print(metrics_table({data.name if data else "test": metrics}, f"{run_dir}"))
