"""Shared terminal output: a metrics table per split, and JSON a strict parser reads.

Every string a user chose (a directory name, a recipe value, a label) goes to the terminal through
`shown`: rich markup in it is escaped (a run called `r[/]x` is printed, not parsed as a closing
tag), and control characters are written as escapes (`\x1b`, `\n`), never sent raw."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pretune.atomic import json_safe
from pretune.runs import COMPRESSION

# metric key -> column header (short, so the table fits an 80-column terminal)
SHOWN = {"accuracy": "acc", "f1": "F1", "precision": "P", "recall": "R", "f1_micro": "F1 mic",
         "f1_macro": "F1 mac", "precision_macro": "P mac", "recall_macro": "R mac",
         "subset_accuracy": "subset", "token_accuracy": "tok acc", "loss": "loss", "mse": "MSE",
         "mae": "MAE", "r2": "R2", "spearman": "rho", "samples": "n"}
MAX_COLUMNS = 7  # an 80-column terminal

console = Console(stderr=False)


def printable(text: str) -> str:
    """`text` with each character the terminal would act on (escape sequences, newlines, other
    control or invisible characters) written as its Python escape."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def shown(value) -> str:
    """A user-provided value ready for rich: printable, its markup escaped."""
    return escape(printable(str(value)))


def metrics_table(splits: dict[str, dict], title: str = "metrics") -> Table:
    columns = [k for k in SHOWN if any(k in m for m in splits.values())][:MAX_COLUMNS]
    table = Table(title=shown(title))
    table.add_column("split")
    for key in columns:
        table.add_column(SHOWN[key], justify="right")
    for split, metrics in splits.items():
        table.add_row(shown(split), *[_fmt(metrics.get(key)) for key in columns])
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


# The columns a narrow terminal keeps first: what the choice was made on, then what it bought.
# compression.json and report.html hold every figure.
PRIORITY = ["validation_accuracy", "val_drop", "accuracy", "drop_points", "speedup_batch", "speedup_latency",
            "size_ratio", "backend", "size_mb", "throughput", "latency_ms_p50", "latency_ms_p95", "f1_macro",
            "peak_memory_mb", "parameters", "nonzero_parameters"]


def compression_table(rows: list[dict], title: str, width: int | None = None) -> Table:
    """The variants, with as many columns (in PRIORITY order) as fit `width` (default: the terminal's)."""
    width = width or console.width
    names = [shown(row.get("name") or str(row.get("run"))) for row in rows]
    cells = {k: [shown(_fmt_measured(r.get(k))) for r in rows] for k in PRIORITY if any(k in r for r in rows)}
    used, kept = max(len("variant"), *map(len, names)) + 4, []
    for key, values in cells.items():
        need = max(len(MEASURED[key]), *map(len, values)) + 3
        if used + need > width:
            break
        used += need
        kept.append(key)
    table = Table(title=shown(title), caption=None if len(kept) == len(cells) else
                  f"{len(cells) - len(kept)} more columns in {COMPRESSION}; a wider terminal shows them")
    table.add_column("variant")
    for key in kept:
        table.add_column(MEASURED[key], justify="right")
    for i, name in enumerate(names):
        table.add_row(name, *[cells[key][i] for key in kept])
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
