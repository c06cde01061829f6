"""Shared terminal output: a metrics table per split."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

# metric key -> column header (short, so the table fits an 80-column terminal)
SHOWN = {"accuracy": "acc", "f1": "F1", "precision": "P", "recall": "R", "f1_micro": "F1 mic",
         "f1_macro": "F1 mac", "precision_macro": "P mac", "recall_macro": "R mac",
         "subset_accuracy": "subset", "token_accuracy": "tok acc", "loss": "loss", "mse": "MSE",
         "mae": "MAE", "r2": "R2", "spearman": "rho", "samples": "n"}
MAX_COLUMNS = 7  # an 80-column terminal

console = Console(stderr=False)


def metrics_table(splits: dict[str, dict], title: str = "metrics") -> Table:
    shown = [k for k in SHOWN if any(k in m for m in splits.values())][:MAX_COLUMNS]
    table = Table(title=title)
    table.add_column("split")
    for key in shown:
        table.add_column(SHOWN[key], justify="right")
    for split, metrics in splits.items():
        table.add_row(split, *[_fmt(metrics.get(key)) for key in shown])
    return table


def _fmt(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4f}"
