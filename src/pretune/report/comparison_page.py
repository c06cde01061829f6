"""The page comparing several runs: only the recipe keys that differ, the final metrics side by
side (the best of each row marked), and the learning curves of all runs on shared axes."""

from __future__ import annotations

from pathlib import Path

from pretune.plots import curves
from pretune.recipe import flatten
from pretune.report.page import Block, Cell, Page, fmt, num
from pretune.report.run_page import SKIP
from pretune.runs import RunDir
from pretune.tasks import task_type

LOWER_IS_BETTER = {"loss", "mse", "mae", "rmse", "hamming_loss", "train_seconds", "steps_to_95", "seconds_to_95",
                   "train_validation_gap"}
CONVERGENCE = ("steps_to_95", "seconds_to_95", "train_validation_gap", "best_step")


def recipe_differences(runs: list[RunDir]) -> dict[str, list]:
    """dotted key -> each run's value, for the keys where the runs' resolved recipes differ."""
    flat = [flatten(r.recipe.model_dump(mode="json")) for r in runs]
    keys = sorted(set().union(*flat))
    return {k: [f.get(k) for f in flat] for k in keys if len({repr(f.get(k)) for f in flat}) > 1}


def metric_rows(runs: list[RunDir]) -> dict[str, list]:
    """'split metric' -> each run's final value, for every scalar any run has."""
    rows: dict[str, list] = {}
    finished = [r.metrics if r.finished else {} for r in runs]
    for i, m in enumerate(finished):
        for split in ("validation", "test"):
            for k, v in m.get(split, {}).items():
                if k not in SKIP and isinstance(v, (int, float)):
                    rows.setdefault(f"{split} {k}", [None] * len(runs))[i] = v
        if "train" in m:
            rows.setdefault("train train_seconds", [None] * len(runs))[i] = m["train"]["train_seconds"]
            rows.setdefault("train steps", [None] * len(runs))[i] = m["train"]["steps"]
        for k in CONVERGENCE:  # train/convergence.py: how fast, how far apart, when best
            if k in m.get("convergence", {}):
                rows.setdefault(f"convergence {k}", [None] * len(runs))[i] = m["convergence"][k]
    return rows


def ranking_rows(runs: list[RunDir]) -> dict[str, list]:
    """Each run's rank (1: best) on convergence speed, generalization and final performance."""
    from pretune.train.convergence import rankings

    return rankings([(r.metrics.get("convergence") if r.finished else None) for r in runs])


def names_of(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def comparison_page(paths: list[Path]) -> Page:
    runs = [RunDir(p) for p in paths]
    names = names_of(paths)
    tasks = {(r.metrics.get("task") if r.finished else r.recipe.data.task) for r in runs}
    page = Page(title=" vs ".join(names), kind="comparison", subtitle=f"{len(runs)} runs · " + ", ".join(sorted(tasks)))
    unfinished = [n for n, r in zip(names, runs, strict=True) if not r.finished]
    page.status = "unfinished" if unfinished else "completed"
    page.status_detail = f"not finished: {', '.join(unfinished)}" if unfinished else ""
    page.facts = [(n, f"{r.recipe.model.source} · {r.recipe.strategy.name} · {r.status}") for n, r in
                  zip(names, runs, strict=True)]
    section = page.section("recipes", "Recipe differences")
    diff = recipe_differences(runs)
    if diff:
        section.blocks.append(Block("table", title="Only the keys whose values differ", columns=["key", *names],
                                    rows=[[Cell(k)] + [Cell(fmt(v)) for v in values] for k, values in diff.items()]))
    else:
        section.blocks.append(Block("note", text="The resolved recipes are identical."))
    metrics = metric_rows(runs)
    section = page.section("metrics", "Metrics side by side")
    rows = []
    for key, values in metrics.items():
        known = [v for v in values if v is not None]
        lower = key.split()[-1] in LOWER_IS_BETTER
        if key == "convergence train_validation_gap":
            known = [abs(v) for v in known]
            values = [None if v is None else abs(v) for v in values]
        best = (min if lower else max)(known) if len(known) > 1 and key != "convergence best_step" else None
        rows.append([Cell(key)] + [Cell(num(v).text, v, css="best" if v is not None and v == best else "")
                                   for v in values])
    section.blocks.append(Block("table", title="Final figures (the best of each row in bold)",
                                columns=["metric", *names], rows=rows, sortable=True))
    ranks = ranking_rows(runs)
    if any(v is not None for values in ranks.values() for v in values):
        section.blocks.append(Block("table", title="Ranks (1: best; the gap ranked by its size)",
                                    columns=["criterion", *names],
                                    rows=[[Cell(k)] + [Cell(fmt(v), v, css="best" if v == 1 else "") for v in values]
                                          for k, values in ranks.items()]))
    task = sorted(tasks)[0]
    metric = task_type(task).headline
    histories = {n: r.history for n, r in zip(names, runs, strict=True)}
    if any(histories.values()):
        section = page.section("curves", "Learning curves, overlaid")
        fig = curves.overlaid_curves(histories, metric)["overlaid"]
        page.figure(section, "overlaid", fig, {"metric": metric, "histories": histories},
                    title="Learning curves of every run on shared axes", css="full")
    return page
