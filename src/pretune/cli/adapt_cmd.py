"""pretune adapt RECIPE [--set k=v ...] [--out DIR] | --resume RUN_DIR"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import console


def adapt(
    recipe: Path | None = typer.Argument(None, help="recipe YAML (its pretrain: section and data.unlabeled)"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. pretrain.epochs=2"),
    out: Path | None = typer.Option(None, "--out", help="run directory (default runs/adapt-<data>)"),
    resume: Path | None = typer.Option(None, "--resume", help="continue this run from its last checkpoint"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar; print the run directory only"),
) -> None:
    """Continue pretraining the model on unlabelled text (masked LM); fine-tune from RUN/model after."""
    from accelerate import PartialState

    from pretune.api import adapt as adapt_api

    run = adapt_api(recipe, out, resume=resume, overrides=set_, quiet=quiet)
    if not PartialState().is_main_process:
        return
    if quiet:
        print(run.path)
        return
    m = run.metrics
    v = m.get("validation", {})
    console.print(f"masked-LM training: {m['train']['steps']} steps in {m['train']['train_seconds']:.0f}s on "
                  f"{m['train']['texts']:,} texts; validation loss {v.get('loss', float('nan')):.3f}, "
                  f"perplexity {v.get('perplexity', float('nan')):.1f}")
    console.print(f"run directory: [bold]{run.path}[/]\nmodel:         [bold]{run.model_path}[/] "
                  f"(fine-tune with --set model.source={run.model_path})")
