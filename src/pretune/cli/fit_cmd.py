"""pretune fit RECIPE [--set k=v ...] [--out DIR] | --resume RUN_DIR"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune import runs
from pretune.cli.output import console, metrics_table, printable, shown


def fit(
    recipe: Path | None = typer.Argument(None, help="recipe YAML (defaults apply where silent)"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. train.optimizer.lr=1e-4"),
    out: Path | None = typer.Option(None, "--out", help="run directory (default runs/<time>-<data>)"),
    resume: Path | None = typer.Option(None, "--resume", help="continue this run from its last checkpoint"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or table"),
    no_report: bool = typer.Option(False, "--no-report", help="write no report.html"),
) -> None:
    """Fine-tune a pretrained model as the recipe says; write a run directory."""
    from accelerate import PartialState

    from pretune.api import fit as fit_api

    run = fit_api(recipe, out, resume=resume, overrides=set_, quiet=quiet, report=False if no_report else None)
    if not PartialState().is_main_process:
        return  # under torchrun / accelerate launch only the main process reports
    metrics = run.metrics
    if quiet:
        print(printable(run.path))
        return
    console.print(metrics_table({k: metrics[k] for k in ("validation", "test") if k in metrics}, "final metrics"))
    for change in metrics["model"]["changes"]:
        console.print(f"model after {shown(change['change'])}: {change['parameters']:,} parameters, "
                      f"{change['trainable']:,} trainable")
    train = metrics["train"]
    console.print(
        f"trained {train['steps']} steps in {train['train_seconds']:.0f}s "
        f"({train['train_samples_per_second']:.1f} samples/s)"
        + (f"; {shown(train['stop_reason'])}" if train["stop_reason"] else "")
    )
    if "best_step" in train:
        console.print(f"kept the weights of step {train['best_step']}, the best validation "
                      f"{shown(train['best_metric'])}")
    console.print(f"run directory: [bold]{shown(run.path)}[/]\nmodel:         [bold]{shown(run.model_path)}[/]")
    if (run.path / runs.REPORT).is_file():
        console.print(f"report:        [bold]{shown(run.path / runs.REPORT)}[/]")
