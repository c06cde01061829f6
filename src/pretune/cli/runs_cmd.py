"""pretune runs [DIR] [--sort METRIC] [--json]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import console, shown, to_json


def runs(
    root: Path = typer.Argument(Path("runs"), help="folder searched for run directories"),
    sort: str | None = typer.Option(None, "--sort", help="best first by this metric (test, else validation), "
                                    "or train_seconds"),
    as_json: bool = typer.Option(False, "--json", help="one JSON list instead of the table"),
) -> None:
    """List the runs under a folder: name, status, task, model, strategy, headline metric, seconds, date."""
    from rich.console import Console
    from rich.table import Table

    from pretune.report.listing import list_runs

    rows = list_runs(root, sort)
    if as_json:
        print(to_json(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} runs under {shown(root)}")
    for column in ("run", "status", "task", "model", "strategy", "headline", "train s", "date"):
        table.add_column(column, justify="right" if column in ("headline", "train s") else "left")
    for r in rows:
        headline = "-" if r["value"] is None else f"{r['split']} {r['metric']} {r['value']:.4f}"
        seconds = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        table.add_row(*map(shown, (r["name"], r["status"], r["task"], r["model"], r["strategy"], headline, seconds,
                                   r["date"])))
    (console if console.is_terminal else Console(width=200)).print(table)
