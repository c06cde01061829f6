"""The callbacks every fit uses: metrics file, checkpoints, best model, progress bar."""

from __future__ import annotations

import math
from pathlib import Path

from safetensors.torch import load_model, save_model

from pretune import atomic, runs
from pretune.evaluate import is_better
from pretune.train.callbacks import Callback
from pretune.train.checkpoints import save_checkpoint


class MetricsFileCallback(Callback):
    """Keeps `metrics.jsonl` equal to the loop's history, rewritten atomically when it grows;
    a fit that fails (a non-finite loss, any error) leaves a `metrics.json` saying so, so the
    run reads `failed`, never `running` or `completed`."""

    def __init__(self, path: Path):
        self.path, self.written = path, -1

    def _flush(self, state) -> None:
        if len(state.history) != self.written and state.accelerator.is_main_process:
            atomic.write_jsonl(self.path, state.history)
            self.written = len(state.history)

    on_batch_end = on_evaluate = on_epoch_end = _flush

    def on_fit_end(self, state) -> None:
        self._flush(state)
        if state.status == "failed" and state.accelerator.is_main_process:
            loss = state.last_loss if state.last_loss is not None and math.isfinite(state.last_loss) else None
            atomic.write_json(self.path.with_name(runs.METRICS), {  # null, never a bare NaN, in JSON
                "status": "failed", "stop_reason": state.stop_reason,
                "train": {"loss": loss, "steps": state.step, "total_steps": state.total_steps}})


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

    Each best goes to `root/step-N.safetensors`; its summary (step, metrics) travels in every
    checkpoint's state. A resumed run so continues from the best its checkpoint knew, never
    from one the killed run found after that checkpoint. On disk stay only the current best
    and the one the newest checkpoint names.

    Only the main process decides, writes and restores: ranks may differ in a metric's last
    bit, and a barrier that only some of them reach would hang the job.
    """

    def __init__(self, root: Path, metric: str):
        self.root, self.metric = root, metric
        self.best: dict | None = None  # {step, metric, metrics}
        self.checkpointed: int | None = None  # the best step the newest checkpoint names

    def path(self, step: int) -> Path:
        return self.root / f"step-{step:07d}.safetensors"

    def on_evaluate(self, state) -> None:
        acc = state.accelerator
        old = self.best["metrics"][self.metric] if self.best else None
        if not acc.is_main_process or not is_better(self.metric, state.last_eval[self.metric], old):
            return
        with atomic.atomic_path(self.path(state.step)) as tmp:
            save_model(acc.unwrap_model(state.model), str(tmp))
        self.best = {"step": state.step, "metric": self.metric, "metrics": state.last_eval}
        named = {self.path(s) for s in (self.best["step"], self.checkpointed) if s is not None}
        for stale in set(self.root.glob("step-*.safetensors")) - named:
            stale.unlink(missing_ok=True)

    def restore(self, model) -> dict | None:
        """Load the best weights into `model`; return {step, metric, metrics}, or None if none."""
        if self.best is None:
            return None
        load_model(model, str(self.path(self.best["step"])))
        return self.best

    def state_dict(self) -> dict:
        # Called while a checkpoint is written: from now on that checkpoint names this best.
        self.checkpointed = self.best["step"] if self.best else None
        return {"best": self.best}

    def load_state_dict(self, d: dict) -> None:
        self.best = d["best"]
        self.checkpointed = self.best["step"] if self.best else None


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
