"""pretune batch-find RECIPE [--set k=v ...] [--effective N] [--budget-gb X] [--json]"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pretune.cli.output import console, to_json

GB = 1024**3


def batch_find(
    recipe: Path | None = typer.Argument(None, help="recipe YAML (defaults apply where silent)"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. data.max_length=256"),
    effective: int | None = typer.Option(None, "--effective", help="target effective batch (batch x accumulation)"),
    budget_gb: float | None = typer.Option(
        None, "--budget-gb", help="memory allowed, GiB (CPU default: half of MemAvailable; CUDA: the device)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Find the largest batch that fits in memory, and the accumulation for a target batch."""
    from pretune.api import as_recipe
    from pretune.finders import find_batch_size
    from pretune.recipe import Recipe

    resolved = as_recipe(recipe if recipe is not None else Recipe(), set_)
    budget = int(budget_gb * GB) if budget_gb is not None else None
    result = find_batch_size(resolved, effective=effective, budget_bytes=budget)
    if as_json:
        print(to_json(result.to_dict(), indent=2))
        return
    d = result.details
    measured = d.get("estimated_bytes") or d.get("peak_bytes") or {}
    table = Table(title=f"{result.method} at max_length {d['max_length']}")
    table.add_column("batch", justify="right")
    table.add_column("estimated GiB" if result.method == "memory-estimate" else "peak GiB", justify="right")
    table.add_column("fits")
    for size, nbytes in measured.items():
        fits = size <= d["largest_batch"]
        table.add_row(str(size), "out of memory" if nbytes is None else f"{nbytes / GB:.3f}", "yes" if fits else "no")
    console.print(table)
    if d.get("budget_bytes"):
        console.print(f"budget: {d['budget_bytes'] / GB:.2f} GiB; largest batch that fits: {d['largest_batch']}"
                      f" (cap {d['cap']})", markup=False)
    console.print("use:", markup=False)
    for line in result.recipe_lines():
        console.print(f"  --set {line}", markup=False)
    before = resolved.train.batch_size * resolved.train.gradient_accumulation_steps
    if effective is None and result.effective_batch_size != before:
        console.print(f"note: this changes the effective batch from {before} to {result.effective_batch_size}; "
                      f"pass --effective {before} to keep the one the learning rate was tuned for",
                      markup=False, soft_wrap=True)
