"""pretune compare RUN_A RUN_B [...] [--out FILE]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import console, printable, shown


def compare(
    paths: list[Path] = typer.Argument(..., help="two or more run directories"),
    out: Path | None = typer.Option(None, "--out", help="also write the comparison report here (HTML)"),
) -> None:
    """The recipe keys that differ and the final metrics side by side; the comparison page with --out."""
    from rich.console import Console
    from rich.table import Table

    from pretune.errors import PretuneError
    from pretune.report.build import kind_of
    from pretune.report.comparison_page import metric_rows, names_of, ranking_rows, recipe_differences
    from pretune.report.page import fmt
    from pretune.runs import RunDir

    if len(paths) < 2:
        raise PretuneError("compare needs two or more run directories")
    for p in paths:
        if kind_of(p) != "run":
            raise PretuneError(f"{p} is a {kind_of(p)} directory, not a run")
    runs = [RunDir(p) for p in paths]
    names = names_of(paths)
    terminal = console if console.is_terminal else Console(width=200)
    diff = Table(title="recipe differences")
    metrics = Table(title="final metrics")
    for table, first in ((diff, "key"), (metrics, "metric")):
        table.add_column(first)
        for name in names:
            table.add_column(shown(name), justify="right")
    for key, values in recipe_differences(runs).items():
        diff.add_row(shown(key), *[shown(v) for v in values])
    for key, values in metric_rows(runs).items():
        metrics.add_row(shown(key), *[shown(fmt(v)) for v in values])
    ranks = Table(title="ranks (1: best)")
    ranks.add_column("criterion")
    for name in names:
        ranks.add_column(shown(name), justify="right")
    for key, values in ranking_rows(runs).items():
        ranks.add_row(shown(key), *["-" if v is None else str(v) for v in values])
    terminal.print(diff if diff.rows else "the resolved recipes are identical")
    terminal.print(metrics)
    terminal.print(ranks)
    if out is not None:
        from pretune.api import report

        print(printable(report(paths, out)))
