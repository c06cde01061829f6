"""The public verbs: fit, evaluate, predict. Each takes plain objects and gives plain objects."""

from __future__ import annotations

import time
from pathlib import Path

from pretune import atomic, runs
from pretune.errors import PretuneError
from pretune.recipe import Recipe, RecipeLike, as_recipe
from pretune.report import plots
from pretune.runs import Run
from pretune.train.checkpoints import latest_checkpoint, load_checkpoint
from pretune.train.loop import TrainLoop, create_accelerator
from pretune.train.run_callbacks import (
    BestModelCallback,
    CheckpointCallback,
    MetricsFileCallback,
    ProgressCallback,
)
from pretune.train.schedules import create_scheduler, lr_multiplier
from pretune.train.setup import count_parameters, early_stopping, prepare_fit


def fit(
    recipe: RecipeLike = None, out: str | Path | None = None, *, resume: str | Path | None = None,
    overrides: list[str] | None = None, callbacks: list | None = None, quiet: bool = False,
) -> Run:
    """Fine-tune as the recipe says; return the Run (metrics, model path, predict, evaluate).

    `resume=RUN_DIR` continues that run from its newest checkpoint with its saved recipe.
    """
    if resume is not None:
        if recipe is not None or overrides:
            raise PretuneError("--resume takes the recipe saved in the run; give no other recipe")
        run_dir = Path(resume)
        recipe = Run(run_dir).recipe
        checkpoint = latest_checkpoint(run_dir / runs.CHECKPOINTS)
        if checkpoint is None:
            raise PretuneError(f"no checkpoint to resume from in {run_dir / runs.CHECKPOINTS}")
    else:
        recipe = as_recipe(recipe if recipe is not None else Recipe(), overrides)
        run_dir = Path(out) if out else default_run_dir(recipe)
        if (run_dir / runs.RECIPE).exists():
            raise PretuneError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        checkpoint = None

    parts = prepare_fit(recipe)
    tc = recipe.train
    early = early_stopping(recipe)
    keeper = BestModelCallback(run_dir / runs.CHECKPOINTS / "best", tc.keep_best) if tc.keep_best else None
    stateful = {name: obj for name, obj in (("early_stopping", early), ("keep_best", keeper)) if obj}
    own = [MetricsFileCallback(run_dir / runs.HISTORY), *([early] if early else []),
           CheckpointCallback(run_dir / runs.CHECKPOINTS, tc.checkpoint_every_steps,
                              tc.keep_checkpoints, recipe.to_yaml(), stateful)]
    loop = TrainLoop(
        parts.model, tc, parts.encoded["train"], parts.encoded["validation"], parts.loss_fn,
        parts.data.label_names, optimizer_factory=parts.optimizer_factory(),
        scheduler_factory=lambda opt, total: create_scheduler(opt, tc.schedule, total),
        pad_id=parts.pad_id, seed=recipe.seed, group_by_length=recipe.data.group_by_length,
        # The keeper first: a callback that stops training in on_evaluate must not hide that
        # evaluation from it.
        callbacks=[*([keeper] if keeper else []), *parts.callbacks(), *(callbacks or []), *own,
                   *([] if quiet else [ProgressCallback()])],
        accelerator=create_accelerator(tc),
    )
    parts.model_report.append({"change": f"strategy {recipe.strategy.name}", **count_parameters(parts.model)})
    if resume is None:
        atomic.write_text(run_dir / runs.RECIPE, recipe.to_yaml())
    if checkpoint is not None:
        saved = load_checkpoint(checkpoint, loop.accelerator.unwrap_model(loop.model),
                                loop.optimizer, loop.scheduler)
        loop.state.load_state_dict(saved["loop"])
        for name, obj in stateful.items():
            obj.load_state_dict(saved[name])
    state = loop.run()

    if not loop.accelerator.is_main_process:
        return Run(run_dir)
    encoded = parts.encoded
    best = keeper.restore(loop.accelerator.unwrap_model(loop.model)) if keeper else None
    validation = best["metrics"] if best else state.last_eval
    test = loop.evaluate(encoded["test"])
    final = {
        "train": {"loss": state.last_loss, "steps": state.step,
                  "epochs": round(state.step / state.steps_per_epoch, 4),
                  "train_seconds": state.train_seconds,
                  "train_samples_per_second": state.samples_seen / max(state.train_seconds, 1e-9),
                  "samples": len(encoded["train"]), "stop_reason": state.stop_reason,
                  **({"best_step": best["step"], "best_metric": best["metric"]} if best else {})},
        "validation": {"samples": len(encoded["validation"]), **validation},
        "test": {"samples": len(encoded["test"]), **test},
        "model": {"source": recipe.model.source, "labels": parts.data.label_names,
                  **parts.model_report[-1], "changes": parts.model_report},
    }
    with atomic.atomic_dir(run_dir / runs.MODEL) as tmp:
        parts.strategy.save(loop.accelerator.unwrap_model(loop.model), tmp)
        parts.tokenizer.save_pretrained(tmp)
    _plot(run_dir, state.history, recipe, state.total_steps, recipe.data.task)
    atomic.write_json(run_dir / runs.METRICS, final)
    return Run(run_dir)


def evaluate(run: Run | str | Path, data: str | Path, **columns) -> dict:
    """Metrics of a run's model on a labelled table file."""
    return (run if isinstance(run, Run) else Run(run)).evaluate(data, **columns)


def predict(run: Run | str | Path, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
    """Predicted label and class probabilities for each text."""
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
    dynamic int8 after its transformer fusions."""
    from pretune.compress.pipeline import run_step

    run = run if isinstance(run, Run) else Run(run)
    out = Path(out) if out else run.path.with_name(f"{run.path.name}-onnx{'-int8' if int8 else ''}")
    return run_step(run, "quantize" if int8 else "export", out)


def default_run_dir(recipe: Recipe) -> Path:
    name = Path(recipe.data.train or recipe.data.source).stem.replace(":", "-")
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def _plot(run_dir: Path, history: list[dict], recipe: Recipe, total: int, task: str) -> None:
    plots.learning_curves(history, run_dir / runs.PLOTS / "learning_curves.png",
                          "accuracy" if task == "classification" else "mse")
    mult = lr_multiplier(recipe.train.schedule, total)
    steps = list(range(total))
    plots.lr_schedule(steps, [recipe.train.optimizer.lr * mult(s) for s in steps],
                      run_dir / runs.PLOTS / "lr_schedule.png")


