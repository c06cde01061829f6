"""The public verbs, thin: each forwards to where it lives and adds only what belongs on top
(plots of a finished fit come from report/, which sits above train/)."""

from __future__ import annotations

from pathlib import Path

from pretune.errors import MissingExtraError
from pretune.predictor import Run, load_run
from pretune.recipe import RecipeLike, as_recipe
from pretune.report.plots import plot_run
from pretune.train.fit import fit as _fit

__all__ = ["as_recipe", "compress", "evaluate", "export", "fit", "load_run", "measure", "predict", "search", "serve"]


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


def compress(run: Run | str | Path, steps: list[str] | str | None = None, *, out: str | Path | None = None,
             max_drop: float | None = None, overrides: list[str] | None = None, config=None, quiet: bool = True):
    """Variants of a run, one per step in order (each a Run), measured beside the original;
    writes compression.json and pareto.png. See pretune.compress.pipeline."""
    from pretune.compress.pipeline import compress as run_pipeline

    return run_pipeline(run, steps, out=out, max_drop=max_drop, overrides=overrides, config=config, quiet=quiet)


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

    return run_search(recipe, out, **options)


def serve(run: Run | str | Path, **options) -> None:
    """Serve a run over HTTP until SIGTERM (Open Inference Protocol V2, /predict, /metrics; requests
    batched). Options: ServeConfig's fields (host, port, max_batch, max_wait_ms, threads, ...)."""
    from pretune.serve import serve as run_server

    run_server(run if isinstance(run, Run) else Run(run), **options)
