"""The public verbs: fit, evaluate, predict. Each takes plain objects and gives plain objects."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from pretune import atomic, runs
from pretune.data import encode, prepare
from pretune.errors import PretuneError
from pretune.models import load_classifier, load_tokenizer
from pretune.recipe import Recipe, apply_override
from pretune.report import plots
from pretune.runs import Run
from pretune.train.callbacks import EarlyStoppingCallback
from pretune.train.checkpoints import latest_checkpoint, load_checkpoint
from pretune.train.loop import TrainLoop, create_accelerator, seed_everything
from pretune.train.losses import create_loss, losses
from pretune.train.optimizers import create_optimizer, optimizers, param_groups
from pretune.train.run_callbacks import CheckpointCallback, MetricsFileCallback, ProgressCallback
from pretune.train.schedules import create_scheduler, lr_multiplier, schedules

RecipeLike = Recipe | dict | str | Path
CLASSIFICATION_METRICS = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro",
                          "precision_micro", "recall_micro", "f1_micro", "precision_weighted",
                          "recall_weighted", "f1_weighted")
REGRESSION_METRICS = ("loss", "mse", "mae", "r2")


def as_recipe(recipe: RecipeLike, overrides: list[str] | None = None) -> Recipe:
    """A Recipe from a Recipe, a dict or a YAML path, with `section.key=value` overrides on top."""
    if isinstance(recipe, (str, Path)):
        return Recipe.load(recipe, overrides)
    if isinstance(recipe, Recipe) and not overrides:
        return recipe
    raw = recipe.model_dump(mode="json") if isinstance(recipe, Recipe) else copy.deepcopy(recipe)
    for item in overrides or []:
        apply_override(raw, item)
    return Recipe.from_dict(raw)


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

    _resolve_names(recipe)  # an unknown name fails before any work or any file
    seed_everything(recipe.seed)
    data = prepare(recipe.data)
    task = recipe.data.task
    _check_metric(recipe, task)
    tokenizer = load_tokenizer(recipe.model.source)
    model = load_classifier(recipe.model, data.num_labels, data.label_names, task == "regression")
    max_len = recipe.data.max_length
    encoded = {name: encode(table, tokenizer, max_len) for name, table in data.splits.items()}
    counts = (np.bincount(data.splits["train"].labels, minlength=data.num_labels)
              if task == "classification" else None)
    loss_fn = create_loss(recipe.train.loss, task, counts)
    tc = recipe.train
    early = EarlyStoppingCallback(tc.early_stopping) if tc.early_stopping.patience else None
    stateful = {"early_stopping": early} if early else {}
    own = [MetricsFileCallback(run_dir / runs.HISTORY), *([early] if early else []),
           CheckpointCallback(run_dir / runs.CHECKPOINTS, tc.checkpoint_every_steps,
                              tc.keep_checkpoints, recipe.to_yaml(), stateful)]
    loop = TrainLoop(
        model, tc, encoded["train"], encoded["validation"], loss_fn, data.label_names,
        optimizer_factory=lambda m: create_optimizer(
            param_groups(m.named_parameters(), tc.optimizer.lr, tc.optimizer.weight_decay),
            tc.optimizer),
        scheduler_factory=lambda opt, total: create_scheduler(opt, tc.schedule, total),
        pad_id=tokenizer.pad_token_id or 0, seed=recipe.seed,
        group_by_length=recipe.data.group_by_length,
        callbacks=[*(callbacks or []), *own, *([] if quiet else [ProgressCallback()])],
        accelerator=create_accelerator(tc),
    )
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
    test = loop.evaluate(encoded["test"])
    final = {
        "train": {"loss": state.last_loss, "steps": state.step,
                  "epochs": round(state.step / state.steps_per_epoch, 4),
                  "train_seconds": state.train_seconds,
                  "train_samples_per_second": state.samples_seen / max(state.train_seconds, 1e-9),
                  "samples": len(encoded["train"]), "stop_reason": state.stop_reason},
        "validation": {"samples": len(encoded["validation"]), **state.last_eval},
        "test": {"samples": len(encoded["test"]), **test},
        "model": {"source": recipe.model.source, "labels": data.label_names,
                  "parameters": sum(p.numel() for p in model.parameters())},
    }
    with atomic.atomic_dir(run_dir / runs.MODEL) as tmp:
        loop.accelerator.unwrap_model(loop.model).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    _plot(run_dir, state.history, recipe, state.total_steps, task)
    atomic.write_json(run_dir / runs.METRICS, final)
    return Run(run_dir)


def evaluate(run: Run | str | Path, data: str | Path, **columns) -> dict:
    """Metrics of a run's model on a labelled table file."""
    return (run if isinstance(run, Run) else Run(run)).evaluate(data, **columns)


def predict(run: Run | str | Path, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
    """Predicted label and class probabilities for each text."""
    return (run if isinstance(run, Run) else Run(run)).predict(texts, pairs)


def default_run_dir(recipe: Recipe) -> Path:
    name = Path(recipe.data.train or recipe.data.source).stem.replace(":", "-")
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def _resolve_names(recipe: Recipe) -> None:
    tc = recipe.train
    optimizers.get(tc.optimizer.name), schedules.get(tc.schedule.name), losses.get(tc.loss.name)


def _check_metric(recipe: Recipe, task: str) -> None:
    known = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    metric = recipe.train.early_stopping.metric
    if metric not in known:
        raise PretuneError(
            f"train.early_stopping.metric '{metric}' is not a {task} metric; known: {', '.join(known)}")


def _plot(run_dir: Path, history: list[dict], recipe: Recipe, total: int, task: str) -> None:
    plots.learning_curves(history, run_dir / runs.PLOTS / "learning_curves.png",
                          "accuracy" if task == "classification" else "mse")
    mult = lr_multiplier(recipe.train.schedule, total)
    steps = list(range(total))
    plots.lr_schedule(steps, [recipe.train.optimizer.lr * mult(s) for s in steps],
                      run_dir / runs.PLOTS / "lr_schedule.png")


