"""The pipeline's answer to a classifier that learnt nothing: one that answers (nearly) one class
on the validation split, or whose macro F1 there is at chance (the task's `warnings`), is fitted
once more with balanced class weights, when its recipe chose no imbalance remedy of its own and
the fit's share of a time limit still holds another fit as long as the first. The better of the
two on validation macro F1 is the pipeline's fit (the test split decides nothing); both stay on
disk, and the fit record in pipeline.json says what was tried and which was kept.

The second fit lives in DIR/fit-balanced and resumes like the first (stages.fit_into).
"""

from __future__ import annotations

import time

from pretune.predictor import Run, RunInputs

REMEDY = {"train.loss.class_weights": "balanced"}
DIRECTORY = "fit-balanced"
SCORE = "f1_macro"  # validation figure the two fits are compared on


def needs_remedy(run: Run) -> list[str]:
    """The validation warnings of a fit whose recipe took no remedy; empty: none needed."""
    recipe = run.recipe
    if recipe.train.loss.class_weights is not None or recipe.data.sampling != "natural":
        return []
    task = RunInputs.load(run.model_path, recipe.data).task  # with the run's labels
    return task.warnings(run.metrics.get("validation") or {})


def remedied(ctx, run: Run, fit_into) -> tuple[Run, dict]:
    """(the fit the pipeline keeps, what to add to its record); `fit_into(ctx, out, recipe)` is the
    fit stage's own resumable fit."""
    warned = needs_remedy(run)
    if not warned:
        return run, {}
    out = ctx.plan.path / DIRECTORY
    say = (lambda _line: None) if ctx.quiet else print
    seconds = (run.metrics.get("train") or {}).get("train_seconds") or 0.0
    started_before = (out / "recipe.yaml").is_file()  # a killed second fit resumes whatever the time
    if ctx.seconds_left is not None and not started_before and ctx.seconds_left("fit") < 1.2 * seconds:
        say(f"pipeline: fit: {warned[0]}; no time left for a second fit with balanced class weights")
        return run, {"remedy": {"warning": warned[0], "tried": None, "why": "no time left in the fit's share"}}
    say(f"pipeline: fit: {warned[0]}; fitting once more with balanced class weights ({out})")
    started = time.time()
    second = fit_into(ctx, out, lambda: run.recipe.updated(REMEDY))
    before, after = (_score(r) for r in (run, second))
    kept = second if after > before else run
    say(f"pipeline: fit: validation macro F1 {before:.4f} plain, {after:.4f} with balanced class weights: "
        f"kept {kept.path.name}")
    return kept, {"remedy": {"warning": warned[0], "tried": REMEDY, "path": str(second.path),
                             "seconds": round(time.time() - started, 2),
                             "f1_macro": {"plain": before, "balanced": after},
                             "kept": "balanced" if kept is second else "plain"}}


def _score(run: Run) -> float:
    value = (run.metrics.get("validation") or {}).get(SCORE)
    return float(value) if isinstance(value, (int, float)) else float("-inf")
