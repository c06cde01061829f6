"""The page of a hyperparameter study, from study.json and trials.csv: the trials table (sortable,
each trial linked to its own report where it has one), optimisation history, parallel
coordinates, each parameter against the metric, importances, the Pareto front of several
metrics, and the edge-of-range warnings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pretune import runs
from pretune.plots import study as figures
from pretune.report.page import Block, Cell, Page, fmt, num
from pretune.report.run_page import recipe_section


def study_page(path: Path) -> Page:
    summary = runs.read_study(path)
    metrics, directions = summary["metrics"], summary["directions"]
    trials = runs.read_trials(path, metrics)
    params = [c for c in summary.get("space", {}) if c in trials.columns]
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=metrics)
    page = Page(title=path.name, kind="study",
                subtitle=f"{len(trials)} trials searching {', '.join(params) or 'nothing'} for "
                         + ", ".join(f"{d} {m}" for m, d in zip(metrics, directions, strict=True)))
    counts = summary.get("trials", {})
    page.status = "completed" if counts.get("running", 0) == 0 else "running"
    page.facts = [("sampler", str(summary.get("sampler"))), ("pruner", str(summary.get("pruner"))),
                  ("trials", ", ".join(f"{n} {state}" for state, n in counts.items() if n)),
                  ("budget", str(summary.get("budget"))), ("kept weights", str(summary.get("keep"))),
                  *[(f"space: {k}", v) for k, v in summary.get("space", {}).items()]]
    best = summary.get("best")
    if best:
        page.headline = [(f"best {m}", fmt(v)) for m, v in best["values"].items()]
        page.headline.append(("best trial", str(best["number"])))
        page.facts.append(("best parameters", ", ".join(f"{k} = {fmt(v)}" for k, v in best["params"].items())))
    if summary.get("warnings"):
        page.section("warnings", "Warnings").blocks += [Block("warning", text=w) for w in summary["warnings"]]
    trials_section(page, path, trials, metrics, params)
    if len(done):
        charts_section(page, path, done, summary, metrics, directions, params)
    if (path / runs.BEST).is_file():
        recipe_section(page, (path / runs.BEST).read_text(encoding="utf-8", errors="replace"),
                       "The best trial's recipe (best.yaml)")
    return page


def trials_section(page: Page, path: Path, trials: pd.DataFrame, metrics: list[str], params: list[str]) -> None:
    columns = ["number", "state", *metrics, *params, "model_parameters", "train_seconds", "steps", "pruned_at",
               "reason"]
    columns = [c for c in columns if c in trials.columns and (c in ("number", "state") or trials[c].notna().any())]
    rows = []
    for _, t in trials.iterrows():
        row = []
        for c in columns:
            value = t[c]
            value = None if pd.isna(value) else value.item() if hasattr(value, "item") else value
            cell = num(value) if c != "reason" else Cell(str(value or ""))
            if c == "number" and isinstance(t.get("run"), str) and (path / t["run"] / runs.REPORT).is_file():
                cell.href = f"{t['run']}/report.html"
            row.append(cell)
        rows.append(row)
    page.section("trials", "Trials").blocks.append(
        Block("table", title="Every trial (click a header to sort; a trial number links to its own report where "
                             "it has one)", columns=columns, rows=rows, sortable=True))


def charts_section(page: Page, path: Path, done: pd.DataFrame, summary: dict, metrics: list[str],
                   directions: list[str], params: list[str]) -> None:
    section = page.section("charts", "Study charts")
    metric = metrics[0]
    page.figure(section, "history", figures.history(done, metric, directions[0] == "maximize"),
                {"number": done["number"], metric: done[metric]}, title="Optimisation history")
    if params:
        page.figure(section, "parallel", figures.parallel_coordinates(done, params, metric),
                    {c: done[c].astype(str) if done[c].dtype == object else done[c] for c in [*params, metric]},
                    title="Parallel coordinates")
        log = {k for k, v in summary.get("space", {}).items() if str(v).startswith("loguniform")}
        page.figure(section, "param_vs_metric", figures.param_vs_metric(done, params, metric, log),
                    {c: done[c].astype(str) if done[c].dtype == object else done[c] for c in [*params, metric]},
                    title="Each parameter against the metric", css="full")
        found = importances(done, params, metric, log)
        if found:
            page.figure(section, "importances", figures.importances(found), found, title="Importances")
        else:
            section.blocks.append(Block("note", text="Importances need at least two complete trials that differ in "
                                                     "a parameter."))
    size = "model_parameters"
    if size in done and done[size].nunique(dropna=True) > 1:  # a model choice was searched
        sized = done.dropna(subset=[size])
        page.figure(section, "size_vs_metric", figures.param_vs_metric(sized, [size, "train_seconds"], metric, {size}),
                    {c: sized[c] for c in ["number", size, "train_seconds", metric]},
                    title="The metric against each candidate's parameters and training seconds", css="full")
    if len(metrics) > 1 and "pareto_front" in summary:
        front = {t["number"] for t in summary["pareto_front"]}
        page.figure(section, "pareto", figures.pareto(done, metrics, front),
                    {"front": sorted(front), **{m: done[m] for m in metrics[:2]}}, title="Pareto front")


def importances(done: pd.DataFrame, params: list[str], metric: str, log: set[str]) -> dict[str, float] | None:
    """optuna's fANOVA importances, on an in-memory study rebuilt from the trials table (the
    study's own storage may be a server this machine cannot reach)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    varied = [p for p in params if done[p].nunique(dropna=True) > 1]
    if len(done) < 2 or not varied:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for _, t in done.iterrows():
        values, dists = {}, {}
        for p in varied:
            if pd.isna(t[p]):
                continue
            numeric = pd.to_numeric(done[p], errors="coerce")
            if numeric.notna().all():
                lo, hi = float(numeric.min()), float(numeric.max())
                dists[p] = FloatDistribution(lo, hi, log=p in log and lo > 0)
                values[p] = float(t[p])
            else:
                dists[p] = CategoricalDistribution(sorted(done[p].dropna().astype(str).unique()))
                values[p] = str(t[p])
        study.add_trial(optuna.trial.create_trial(params=values, distributions=dists, value=float(t[metric])))
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):  # too few distinct trials for a forest to split on
        return None
    return {k: float(v) for k, v in found.items()}
