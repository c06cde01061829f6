"""pretune pipeline RECIPE [--out DIR] [--set k=v ...] [--fit-set k=v ...] | --resume DIR"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune import runs
from pretune.cli.output import console, printable, shown

ROWS = (("validation_{m}", "validation {m}"), ("test_{m}", "test {m}"), ("throughput", "throughput (batch, /s)"),
        ("latency_ms_p50", "latency p50 (batch 1, ms)"), ("size_mb", "size (MB)"))


def pipeline(
    recipe: Path | None = typer.Argument(None, help="recipe YAML; its search: and compress: sections add stages"),
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

    result = pipeline_api(recipe, out, resume=resume, overrides=set_, fit_overrides=fit_set, quiet=quiet)
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
