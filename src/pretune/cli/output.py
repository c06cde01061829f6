"""Shared terminal output: a metrics table per split, and JSON a strict parser reads."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from pretune.atomic import json_safe

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


# measure / compress row key -> column header
MEASURED = {"backend": "backend", "size_mb": "MB", "parameters": "params", "nonzero_parameters": "non-zero",
            "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms", "throughput": "texts/s",
            "peak_memory_mb": "peak MB", "accuracy": "acc", "f1_macro": "F1 mac", "speedup_batch": "x thr",
            "speedup_latency": "x lat", "size_ratio": "x size", "drop_points": "drop",
            "validation_accuracy": "val acc", "val_drop": "val drop"}


def compression_table(rows: list[dict], title: str) -> Table:
    shown = [k for k in MEASURED if any(k in r for r in rows)]
    table = Table(title=title)
    table.add_column("variant")
    for key in shown:
        table.add_column(MEASURED[key], justify="right")
    for row in rows:
        name = row.get("name") or str(row.get("run"))
        table.add_row(name, *[_fmt_measured(row.get(key)) for key in shown])
    return table


def _fmt_measured(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"


def to_json(value, indent: int | None = None) -> str:
    return json.dumps(json_safe(value), indent=indent, allow_nan=False)
