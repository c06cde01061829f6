"""fit: a recipe (and any objects given in Python) in, a Run directory out.

Sits below search and compress, which call it many times: `lean=True` is a search trial's mode
(no checkpoints, no saved model, no test pass unless asked), and a callback that raises
`CancelTraining` leaves a run marked cancelled, never half-written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from accelerate.utils import broadcast_object_list

from pretune import atomic, runs
from pretune.data.prepare import resolve_data_paths
from pretune.errors import PretuneError
from pretune.evaluate import run_split
from pretune.predictor import Run, SplitAnswers
from pretune.recipe import Recipe, RecipeLike, as_recipe
from pretune.runs import RunDir
from pretune.tracking import create_tracking_callbacks
from pretune.train.checkpoints import latest_checkpoint, prune_checkpoints, resume_checkpoint
from pretune.train.convergence import TrainSampleCallback, convergence_figures, training_sample
from pretune.train.loop import TrainLoop, create_accelerator
from pretune.train.run_callbacks import (
    BestModelCallback,
    CheckpointCallback,
    MetricsFileCallback,
    ProgressCallback,
)
from pretune.train.schedules import create_scheduler
from pretune.train.setup import count_parameters, early_stopping, prepare_fit


def fit(
    recipe: RecipeLike = None, out: str | Path | None = None, *, resume: str | Path | None = None,
    overrides: list[str] | None = None, callbacks: list | None = None, quiet: bool = False,
    lean: bool = False, save_model: bool | None = None, test: bool | None = None,
    model=None, tokenizer=None, data=None, loss=None,
) -> Run:
    """Fine-tune as the recipe says; return the Run (metrics, model path, predict, evaluate).

    `resume=RUN_DIR` continues that run from its newest checkpoint with its saved recipe.
    `model` (a Hugging Face model or any nn.Module returning logits), `tokenizer` and `data` (a
    DataFrame, or a dict of 'train' / 'validation' / 'test' DataFrames) replace what the recipe
    would load; `loss` (a callable (logits, labels) -> loss, or an nn.Module) the recipe's
    train.loss, and metrics.json's train.loss_function names it. `lean=True` skips checkpoints,
    the saved model and the test pass; `save_model` and `test` turn either back on.
    """
    save_model = not lean if save_model is None else save_model
    test = not lean if test is None else test
    # A run killed before its first checkpoint holds nothing worth keeping: the same command,
    # or --resume, starts it afresh rather than refusing both ways.
    restart = False
    if resume is not None:
        if recipe is not None or overrides:
            raise PretuneError("--resume takes the recipe saved in the run; give no other recipe")
        run_dir = Path(resume)
        existing = RunDir(run_dir)
        recipe = existing.recipe
        if existing.status == "completed" and (run_dir / runs.MODEL).is_dir():
            # Trained and saved, then killed while its predictions, card or report were written:
            # nothing to train; pretune.fit (api) writes what is missing.
            atomic.refuse_links(run_dir)
            if not quiet:
                print(f"pretune: notice: {run_dir} has finished training: writing what follows it")
            return Run(run_dir)
        if existing.finished and latest_checkpoint(run_dir / runs.CHECKPOINTS) is None:
            raise PretuneError(f"{run_dir} has finished ({existing.status}) and keeps no checkpoint: nothing to "
                               f"resume; to fit it afresh, give another --out (or remove {run_dir} first)")
        restart = existing.restartable
    else:
        recipe = as_recipe(recipe if recipe is not None else Recipe(), overrides)
        recipe = recipe.model_copy(update={"data": resolve_data_paths(recipe.data)})
        run_dir = Path(out) if out else None
        if run_dir is not None and (run_dir / runs.RECIPE).exists():
            if not RunDir(run_dir).restartable:
                raise PretuneError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
            restart = True

    if run_dir is not None:
        atomic.refuse_links(run_dir)  # before the slow part: a planted link fails at once
    parts = prepare_fit(recipe, model, tokenizer, data, loss)
    accelerator = create_accelerator(recipe.train)
    if run_dir is None:
        # Every process must write to (and read from) the main process's directory.
        run_dir = Path(broadcast_object_list([str(default_run_dir(recipe))])[0])
    main = accelerator.is_main_process
    tc = recipe.train
    early = early_stopping(recipe)
    keeper = BestModelCallback(run_dir / runs.CHECKPOINTS / "best", tc.keep_best) if tc.keep_best else None
    stateful = {name: obj for name, obj in (("early_stopping", early), ("keep_best", keeper)) if obj}
    own = [MetricsFileCallback(run_dir / runs.HISTORY), *([early] if early else []),
           *create_tracking_callbacks(recipe.tracking, run_dir)]
    if not lean:
        own.append(CheckpointCallback(run_dir / runs.CHECKPOINTS, tc.checkpoint_every_steps,
                                      tc.keep_checkpoints, recipe.to_yaml(), stateful))
    for notice in parts.notices:  # they change what is trained: told even under --quiet
        if main:
            print(f"pretune: notice: {notice}", file=sys.stderr)
    sampled = _train_sample_callback(parts, lean)
    loop = TrainLoop(
        parts.model, tc, parts.encoded["train"], parts.encoded["validation"], parts.loss_fn,
        parts.task, optimizer_factory=parts.optimizer_factory(),
        scheduler_factory=lambda opt, total, per_epoch: create_scheduler(opt, tc.schedule, total, per_epoch),
        pad_id=parts.pad_id, seed=recipe.seed, group_by_length=recipe.data.group_by_length,
        # The keeper first: a callback that stops training in on_evaluate must not hide that
        # evaluation from it.
        callbacks=[*sampled, *([keeper] if keeper else []), *parts.callbacks(), *(callbacks or []), *own,
                   *([] if quiet else [ProgressCallback()])],
        accelerator=accelerator, sample_weights=parts.sample_weights,
    )
    parts.model_report.append({"change": f"strategy {recipe.strategy.name}", **count_parameters(parts.model)})
    if main:
        if restart:
            if not quiet:
                print(f"pretune: notice: {run_dir} was stopped before its first checkpoint: starting it afresh")
            RunDir.restart(run_dir, recipe)
        elif resume is None:
            RunDir.create(run_dir, recipe)
        else:
            RunDir(run_dir).prepare()
    accelerator.wait_for_everyone()
    if resume is not None and not restart:
        _, saved = resume_checkpoint(run_dir / runs.CHECKPOINTS, loop.accelerator.unwrap_model(loop.model),
                                     loop.optimizer, loop.scheduler,
                                     {"total_steps": loop.state.total_steps, "epochs": loop.state.epochs})
        loop.state.load_state_dict(saved["loop"])
        for name, obj in stateful.items():
            obj.load_state_dict(saved[name])
    state = loop.run()

    done = Run(run_dir)
    if main:
        done.test_predictions = _finish(done, parts, loop, keeper, state, save_model, test)
        if state.status == "completed":
            # A finished run needs no optimizer state: checkpoints are 3x the model on disk.
            prune_checkpoints(run_dir / runs.CHECKPOINTS, tc.keep_checkpoints_after_fit)
    accelerator.wait_for_everyone()  # the other processes may read metrics.json once it is whole
    return done


def _finish(run: Run, parts, loop: TrainLoop, keeper, state, save_model: bool, test: bool):
    """metrics.json (and the model) of a run whose loop has ended; the test split's answers when
    it was scored (None if not): one test pass gives the figures and the predictions the report
    shows (api.fit writes them), with no second read of the data or reload of the model."""
    encoded, task = parts.encoded, parts.task
    model = loop.accelerator.unwrap_model(loop.model)
    cancelled = state.status == "cancelled"
    best = keeper.restore(model) if keeper and not cancelled else None
    validation = best["metrics"] if best else state.last_eval
    calibration = None
    scale = parts.recipe.train.calibrate and not cancelled
    if (task.calibrates or scale) and not cancelled:
        # What validation settles (multi-label thresholds, the temperature) is settled on the final
        # weights; one pass gives the outputs to tune on and, scored after tuning, the validation figures.
        outputs, loss = run_split(loop.runner(), encoded["validation"], loop.cfg.eval_batch_size, parts.pad_id,
                                  parts.loss_fn)
        calibration = (task.calibrate(outputs, encoded["validation"]) if task.calibrates else None) or {}
        scaled = task.scale_confidence(outputs, encoded["validation"]) if scale else None
        calibration |= scaled or {}
        scale = scaled is not None
        calibration = calibration or None
        validation = {"loss": loss, **task.metrics(outputs, encoded["validation"])}
    final = {
        "status": state.status,
        "task": task.name,
        "train": {"loss": state.last_loss, "steps": state.step, "total_steps": state.total_steps,
                  "epochs": round(state.step / state.steps_per_epoch, 4),
                  "train_seconds": state.train_seconds,
                  "train_samples_per_second": state.samples_seen / max(state.train_seconds, 1e-9),
                  "samples": len(encoded["train"]), "stop_reason": state.stop_reason,
                  "loss_function": parts.loss_name, **state.extras,
                  **({"best_step": best["step"], "best_metric": best["metric"]} if best else {})},
        "validation": {"samples": len(encoded["validation"]), **validation},
        "model": {"source": parts.recipe.model.source, "labels": task.label_names,
                  **parts.model_report[-1], "changes": parts.model_report},
        **({"calibration": calibration} if calibration else {}),
        **({"convergence": c} if (c := convergence_figures(
            state.history, task.headline, validation.get(task.headline))) else {}),
        **({"notices": parts.notices} if parts.notices else {}),
        **({"task_defaults": defaults} if (defaults := parts.recipe.task_defaults()) else {}),
    }
    predictions = None
    if test and not cancelled:
        # The main process alone (the others wait at the barrier): unsharded.
        outputs, loss = run_split(loop.runner(), encoded["test"], loop.cfg.eval_batch_size, parts.pad_id,
                                  parts.loss_fn)
        final["test"] = {"samples": len(encoded["test"]), **({"loss": loss} if loss is not None else {}),
                         **task.metrics(outputs, encoded["test"])}
        table = parts.data.splits["test"]
        predictions = SplitAnswers(task, table, task.decode(outputs, encoded["test"], table))
        if scale:  # the calibration error on test without and with the temperature, from the same pass
            errors = task.calibration_errors(outputs, encoded["test"])
            final["calibration"] |= {f"test_{k}": v for k, v in errors.items()}
    if not cancelled and (warnings := task.warnings(final.get("test") or final["validation"])):
        final["warnings"] = warnings
        for line in warnings:  # told even under --quiet, like the notices
            print(f"pretune: warning: {line}", file=sys.stderr)
    if save_model and not cancelled:
        with run.writing_model() as tmp:
            if hasattr(model, "config"):
                task.configure(model.config)  # labels and what calibration decided travel with it
            parts.strategy.save(model, tmp)
            if hasattr(parts.tokenizer, "save_pretrained"):
                parts.tokenizer.save_pretrained(tmp)
            parts.inputs.save(tmp)
    run.write_metrics(final)
    return predictions


def _train_sample_callback(parts, lean: bool) -> list:
    """The fixed training sample's scoring at each evaluation; a search trial (lean) skips it
    unless train.train_sample is set: it adds a pass per evaluation."""
    size = parts.recipe.train.train_sample
    if lean and size is None:
        return []
    sample = training_sample(parts.plain_train, size, len(parts.encoded["validation"]), parts.recipe.seed)
    if sample is None:
        return []
    # First: a callback that stops training in on_evaluate must not leave it unscored.
    return [TrainSampleCallback(sample, parts.task, parts.recipe.train.eval_batch_size, parts.pad_id, parts.loss_fn)]


def default_run_dir(recipe: Recipe) -> Path:
    name = Path(recipe.data.train or recipe.data.source).stem.replace(":", "-")
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
