"""pretune lr-find RECIPE [--set k=v ...] [--out DIR] [--steps N] [--min-lr X] [--max-lr Y] [--json]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import console, to_json


def lr_find(
    recipe: Path | None = typer.Argument(None, help="recipe YAML (defaults apply where silent)"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. train.batch_size=16"),
    out: Path | None = typer.Option(None, "--out", help="write lr_find.png and lr_find.json here"),
    steps: int = typer.Option(200, "--steps", help="optimizer steps of the sweep"),
    min_lr: float = typer.Option(1e-7, "--min-lr", help="first learning rate"),
    max_lr: float = typer.Option(1.0, "--max-lr", help="last learning rate"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Learning-rate range test: sweep the rate up exponentially and suggest one (an upper bound)."""
    from pretune.api import as_recipe
    from pretune.finders import find_lr
    from pretune.finders.lr_find import LIMITS
    from pretune.recipe import Recipe

    result = find_lr(as_recipe(recipe if recipe is not None else Recipe(), set_),
                     steps=steps, min_lr=min_lr, max_lr=max_lr, out=out)
    if as_json:
        print(to_json({**result.to_dict(), "warning": LIMITS}, indent=2))
        return
    # markup=False: the rule text is data, and square brackets in it are not rich styles.
    console.print(f"suggested lr: {result.suggested_lr:.2e}   "
                  f"(--set train.optimizer.lr={result.suggested_lr:.2e})", markup=False, soft_wrap=True)
    console.print(f"rule: {result.rule}", markup=False, soft_wrap=True)
    stop = (f"stopped at lr {result.lrs[-1]:.2e}: the smoothed loss passed 4x its minimum"
            if result.stopped_early else f"swept all {len(result.lrs)} steps without divergence")
    console.print(f"{stop}; {len(result.lrs)} steps recorded", markup=False, soft_wrap=True)
    if result.plot is not None:
        console.print(f"plot: {result.plot}\ndata: {result.plot.with_suffix('.json')}", markup=False, soft_wrap=True)
    console.print(LIMITS, style="yellow", markup=False, soft_wrap=True)
