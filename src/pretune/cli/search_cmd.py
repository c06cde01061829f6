"""pretune search RECIPE [--trials N] [--timeout 2h] [--sampler tpe] [--pruner asha] [--storage URL]
                        [--study NAME] [--workers N] [--keep best] [--out DIR] | --resume STUDY_DIR"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import console, shown


def search(
    recipe: Path | None = typer.Argument(None, help="recipe YAML with a search section"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. search.metric=f1_macro"),
    trials: int | None = typer.Option(None, "--trials", help="trials in the study, all workers together"),
    timeout: str | None = typer.Option(None, "--timeout", help="start no trial after this long: 90s, 30m, 2h"),
    sampler: str | None = typer.Option(None, "--sampler", help="grid, random, qmc, tpe, gp, cmaes, nsga2"),
    pruner: str | None = typer.Option(None, "--pruner", help="none, median, asha, hyperband"),
    storage: str | None = typer.Option(None, "--storage", help="optuna storage URL, e.g. postgresql://u:p@host/db"),
    study: str | None = typer.Option(None, "--study", help="study name (default: the study directory's name)"),
    workers: int | None = typer.Option(None, "--workers", help="local worker processes sharing the cores"),
    keep: str | None = typer.Option(None, "--keep", help="trials keeping weights: none, best, all"),
    out: Path | None = typer.Option(None, "--out", help="study directory (default runs/search-<recipe>)"),
    resume: Path | None = typer.Option(None, "--resume", help="join the study in this directory again"),
    top: int = typer.Option(5, "--top", help="trials shown in the closing table"),
    no_report: bool = typer.Option(False, "--no-report", help="write no report.html"),
) -> None:
    """Search hyperparameters: every trial a run under the study directory; the best recipe in best.yaml."""
    from pretune.api import search as search_api

    result = search_api(recipe, out, resume=resume, overrides=set_, trials=trials, timeout=timeout,
                        sampler=sampler, pruner=pruner, storage=storage, study=study, workers=workers, keep=keep,
                        report=False if no_report else None)
    summary = result.summary
    # Piped output has no terminal width to fit (rich assumes 80 columns): print the table whole.
    from rich.console import Console

    (console if console.is_terminal else Console(width=200)).print(
        _top_table(result.trials, summary["metrics"], summary["directions"], top))
    console.print("trials: " + ", ".join(f"{n} {state}" for state, n in summary["trials"].items() if n))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {shown(warning)}")
    if "pareto_front" in summary:
        front = ", ".join(str(t["number"]) for t in summary["pareto_front"])
        console.print(f"Pareto front: trials {front}; each trial's recipe is in its run directory")
    elif summary["best"]:
        best = summary["best"]
        values = ", ".join(f"{k} {v:.4f}" for k, v in best["values"].items())
        console.print(f"best trial {best['number']}: {values}  ({shown(best['run'])})")
        console.print(f"best recipe:    [bold]{shown(result.best_recipe_path)}[/]  "
                      f"(pretune fit {shown(result.best_recipe_path)})")
    console.print(f"study directory: [bold]{shown(result.path)}[/]")


def _top_table(trials, metrics: list[str], directions: list[str], top: int):
    from rich.table import Table

    done = trials[trials["state"] == "COMPLETE"].sort_values(
        metrics[0], ascending=directions[0] == "minimize").head(top)
    columns = ["number", *metrics, *[c for c in trials.columns if "." in c], "train_seconds"]
    table = Table(title=f"top {len(done)} trials")
    for header in _short_names(columns):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for _, row in done.iterrows():
        table.add_row(*[shown(_fmt(row[c])) for c in columns])
    return table


def _short_names(columns: list[str]) -> list[str]:
    """Each dotted path by its shortest tail that no other column shares: `lr`, `schedule.name`
    and `strategy.name` (not `name` twice)."""
    def tail(column: str, n: int) -> str:
        return ".".join(column.split(".")[-n:])

    names = []
    for column in columns:
        n = 1
        while n < column.count(".") + 1 and sum(tail(c, n) == tail(column, n) for c in columns) > 1:
            n += 1
        names.append(tail(column, n))
    return names


def _fmt(value) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"
    return str(value)
