"""The public verbs, thin: each forwards to where it lives and adds only what belongs on top
(plots of a finished fit come from report/, which sits above train/)."""

from __future__ import annotations

from pathlib import Path

from pretune.errors import MissingExtraError
from pretune.predictor import Run, load_run
from pretune.recipe import RecipeLike, as_recipe
from pretune.report.cards import write_card, write_compression_cards
from pretune.report.plots import plot_run
from pretune.tracking import end_group, finish_tracking, start_group
from pretune.tracking.records import flatten
from pretune.train.fit import fit as _fit

__all__ = ["as_recipe", "compress", "evaluate", "export", "fit", "load_run", "measure", "predict", "search"]


def fit(recipe: RecipeLike = None, out: str | Path | None = None, **options) -> Run:
    """Fine-tune as the recipe says and plot the run (learning curves, lr schedule).

    Takes `pretune.train.fit.fit`'s options: resume, overrides, callbacks, quiet, lean,
    save_model, test, model, tokenizer, data."""
    from accelerate import PartialState

    run = _fit(recipe, out, **options)
    if not options.get("lean") and PartialState().is_main_process and run.status == "completed":
        plot_run(run)
        write_card(run)
    if not options.get("lean") and PartialState().is_main_process and run.finished:
        finish_tracking(run)  # last: the card and the report go along as artefacts
    return run


def evaluate(run: Run | str | Path, data: str | Path | None = None, **columns) -> dict:
    """Metrics of a run's model on a labelled table file (default: the run's own test split)."""
    return (run if isinstance(run, Run) else Run(run)).evaluate(data, **columns)


def predict(run: Run | str | Path, texts: list, pairs: list[str] | None = None) -> list[dict]:
    """The task's prediction for each text (label and scores, labels, entities, or a value)."""
    return (run if isinstance(run, Run) else Run(run)).predict(texts, pairs)


def compress(run: Run | str | Path, steps: list[str] | str | None = None, *, out: str | Path | None = None,
             max_drop: float | None = None, overrides: list[str] | None = None, config=None, quiet: bool = True):
    """Variants of a run, one per step in order (each a Run), measured beside the original;
    writes compression.json and pareto.png. See pretune.compress.pipeline."""
    from pretune.compress.pipeline import compress as run_pipeline

    run = run if isinstance(run, Run) else Run(run)
    tracking = run.recipe.tracking
    if tracking.mlflow:  # the variants' runs nest under one parent run in the output directory
        out = Path(out) if out else run.path.with_name(f"{run.path.name}-compressed")
        start_group(out, tracking, "compress", {"original": str(run.path), "steps": str(steps)})
    try:
        compression = run_pipeline(run, steps, out=out, max_drop=max_drop, overrides=overrides, config=config,
                                   quiet=quiet)
    except BaseException:
        if out is not None:
            end_group(out, tracking, [], failed=True)
        raise
    write_compression_cards(compression.path)
    for variant, row in zip(compression.variants, compression.rows[1:], strict=False):
        finish_tracking(variant, row)
    end_group(compression.path, tracking, ["compression.json", "pareto.png"])
    return compression


def measure(runs: Run | str | Path | list, *, threads: int = 2, samples: int = 256, isolate: bool = True):
    """Size, parameters, latency p50/p95, throughput, peak memory and test metrics of each run
    (a dict for one run, a list for several)."""
    from pretune.compress.measure import measure as measure_one
    from pretune.recipe import MeasureConfig

    cfg = MeasureConfig(threads=threads, samples=samples, isolate=isolate)
    if isinstance(runs, (list, tuple)):
        return [measure_one(r, cfg) for r in runs]
    return measure_one(runs, cfg)


def export(run: Run | str | Path, out: str | Path | None = None, *, int8: bool = False) -> Run:
    """The run's model as ONNX (checked against torch) in a new run directory; `int8`: ONNX Runtime
    int8 (dynamic for text, static with calibration for images)."""
    from pretune.compress.pipeline import run_step

    run = run if isinstance(run, Run) else Run(run)
    out = Path(out) if out else run.path.with_name(f"{run.path.name}-onnx{'-int8' if int8 else ''}")
    return run_step(run, "quantize" if int8 else "export", out)


def search(recipe: RecipeLike = None, out: str | Path | None = None, **options):
    """Hyperparameter search over the recipe's `search.space`; returns a `pretune.search.Study`.

    Options: resume, overrides, trials, timeout, sampler, pruner, storage, study, workers, keep,
    callbacks (see `pretune.search.study.search`)."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise MissingExtraError("optuna", "search") from None
    from pretune.search.study import search as run_search

    base, where = _study_plan(recipe, out, options)
    tracking = base.tracking
    if tracking.mlflow:  # the trials' runs nest under one parent run in the study directory
        start_group(where, tracking, "search", flatten(base.model_dump(mode="json")))
    try:
        study = run_search(recipe, out, **options)
    except BaseException:
        end_group(where, tracking, [], failed=True)
        raise
    if study.best_trial and study.best_trial.get("run"):
        write_card(study.best_trial["run"])  # None where the best trial kept no weights
    if tracking.tensorboard or tracking.mlflow:
        for trial in sorted(study.path.glob("trial-*")):
            if (trial / "metrics.json").is_file():
                finish_tracking(Run(trial))
    best = study.best_trial or {}
    end_group(study.path, tracking, ["study.json", "trials.csv", "best.yaml"],
              {f"best/{k}": v for k, v in (best.get("values") or {}).items()})
    return study


def _study_plan(recipe: RecipeLike, out, options: dict):
    """The recipe and directory of the study `search` is about to run (or join)."""
    from pretune.recipe import Recipe
    from pretune.search.study import default_study_dir

    if options.get("resume"):
        return Recipe.load(Path(options["resume"]) / "recipe.yaml"), Path(options["resume"])
    base = as_recipe(recipe if recipe is not None else Recipe(), options.get("overrides"))
    return base, Path(out) if out else default_study_dir(recipe, base)
