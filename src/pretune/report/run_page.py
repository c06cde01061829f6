"""The page of one run: header, metrics, learning curves, readable errors, the recipe.

Everything comes from the run directory: recipe.yaml, metrics.json, metrics.jsonl, and what
`pretune.fit` adds for the report (environment.json, predictions/test.jsonl). A section whose
files are missing is left out; a run without metrics.json is shown as unfinished.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from pretune import atomic, runs
from pretune.plots import classes, curves
from pretune.report import errors_section
from pretune.report.page import Block, Cell, Page, fmt, num
from pretune.report.predictions import read_predictions
from pretune.runs import RunDir
from pretune.tasks import task_type
from pretune.train.label_issues import FILE as LABEL_ISSUES

SPLITS = ("train", "validation", "test")
SKIP = {"per_class", "per_type", "per_label", "confusion_matrix", "samples"}


def run_page(path: Path) -> Page:
    run = RunDir(path)
    recipe = run.recipe
    metrics = run.metrics if run.finished else {}
    task = metrics.get("task") or recipe.data.task
    page = Page(title=run.path.name, kind="run",
                subtitle=f"{task} · {recipe.model.source} on {recipe.data.train or recipe.data.source}")
    header(page, run, recipe, metrics, task)
    if metrics:
        metrics_section(page, metrics, task, read_predictions(run.path))
    curves_section(page, run, metrics, task)
    if metrics:
        errors_section.add(page, metrics, task, read_predictions(run.path))
        label_issues_section(page, run.path)
    recipe_section(page, recipe.to_yaml())
    return page


def header(page: Page, run: RunDir, recipe, metrics: dict, task: str) -> None:
    if not metrics:
        page.status, page.status_detail = "unfinished", "no metrics.json: the run is still going, or was killed"
    else:
        page.status = metrics.get("status", "completed")
        reason = (metrics.get("train") or {}).get("stop_reason")
        page.status_detail = reason or ""
    train = metrics.get("train", {})
    labels = (metrics.get("model") or {}).get("labels")
    when = dt.datetime.fromtimestamp((run.path / runs.RECIPE).stat().st_mtime, dt.timezone.utc)
    facts = [("task", task), ("model", recipe.model.source), ("data", recipe.data.train or recipe.data.source),
             ("strategy", recipe.strategy.name)]
    if labels:
        facts.append(("labels", ", ".join(labels[:20]) + (f" … ({len(labels)} in all)" if len(labels) > 20 else "")))
    facts.append(("started", when.strftime("%Y-%m-%d %H:%M UTC")))
    if train:
        facts += [("trained", f"{fmt(train['train_seconds'], 3)} s, {train['steps']:,} steps, "
                              f"{train['epochs']:g} epochs on {train['samples']:,} samples"),
                  ("parameters", f"{metrics['model']['parameters']:,} ({metrics['model']['trainable']:,} trainable)")]
        if "best_step" in train:
            facts.append(("kept", f"the weights of step {train['best_step']} (best validation {train['best_metric']})"))
    env = runs.read_environment(run.path)
    if env is not None:
        environment_facts(facts, env)
    page.facts = facts
    headline = task_type(task).headline
    for split in ("test", "validation"):
        if headline in metrics.get(split, {}):
            page.headline.append((f"{split} {headline}", fmt(metrics[split][headline])))
    if train:
        page.headline.append(("train seconds", fmt(train["train_seconds"], 3)))
    if metrics.get("warnings"):
        page.section("warnings", "Warnings").blocks += [Block("warning", text=str(w)) for w in metrics["warnings"]]
    if metrics.get("notices"):
        page.section("notices", "Notices").blocks += [Block("warning", text=n) for n in metrics["notices"]]


def label_issues_section(page: Page, path: Path, shown: int = 50) -> None:
    """The rows whose given label the model contradicts most confidently (train/label_issues.py)."""
    file = path / LABEL_ISSUES
    if not file.is_file():
        return
    found = atomic.read_json(file)
    rows = found.get("rows") if isinstance(found, dict) else None
    if not isinstance(rows, list):
        return
    section = page.section("label_issues", "Label issues")
    how = (f"{found.get('folds')}-fold cross-validated probabilities over the training split"
           if found.get("split") == "train" else "the model's probabilities on validation")
    section.blocks.append(Block("note", text=f"{found.get('found')} of {found.get('rows_checked')} "
                                              f"{found.get('split')} rows look mislabelled (cleanlab's "
                                              f"find_label_issues over {how}); the {min(shown, len(rows))} most "
                                              f"suspect, all in {LABEL_ISSUES}."))
    section.blocks.append(Block("table", title="Most suspect first", sortable=True,
                                columns=["row", "text", "given", "predicted", "p(given)"],
                                rows=[[Cell(str(r.get("row"))), Cell(str(r.get("text"))), Cell(str(r.get("given"))),
                                       Cell(str(r.get("predicted"))), num(r.get("given_probability"))]
                                      for r in rows[:shown] if isinstance(r, dict)]))


def environment_facts(facts: list, env: dict) -> None:
    hardware = env.get("gpu") or f"{env.get('cpu', '?')} ({env.get('cores', '?')} cores)"
    facts.append(("hardware", hardware))
    if env.get("cpu_flags"):
        facts.append(("CPU flags", " ".join(env["cpu_flags"])))
    versions = env.get("versions", {})
    shown = [f"{k} {v}" for k, v in versions.items() if k in ("pretune", "torch", "transformers")]
    facts.append(("versions", ", ".join([*shown, f"python {env.get('python')}"])))


def scalar_table(metrics: dict, order: list[str]) -> Block:
    """One row per metric, one column per split: long metric lists stay readable."""
    splits = [s for s in ("validation", "test") if s in metrics]
    keys = []
    for s in splits:
        keys += [k for k, v in metrics[s].items() if k not in SKIP and isinstance(v, (int, float)) and k not in keys]
    keys = ["samples"] + sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))
    rows = [[Cell(k)] + [num(metrics[s].get(k)) for s in splits] for k in keys]
    return Block("table", title="Final figures per split", columns=["metric", *splits], rows=rows)


def convergence_table(c: dict) -> Block:
    """train/convergence.py's figures: how fast, when best, how far train ran ahead of validation."""
    m = c["metric"]
    rows = [("final validation " + m, c["final"]), (f"steps to 95% of it ({fmt(c['target'])})", c["steps_to_95"]),
            ("training seconds to 95% of it", c["seconds_to_95"]),
            (f"best step (validation {m} {fmt(c['best_value'])})", c["best_step"])]
    if "train_validation_gap" in c:
        rows += [(f"train sample {m} at the last evaluation", c["train_metric"]),
                 ("train-validation gap (positive: train ahead)", c["train_validation_gap"])]
    return Block("table", title="Convergence and generalization", columns=["figure", "value"],
                 rows=[[Cell(k), num(v)] for k, v in rows])


def metrics_section(page: Page, metrics: dict, task: str, predictions: list[dict]) -> None:
    section = page.section("metrics", "Metrics")
    order = [*task_type(task).curves, "loss"]
    section.blocks.append(scalar_table(metrics, order))
    if metrics.get("convergence"):
        section.blocks.append(convergence_table(metrics["convergence"]))
    split = "test" if "test" in metrics else "validation"
    figures = metrics.get(split) or {}  # a failed fit may have evaluated nothing
    labels = (metrics.get("model") or {}).get("labels")
    if "confusion_matrix" in figures and labels:
        page.figure(section, "confusion_matrix", classes.confusion_matrix(figures["confusion_matrix"], labels),
                    {"labels": labels, "counts": figures["confusion_matrix"]}, title=f"Confusion matrix ({split})",
                    css="full")
    per = figures.get("per_class") or figures.get("per_type") or figures.get("per_label")
    if per:
        what = {"per_class": "class", "per_type": "entity type", "per_label": "label"}[
            next(k for k in ("per_class", "per_type", "per_label") if k in figures)]
        rows = [[Cell(name)] + [num(v[k]) for k in ("precision", "recall", "f1", "support")] for name, v in per.items()]
        section.blocks.append(Block("table", title=f"Per {what} ({split}; click a header to sort)", sortable=True,
                                    columns=[what, "precision", "recall", "F1", "support"], rows=rows))
    if "per_label" in figures:
        thresholds = (metrics.get("calibration") or {}).get("thresholds")
        f1 = {k: v["f1"] for k, v in figures["per_label"].items()}
        page.figure(section, "per_label_f1", classes.label_bars(f1, f"F1 per label ({split})", "F1", thresholds,
                                                                      "tuned threshold"),
                    {"f1": f1, "thresholds": thresholds}, title="F1 and the tuned threshold per label")
    if predictions and "score" in predictions[0]:
        confidence = np.array([p["score"] for p in predictions])
        correct = np.array([p["true"] == p["pred"] for p in predictions], dtype=float)
        before = (np.array([p["score_before"] for p in predictions])
                  if all("score_before" in p for p in predictions) else None)
        fig, ece = classes.reliability(confidence, correct, before=before)
        temperature = (metrics.get("calibration") or {}).get("temperature")
        scaled = (f" Probabilities are temperature-scaled (T = {temperature:.3f}, fitted on validation); the red "
                  f"curve is the model before scaling." if temperature else "")
        page.figure(section, "reliability", fig, {"confidence": confidence, "correct": correct, "ece": ece,
                                                  **({"before": before} if before is not None else {})},
                    title="Calibration (test)",
                    text=f"Expected calibration error {ece:.3f}: the row-weighted gap between confidence and "
                         f"accuracy over ten confidence bins ({len(predictions):,} test rows).{scaled}")
    if predictions and task_type(task).predicts_values:
        true, pred = np.array([p["true"] for p in predictions]), np.array([p["pred"] for p in predictions])
        page.figure(section, "predicted_vs_true", classes.predicted_vs_true(true, pred),
                    {"true": true, "pred": pred}, title="Predicted against true (test)", css="full")


def curves_section(page: Page, run: RunDir, metrics: dict, task: str) -> None:
    history = run.history
    if not history:
        return
    section = page.section("curves", "Learning curves")
    train = metrics.get("train", {})
    recipe = run.recipe
    steps_per_epoch = None
    if train.get("epochs"):
        steps_per_epoch = train["steps"] / train["epochs"]
    else:  # unfinished: the history's own epoch counter
        last = history[-1]
        steps_per_epoch = last["step"] / last["epoch"] if last.get("epoch") else None
    best = train.get("best_step")
    wanted = list(task_type(task).curves)
    if recipe.train.keep_best and recipe.train.keep_best not in wanted and recipe.train.keep_best != "loss":
        wanted = [recipe.train.keep_best, *wanted]
    figures = curves.history_figures(history, steps_per_epoch, best, wanted)
    titles = {"loss": "Loss", "validation": "Validation metrics", "lr": "Learning rate"}
    for name, fig in figures.items():
        page.figure(section, f"curve_{name}", fig, {"history": [r for r in history if _drawn(r, name)]},
                    title=titles[name])
    evaluations = len({r["step"] for r in history if r["split"] == "validation"})
    note = (f"{evaluations} evaluations; dotted lines mark epochs" + (f"; the red line and star mark step {best}, "
            "whose weights were kept" if best is not None else "") + ".")
    section.blocks.append(Block("note", text=note))


def _drawn(row: dict, figure: str) -> bool:
    return (row["split"] == "train") if figure == "lr" else row["split"] in ("train", "validation")


def recipe_section(page: Page, yaml_text: str, title: str = "The resolved recipe (YAML)") -> None:
    section = page.section("recipe", "Recipe")
    section.blocks.append(Block("code", text=title, rows=[yaml_text]))
