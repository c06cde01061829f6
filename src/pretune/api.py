"""The public verbs, thin: each forwards to where it lives and adds only what belongs on top
(plots of a finished fit come from report/, which sits above train/)."""

from __future__ import annotations

from pathlib import Path

from pretune.errors import MissingExtraError
from pretune.predictor import Run, load_run
from pretune.recipe import RecipeLike, as_recipe
from pretune.report.plots import plot_run
from pretune.train.fit import fit as _fit

__all__ = ["as_recipe", "evaluate", "fit", "load_run", "predict", "search"]


def fit(recipe: RecipeLike = None, out: str | Path | None = None, **options) -> Run:
    """Fine-tune as the recipe says and plot the run (learning curves, lr schedule).

    Takes `pretune.train.fit.fit`'s options: resume, overrides, callbacks, quiet, lean,
    save_model, test, model, tokenizer, data."""
    from accelerate import PartialState

    run = _fit(recipe, out, **options)
    if not options.get("lean") and PartialState().is_main_process and run.status == "completed":
        plot_run(run)
    return run


def evaluate(run: Run | str | Path, data: str | Path | None = None, **columns) -> dict:
    """Metrics of a run's model on a labelled table file (default: the run's own test split)."""
    return (run if isinstance(run, Run) else Run(run)).evaluate(data, **columns)


def predict(run: Run | str | Path, texts: list, pairs: list[str] | None = None) -> list[dict]:
    """The task's prediction for each text (label and scores, labels, entities, or a value)."""
    return (run if isinstance(run, Run) else Run(run)).predict(texts, pairs)


def search(recipe: RecipeLike = None, out: str | Path | None = None, **options):
    """Hyperparameter search over the recipe's `search.space`; returns a `pretune.search.Study`.

    Options: resume, overrides, trials, timeout, sampler, pruner, storage, study, workers, keep,
    callbacks (see `pretune.search.study.search`)."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise MissingExtraError("optuna", "search") from None
    from pretune.search.study import search as run_search

    return run_search(recipe, out, **options)
