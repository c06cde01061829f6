"""The callbacks every fit uses: metrics file, checkpoints, best model, progress bar."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_model, save_model

from pretune import atomic
from pretune.evaluate import is_better
from pretune.train.callbacks import Callback
from pretune.train.checkpoints import save_checkpoint


class MetricsFileCallback(Callback):
    """Keeps `metrics.jsonl` equal to the loop's history, rewritten atomically when it grows."""

    def __init__(self, path: Path):
        self.path, self.written = path, -1

    def _flush(self, state) -> None:
        if len(state.history) != self.written and state.accelerator.is_main_process:
            atomic.write_jsonl(self.path, state.history)
            self.written = len(state.history)

    on_batch_end = on_evaluate = on_epoch_end = on_fit_end = _flush


class CheckpointCallback(Callback):
    """Saves a checkpoint every `every` steps and at each epoch end; keeps the newest `keep`.

    `stateful` are objects (other callbacks, a strategy) whose state_dict() goes along.
    """

    def __init__(self, root: Path, every: int | None, keep: int, recipe_yaml: str,
                 stateful: dict):
        self.root, self.every, self.keep = root, every, keep
        self.recipe_yaml, self.stateful = recipe_yaml, stateful
        self.last_step = -1

    def save(self, state) -> None:
        acc = state.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process and state.step != self.last_step:
            loop_state = {"loop": state.state_dict(),
                          **{k: v.state_dict() for k, v in self.stateful.items()}}
            save_checkpoint(self.root, state.step, acc.unwrap_model(state.model), state.optimizer,
                            state.scheduler, loop_state, self.recipe_yaml, self.keep)
            self.last_step = state.step

    def on_batch_end(self, state) -> None:
        if self.every and state.step % self.every == 0:
            self.save(state)

    def on_epoch_end(self, state) -> None:
        self.save(state)


class BestModelCallback(Callback):
    """Keeps the weights of the best validation evaluation of `metric` (transformers'
    load_best_model_at_end); `restore(model)` puts them back after the fit.

    `root` holds the weights and best.json (step, metrics) together, written as one atomic
    directory, so the two always agree. They live on disk, not in memory, so a resumed run
    reads its best so far from there.
    """

    WEIGHTS, SUMMARY = "model.safetensors", "best.json"

    def __init__(self, root: Path, metric: str):
        self.root, self.metric = root, metric
        summary = root / self.SUMMARY
        self.best: dict | None = json.loads(summary.read_text()) if summary.is_file() else None

    def on_evaluate(self, state) -> None:
        value = state.last_eval[self.metric]
        if not is_better(self.metric, value, self.best["metrics"][self.metric] if self.best else None):
            return
        self.best = {"step": state.step, "metric": self.metric, "metrics": state.last_eval}
        acc = state.accelerator
        if acc.is_main_process:
            with atomic.atomic_dir(self.root) as tmp:
                save_model(acc.unwrap_model(state.model), str(tmp / self.WEIGHTS))
                (tmp / self.SUMMARY).write_text(json.dumps(self.best, indent=2))
        acc.wait_for_everyone()

    def restore(self, model) -> dict | None:
        """Load the best weights into `model`; return {step, metric, metrics}, or None if none."""
        if self.best is None:
            return None
        load_model(model, str(self.root / self.WEIGHTS))
        return self.best


class ProgressCallback(Callback):
    """A rich progress bar: loss, learning rate, samples/s and time left."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # Narrow enough for an 80-column terminal: rich squeezes columns that do not fit.
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(bar_width=10), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} lr {task.fields[lr]} {task.fields[speed]}"),
            TextColumn("eta"), TimeRemainingColumn(),
        )
        self.task = None

    def _fields(self, state) -> dict:
        speed = state.samples_seen / state.train_seconds if state.train_seconds else 0.0
        loss = "-" if state.last_loss is None else f"{state.last_loss:.3f}"
        return {"epoch": f"{min(state.epoch + 1, state.epochs)}/{state.epochs}", "loss": loss,
                "lr": f"{state.lr:.1e}", "speed": f"{speed:.1f} samples/s"}

    def on_fit_start(self, state) -> None:
        if state.accelerator.is_main_process:
            self.progress.start()
            self.task = self.progress.add_task("fit", total=state.total_steps,
                                               completed=state.step, **self._fields(state))

    def on_batch_end(self, state) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=state.step, **self._fields(state))

    def on_fit_end(self, state) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=state.step, **self._fields(state))
            self.progress.stop()
