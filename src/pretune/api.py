"""The public verbs, thin: each forwards to where it lives and adds only what belongs on top
(a finished fit's plots, test predictions and report.html; a study's and a compression's report)."""

from __future__ import annotations

from pathlib import Path

from pretune import runs
from pretune.errors import MissingExtraError, PretuneError
from pretune.plots import plot_run
from pretune.predictor import Run, load_run
from pretune.recipe import RecipeLike, as_recipe
from pretune.report.cards import write_card, write_compression_cards
from pretune.tracking import end_group, finish_tracking, start_group
from pretune.tracking.records import flatten
from pretune.train.fit import fit as _fit
from pretune.train.label_issues import write_label_issues

__all__ = ["adapt", "as_recipe", "check", "compress", "evaluate", "export", "fit", "load_run", "measure", "pipeline",
           "predict", "report", "search", "serve"]


def fit(recipe: RecipeLike = None, out: str | Path | None = None, *, report: bool | None = None, **options) -> Run:
    """Fine-tune as the recipe says; plot the run (learning curves, lr schedule), keep its test
    predictions and the machine it ran on, and write report.html (`report=False` or the recipe's
    `report: false`: no page).

    Takes `pretune.train.fit.fit`'s options: resume, overrides, callbacks, quiet, lean,
    save_model, test, model, tokenizer, data."""
    from accelerate import PartialState

    run = _fit(recipe, out, **options)
    if options.get("lean") or not PartialState().is_main_process:
        return run
    from pretune.report.environment import write_environment
    from pretune.report.predictions import write_test_predictions

    write_environment(run.path)
    if run.status == "completed":
        plot_run(run)
        _for_the_report(str(runs.PREDICTIONS), write_test_predictions, run, options.get("data"))
        write_label_issues(run, options.get("data"))
        write_card(run)
    if run.recipe.report if report is None else report:
        _for_the_report(runs.REPORT, _page, run.path)
    if run.finished:
        finish_tracking(run)  # last: the card and the report go along as artefacts
    return run


def adapt(recipe: RecipeLike = None, out: str | Path | None = None, **options):
    """Continued masked-LM pretraining of the recipe's model on unlabelled text (`data.unlabeled`,
    or the training texts); returns the run, whose `model/` a fit takes as `model.source`.

    Options: resume, overrides, quiet, texts, callbacks (see `pretune.train.pretrain.adapt`)."""
    from pretune.report.environment import write_environment
    from pretune.train.pretrain import adapt as run_adapt

    run = run_adapt(recipe, out, **options)
    from accelerate import PartialState

    if PartialState().is_main_process:
        write_environment(run.path)
    return run


def report(paths, out: str | Path | None = None) -> Path:
    """One self-contained HTML page of a run, a study, a compression directory, or (several runs)
    their comparison; returns its path (default PATH/report.html). See pretune.report.build."""
    return _page(paths, out)


def _page(paths, out: str | Path | None = None) -> Path:
    from pretune.report.build import report as write

    return write(paths, out)


def _for_the_report(what: str, write, target, *args) -> None:
    """What a verb writes at its end for the page (test predictions, the page itself): a failure is
    told in one line, never the loss of what the verb made (a model `pretune.Run` cannot reload,
    given to fit as a plain nn.Module, has no test predictions)."""
    import sys

    try:
        write(target, *args)
    except Exception as e:  # noqa: BLE001 - the run, study or compression on disk stays whole and usable
        where = getattr(target, "path", target)
        print(f"pretune: warning: {what} not written for {where}: {e}", file=sys.stderr)


def check(data=None, *, label: str | None = None, text: str | None = None, overrides: list[str] | None = None,
          out: str | Path | None = None, tokenizer="model") -> dict:
    """What a data set holds before a fit: exact and near-duplicate texts, texts shared between
    training and validation / test, class counts and imbalance (with the recipe's remedy), empty
    texts, the share cut at max_length per split. `data`: a recipe (Recipe, dict, YAML path), a
    bundled dataset's name, or a data file (`label` / `text`: its columns, else the obvious
    ones). `out`: the result also written there as JSON. See pretune.data.check."""
    from pretune.atomic import write_json
    from pretune.data.check import check as check_data
    from pretune.data.check import check_recipe
    from pretune.tasks import create_task

    recipe = check_recipe(data, label, text, overrides)
    result = check_data(recipe, create_task(recipe.data), tokenizer)
    if out is not None:
        write_json(out, result)
    return result


def evaluate(run: Run | str | Path, data: str | Path | None = None, **columns) -> dict:
    """Metrics of a run's model on a labelled table file (default: the run's own test split)."""
    return (run if isinstance(run, Run) else Run(run)).evaluate(data, **columns)


def predict(run: Run | str | Path, texts: list, pairs: list[str] | None = None) -> list[dict]:
    """The task's prediction for each text (label and scores, labels, entities, or a value)."""
    return (run if isinstance(run, Run) else Run(run)).predict(texts, pairs)


def compress(run: Run | str | Path, steps: list[str] | str | None = None, *, out: str | Path | None = None,
             max_drop: float | None = None, overrides: list[str] | None = None, config=None, quiet: bool = True,
             variants: list[list[str]] | str | None = None, report: bool | None = None, allows=None, loss=None):
    """Variants of a run, a tree of step chains (`steps`: one chain; `variants`: several, shared
    prefixes run once), each node a Run measured beside the original, the fastest within
    `max_drop` chosen on validation; writes compression.json, pareto.png and report.html
    (`report=False` or the run recipe's `report: false`: no page); `loss` (a callable or
    nn.Module) is what distillation and pruning recovery train on. See pretune.compress.tree."""
    from pretune.compress.tree import compress as compress_tree
    from pretune.report.environment import write_environment

    run = run if isinstance(run, Run) else Run(run)
    tracking = run.recipe.tracking
    if tracking.mlflow:  # the variants' runs nest under one parent run in the output directory
        out = Path(out) if out else run.path.with_name(f"{run.path.name}-compressed")
        start_group(out, tracking, "compress", {"original": str(run.path), "steps": str(steps)})
    try:
        compression = compress_tree(run, steps, out=out, max_drop=max_drop, overrides=overrides, config=config,
                                    quiet=quiet, variants=variants, allows=allows, loss=loss)
    except BaseException:
        if out is not None:
            end_group(out, tracking, [], failed=True)
        raise
    write_environment(compression.path)  # the machine the variants were measured on
    write_compression_cards(compression.path)
    for variant, row in zip(compression.variants, compression.rows[1:], strict=False):
        finish_tracking(variant, row)
    if run.recipe.report if report is None else report:
        _for_the_report(runs.REPORT, _page, compression.path)
    end_group(compression.path, tracking, [runs.COMPRESSION, runs.PARETO])
    return compression


def measure(runs: Run | str | Path | list, *, threads: int = 2, samples: int = 256, isolate: bool = True):
    """Size, parameters, latency p50/p95, throughput, peak memory and test metrics of each run
    (a dict for one run, a list for several)."""
    from pretune.compress.measure import measure as measure_one
    from pretune.recipe import MeasureConfig, validated

    cfg = validated(MeasureConfig, "measure", threads=threads, samples=samples, isolate=isolate)
    if isinstance(runs, (list, tuple)):
        return [measure_one(r, cfg) for r in runs]
    return measure_one(runs, cfg)


def export(run: Run | str | Path, out: str | Path | None = None, *, int8: bool = False, format: str = "onnx") -> Run:
    """The run's model as ONNX or OpenVINO IR (`format`, checked against torch) in a new run
    directory; `int8`: ONNX Runtime int8 (dynamic for text, static with calibration for images),
    or with openvino NNCF's static int8 calibrated on training rows."""
    from pretune.compress.tree import resolve_config, run_step

    if format not in ("onnx", "openvino"):
        raise PretuneError(f"unknown export format '{format}'; known: onnx, openvino")
    run = run if isinstance(run, Run) else Run(run)
    out = Path(out) if out else run.path.with_name(f"{run.path.name}-{format}{'-int8' if int8 else ''}")
    step = "quantize" if int8 else "export"
    setting = "compress.quantize.backend" if int8 else "compress.export.format"
    config = resolve_config(run, [step], overrides=[f"{setting}={format}"]) if format != "onnx" else None
    return run_step(run, step, out, config)


def search(recipe: RecipeLike = None, out: str | Path | None = None, *, report: bool | None = None, **options):
    """Hyperparameter search over the recipe's `search.space`; returns a `pretune.search.Study`
    and writes the study's report.html (`report=False` or `report: false`: no page; a trial never
    writes one).

    Options: resume, overrides, trials, timeout, sampler, pruner, storage, study, workers, keep,
    callbacks, loss (see `pretune.search.study.search`)."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise MissingExtraError("optuna", "search") from None
    from pretune.recipe import Recipe
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
            if (trial / runs.METRICS).is_file():
                finish_tracking(Run(trial))
    if Recipe.load(study.path / runs.RECIPE).report if report is None else report:
        _for_the_report(runs.REPORT, _page, study.path)
    best = study.best_trial or {}
    end_group(study.path, tracking, [runs.STUDY, runs.TRIALS, runs.BEST, runs.REPORT],
              {f"best/{k}": v for k, v in (best.get("values") or {}).items()})
    return study


def _study_plan(recipe: RecipeLike, out, options: dict):
    """The recipe and directory of the study `search` is about to run (or join)."""
    from pretune.recipe import Recipe
    from pretune.search.study import default_study_dir

    if options.get("resume"):
        where = Path(options["resume"])
        # Not a study: search itself says so in one line; tracking needs its recipe only.
        return (Recipe.load(where / runs.RECIPE) if (where / runs.RECIPE).is_file() else Recipe()), where
    base = as_recipe(recipe if recipe is not None else Recipe(), options.get("overrides"))
    return base, Path(out) if out else default_study_dir(recipe, base)


def pipeline(recipe: RecipeLike = None, out: str | Path | None = None, **options):
    """check -> search -> fit -> compress -> report -> release, as the recipe's sections say; resumable
    (the same call again continues). Returns a `pretune.pipeline.Pipeline`.

    `recipe` may be a data file or folder: `pipeline("reviews.csv", label="sentiment", time_limit="15m")`.
    Options: resume, overrides, fit_overrides, quiet, label, text, preset, time_limit, dry_run (see
    `pretune.pipeline.run.pipeline`)."""
    from pretune.pipeline import Verbs
    from pretune.pipeline import pipeline as run_pipeline

    # The public verbs, so each stage adds what they add (plots, cards, pages).
    verbs = Verbs(fit=fit, search=search, compress=compress, report=report)
    return run_pipeline(recipe, out, verbs=verbs, **options)


def serve(run: Run | str | Path, **options) -> None:
    """Serve a run over HTTP until SIGTERM (Open Inference Protocol V2, /predict, /metrics; requests
    batched). Options: ServeConfig's fields (host, port, max_batch, max_wait_ms, threads, ...)."""
    from pretune.serve import serve as run_server

    run_server(run if isinstance(run, Run) else Run(run), **options)
