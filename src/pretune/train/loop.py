"""The train loop, through accelerate: device, autocast, DDP, gradient accumulation, clipping.

The loop knows nothing of logging files, progress bars, early stopping or checkpoints: those
are callbacks (train/callbacks.py). It keeps its counters in `TrainState`, which callbacks read.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from pretune.data.encode import EncodedSplit, collate, train_batches
from pretune.errors import PretuneError
from pretune.evaluate import TorchRunner, evaluate, logits_of
from pretune.recipe import TrainConfig
from pretune.train.callbacks import CancelTraining, StopTraining, call
from pretune.train.losses import LossFn
from pretune.train.precision import resolve_precision
from pretune.train.speed import length_multiple, pad_batch, resolve_compile


class NonFiniteLossError(PretuneError):
    """The training loss became NaN or infinite: the fit ends failed, never completed."""


@dataclass
class TrainState:
    """Counters and latest figures of a fit; what callbacks read and checkpoints save."""

    total_steps: int
    steps_per_epoch: int
    epochs: int
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch in progress
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    samples_seen: int = 0
    train_seconds: float = 0.0
    # Running sums since the last train-loss log. loss_sum is a float64 tensor on the device
    # between logs: adding each step's loss there costs no host synchronisation (a loss.item()
    # every step waits for the device); it is read once per log.
    loss_sum: float | torch.Tensor = 0.0
    loss_count: int = 0
    last_loss: float | None = None
    lr: float = 0.0
    last_eval: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # metrics.jsonl records
    stop_reason: str | None = None
    status: str = "running"  # then completed, cancelled (by CancelTraining) or failed
    extras: dict = field(default_factory=dict)  # figures callbacks report into metrics.json's train
    # Live objects for callbacks (never saved).
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    accelerator: Any = None
    # The batch in flight, for on_batch_start / on_outputs (never saved): the rows of the
    # training split it holds, its tensors on the device (labels included), the model's
    # logits and the task loss, which an on_outputs callback may replace (distillation).
    batch_indices: Any = None
    batch: Any = None
    logits: Any = None
    loss: Any = None

    SAVED = ("step", "epoch", "batch_in_epoch", "samples_seen", "train_seconds", "loss_sum",
             "loss_count", "last_loss", "lr", "last_eval", "history")

    def state_dict(self) -> dict:
        # float() of the float64 running sum is exact, so a resumed run adds on from the very
        # value the uninterrupted one holds.
        saved = {k: getattr(self, k) for k in self.SAVED}
        saved["loss_sum"] = float(saved["loss_sum"])
        return saved

    def load_state_dict(self, d: dict) -> None:
        for k in self.SAVED:
            setattr(self, k, d[k])


def create_accelerator(cfg: TrainConfig) -> Accelerator:
    probe = Accelerator(cpu=not torch.cuda.is_available())
    precision = resolve_precision(cfg.mixed_precision, probe.device)
    if precision == "no":
        return probe
    # accelerate keeps its state in a singleton; reset it to change the precision.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())


class TrainLoop:
    """One fit: `run()` trains, evaluates on validation, and calls the callbacks."""

    def __init__(
        self, model, cfg: TrainConfig, train: EncodedSplit, validation: EncodedSplit,
        loss_fn: LossFn, task, optimizer_factory: Callable,
        scheduler_factory: Callable, pad_id: int, seed: int, group_by_length: bool,
        callbacks: list, accelerator: Accelerator, sample_weights: np.ndarray | None = None,
    ):
        self.cfg, self.train, self.validation = cfg, train, validation
        self.loss_fn, self.task, self.pad_id = loss_fn, task, pad_id
        self.seed, self.group_by_length, self.callbacks = seed, group_by_length, callbacks
        self.accelerator, self.sample_weights = accelerator, sample_weights
        world = accelerator.num_processes
        batches = len(train_batches(train.lengths, cfg.batch_size, seed, 0, group_by_length, 0, world,
                                    sample_weights))
        steps_per_epoch = math.ceil(batches / cfg.gradient_accumulation_steps)
        total = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
        self.state = TrainState(total, steps_per_epoch, math.ceil(total / steps_per_epoch))
        # Settled here, where the total steps are known (world size included): `evaluations`
        # becomes an interval, so a search trial need not repeat this step formula.
        self.eval_every = cfg.eval_every_steps or (max(1, math.ceil(total / cfg.evaluations))
                                                   if cfg.evaluations else None)
        optimizer = optimizer_factory(model)
        scheduler = scheduler_factory(optimizer, total, steps_per_epoch)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        # accelerate also wraps the model's own forward in autocast; the training step enters
        # autocast itself, so take that wrapper off: evaluation (`runner`) then runs in fp32.
        accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)
        # The train step alone runs compiled; evaluation keeps the eager model, so what a fit
        # records is computed as `eval` computes it on reload.
        compiled = resolve_compile(cfg.compile)
        self.step_model = torch.compile(self.model) if compiled else self.model
        self.length_multiple = length_multiple(cfg.pad_to_multiple_of, compiled)
        self.scheduler = scheduler
        self.state.model, self.state.optimizer = self.model, self.optimizer
        self.state.scheduler, self.state.accelerator = scheduler, accelerator
        self.state.lr = scheduler.get_last_lr()[0]

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def run(self) -> TrainState:
        """Train to the end, or until a callback stops or cancels; on_fit_end runs in any case
        (a `finally`), so a progress bar closes and the last record is written even when a
        step raises."""
        state = self.state
        try:
            call(self.callbacks, "on_fit_start", state)
            while state.step < state.total_steps:
                self._run_epoch()
            # A run resumed from a checkpoint taken at its last step, killed before the epoch's
            # closing evaluation, has no epoch left to run: evaluate here.
            self._evaluate_unless_done()
            state.status = "completed"
        except CancelTraining as stop:
            state.stop_reason = state.stop_reason or str(stop) or "cancelled by a callback"
            state.status = "cancelled"
        except StopTraining as stop:
            state.stop_reason = state.stop_reason or str(stop) or "stopped by a callback"
            state.status = "completed"
        except BaseException as error:
            state.status, state.stop_reason = "failed", f"{type(error).__name__}: {error}"
            raise
        finally:
            state.batch = state.logits = state.loss = state.batch_indices = None
            call(self.callbacks, "on_fit_end", state)
        return state

    def _run_epoch(self) -> None:
        state, cfg, acc = self.state, self.cfg, self.accelerator
        batches = train_batches(
            self.train.lengths, cfg.batch_size, self.seed, state.epoch, self.group_by_length,
            acc.process_index, acc.num_processes, self.sample_weights,
        )
        if state.batch_in_epoch == 0:
            call(self.callbacks, "on_epoch_start", state)
        self.model.train()
        accum = cfg.gradient_accumulation_steps
        started = time.perf_counter()
        events = {e for e in ("on_batch_start", "on_outputs") if any(hasattr(cb, e) for cb in self.callbacks)}
        collated = training_batches(self.train, batches, state.batch_in_epoch, state.epoch, self.pad_id,
                                     cfg.dataloader_workers)
        for i, batch in zip(range(state.batch_in_epoch, len(batches)), collated, strict=True):
            batch = pad_batch(batch, self.train, self.length_multiple, self.pad_id)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            labels = batch.pop("labels")
            state.batch_indices = torch.as_tensor(batches[i])
            if "on_batch_start" in events:
                state.batch = batch
                call(self.callbacks, "on_batch_start", state)
            closes_step = (i + 1) % accum == 0 or i + 1 == len(batches)
            # Skip the gradient all-reduce on micro-batches that do not end an optimizer step.
            sync = nullcontext() if closes_step else acc.no_sync(self.model)
            with sync, acc.autocast():
                logits = logits_of(self.step_model(**batch))
                loss = self.loss_fn(logits, labels)
                if "on_outputs" in events:
                    state.batch, state.logits, state.loss = {**batch, "labels": labels}, logits, loss
                    call(self.callbacks, "on_outputs", state)
                    loss = state.loss
            # The last step of an epoch may gather fewer micro-batches; scale by their number.
            group = accum if i // accum < len(batches) // accum else len(batches) % accum
            acc.backward(loss / group)
            if not torch.is_tensor(state.loss_sum):
                state.loss_sum = torch.tensor(state.loss_sum, dtype=torch.float64, device=self.device)
            state.loss_sum.add_(loss.detach())
            state.loss_count += 1
            state.samples_seen += len(labels) * acc.num_processes
            state.batch_in_epoch = i + 1
            if not closes_step:
                continue
            if cfg.max_grad_norm is not None:
                acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.lr = self.scheduler.get_last_lr()[0]
            state.train_seconds += time.perf_counter() - started
            if state.step % cfg.log_every_steps == 0 or state.step == state.total_steps:
                self._log_train_loss()
            # Evaluate before on_batch_end, so that a checkpoint taken at this step already
            # holds this evaluation (history, early stopping): a resume never skips one.
            if self.eval_every and state.step % self.eval_every == 0:
                self.evaluate_validation()
            call(self.callbacks, "on_batch_end", state)
            if state.step >= state.total_steps:
                break
            started = time.perf_counter()  # evaluation and callbacks are not training time
        if state.loss_count:
            self._log_train_loss()
        self._evaluate_unless_done()  # eval_every_steps may have just done it
        # On on_epoch_end, `epoch` counts completed epochs: a checkpoint taken there resumes
        # at the start of the next one.
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        call(self.callbacks, "on_epoch_end", state)

    def _log_train_loss(self) -> None:
        s = self.state
        s.last_loss = float(s.loss_sum) / max(1, s.loss_count)
        if not math.isfinite(s.last_loss):
            # Checked where the loss is read anyway (every log_every_steps and at each epoch's
            # end), not per step: the steps in between cost no synchronisation.
            raise NonFiniteLossError(
                f"the training loss became {s.last_loss} by step {s.step} (lr {s.lr:.2e}); the fit is "
                "marked failed: lower train.optimizer.lr, or check the data and the loss")
        s.history.append({
            "split": "train", "step": s.step, "epoch": round(s.step / s.steps_per_epoch, 4),
            "loss": s.last_loss, "lr": s.lr,
            "samples_per_second": s.samples_seen / s.train_seconds if s.train_seconds else None,
            "train_seconds": s.train_seconds,
        })
        s.loss_sum, s.loss_count = 0.0, 0

    def _evaluate_unless_done(self) -> None:
        """Evaluate on validation unless the last evaluation was at this very step.

        Read from the history, which checkpoints keep, so a resumed run agrees."""
        last = next((r for r in reversed(self.state.history) if r["split"] == "validation"), None)
        if last is None or last["step"] != self.state.step:
            self.evaluate_validation()

    def evaluate_validation(self) -> dict:
        metrics = self.evaluate(self.validation)
        s = self.state
        s.last_eval = metrics
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        s.history.append({"split": "validation", "step": s.step,
                          "epoch": round(s.step / s.steps_per_epoch, 4), **scalars})
        call(self.callbacks, "on_evaluate", s)
        return metrics

    def runner(self) -> TorchRunner:
        # fp32, whatever the training precision: `eval`, `predict` and `export` score the saved
        # model in fp32, so the validation and test figures a fit records are what a user gets
        # on reload (bf16 autocast moved the demo's test accuracy from 0.8292 to 0.8276).
        return TorchRunner(self.accelerator.unwrap_model(self.model), self.device)

    def evaluate(self, split: EncodedSplit, shard: bool = True) -> dict:
        """Metrics on `split`; with `shard`, every process must call it (they share the batches)."""
        return evaluate(self.runner(), split, self.task, self.cfg.eval_batch_size, self.pad_id, self.loss_fn,
                        shard=self.accelerator if shard else None)


class _KeyedBatches(torch.utils.data.Dataset):
    """Batch number -> the collated, transformed batch (what a DataLoader worker computes)."""

    def __init__(self, split: EncodedSplit, batches: list, pad_id: int, epoch: int):
        self.split, self.batches, self.pad_id, self.epoch = split, batches, pad_id, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict:
        return collate(self.split, self.batches[i], self.pad_id, key=(self.epoch, i))


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # the training process keeps its threads; the worker takes one core's slack


def training_batches(split: EncodedSplit, batches: list, start: int, epoch: int, pad_id: int,
                     workers: int | None = None):
    """The epoch's collated training batches from batch `start` on. By default augmented images
    are collated and augmented in one DataLoader worker process, two batches ahead of the step
    that uses them; text (padding a batch of ids costs little) stays in this process. Either way
    a batch's augmentation is a function of (seed, epoch, batch number), so both give the same
    batches, and a resumed fit the same as an uninterrupted one."""
    dataset = _KeyedBatches(split, batches, pad_id, epoch)
    if workers is None:
        workers = int(getattr(split.transform, "augments", False) and (os.cpu_count() or 1) >= 2)
    if workers == 0:
        return (dataset[i] for i in range(start, len(batches)))
    # A DataLoader iterator draws its workers' base seed from `generator`, by default the global
    # torch RNG: that extra draw at a resume point (and not in the uninterrupted fit) shifted
    # every later dropout mask. The keyed draws make the base seed irrelevant, so it comes from
    # a private generator and the global RNG is left as the checkpoint restored it.
    return iter(torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=range(start, len(batches)), num_workers=workers, prefetch_factor=2,
        worker_init_fn=_one_thread, generator=torch.Generator().manual_seed(epoch)))


def seed_everything(seed: int) -> None:
    set_seed(seed)
    np.random.seed(seed)
