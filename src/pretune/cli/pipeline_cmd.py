"""pretune pipeline RECIPE|DATA [--label COL] [--text COL] [--preset NAME] [--time-limit 15m] [--dry-run]
[--out DIR] [--set k=v ...] [--fit-set k=v ...] | --resume DIR"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune import runs
from pretune.cli.output import console, printable, shown

ROWS = (("validation_{m}", "validation {m}"), ("test_{m}", "test {m}"), ("throughput", "throughput (batch, /s)"),
        ("latency_ms_p50", "latency p50 (batch 1, ms)"), ("size_mb", "size (MB)"))


def pipeline(
    recipe: Path | None = typer.Argument(None, help="recipe YAML (its search: and compress: sections add stages), "
                                         "or a data file / image folder: the task, columns, encoding and splits "
                                         "are inferred and written into the pipeline's recipe"),
    label: str | None = typer.Option(None, "--label", help="data file: the label column"),
    text: str | None = typer.Option(None, "--text", help="data file: the text column (default: the one "
                                     "text-like column)"),
    preset: str | None = typer.Option(None, "--preset", help="fast, balanced (default for a data file) or best; "
                                      "`pretune preset show NAME` prints one"),
    time_limit: str | None = typer.Option(None, "--time-limit", help="wall clock for the whole pipeline, e.g. "
                                          "15m: measured, planned and kept (pipeline.time_limit)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print what is inferred and the plan, then stop"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. train.epochs=2"),
    fit_set: list[str] = typer.Option([], "--fit-set", help="override for the final fit only, on top of the "
                                      "best trial's recipe, e.g. data.max_train_samples=null"),
    out: Path | None = typer.Option(None, "--out", help="pipeline directory (default runs/pipeline-<recipe>)"),
    resume: Path | None = typer.Option(None, "--resume", help="continue the pipeline in this directory"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no stage lines, progress or table; print the "
                               "released model's directory"),
) -> None:
    """Search (if asked), fine-tune, compress (if asked), report and release the chosen model."""
    from pretune.api import pipeline as pipeline_api

    result = pipeline_api(recipe, out, resume=resume, overrides=set_, fit_overrides=fit_set, quiet=quiet,
                          label=label, text=text, preset=preset, time_limit=time_limit, dry_run=dry_run)
    if result is None:  # a dry run: the plan is printed
        return
    if quiet:
        print(printable(result.model))
        return
    console.print(figures_table(result.figures))
    console.print(f"released model: [bold]{shown(result.model)}[/] (load: {shown(result.summary['load'])})")
    console.print(f"report:         [bold]{shown(result.report)}[/]" if result.report else "report: not available")
    console.print(f"pipeline:       [bold]{shown(result.path / runs.PIPELINE)}[/]")


def figures_table(figures: dict):
    from rich.table import Table

    metric = figures["metric"]
    table = Table(title="fine-tuned vs chosen")
    for header in ("", "fine-tuned", "chosen", "ratio"):
        table.add_column(header, justify="right" if header else "left")
    for key, label in ROWS:
        key, label = key.format(m=metric), label.format(m=metric)
        fine, mine = figures["fine_tuned"].get(key), figures["chosen"].get(key)
        ratio = figures["ratio"].get(key)
        table.add_row(label, _fmt(fine), _fmt(mine), "-" if ratio is None else f"{ratio:.2f}x")
    return table


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
