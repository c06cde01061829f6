"""Convergence and generalization as figures: how fast a fit got near its final validation
metric, how far the training split's metric ran ahead of validation, and when validation peaked.

The guides compare optimizers by convergence speed, generalization and final performance; the
curves show all three, these figures let `compare` rank runs on them. The training metric comes
from a fixed sample of the training rows, scored like validation at each evaluation (eval mode,
no augmentation): the running train loss mixes weights of many steps and dropout, so it is no
measure of the gap.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pretune.data.encode import EncodedSplit
from pretune.data.ragged import RaggedRows
from pretune.evaluate import LOWER_IS_BETTER, TorchRunner, evaluate
from pretune.train.callbacks import Callback

SPLIT = "train_sample"  # the history records of the fixed training sample
SHARE = 0.95  # "reached": 95% of the final value (the issue's and the guides' convention)
DEFAULT_SAMPLES = 512  # train.train_sample null: as many rows as validation, at most this


def take_rows(split: EncodedSplit, indices: np.ndarray) -> EncodedSplit:
    """The rows `indices` of an encoded split, every per-row field taken alike."""
    idx = [int(i) for i in indices]

    def pick(values):
        if isinstance(values, RaggedRows):
            return RaggedRows.from_lists([values[i] for i in idx], values.flat.dtype)
        if isinstance(values, (np.ndarray, torch.Tensor)):
            return values[idx]
        return [values[i] for i in idx]

    return dataclasses.replace(
        split, features={k: pick(v) for k, v in split.features.items()},
        labels=None if split.labels is None else pick(split.labels), lengths=split.lengths[idx],
        meta={k: pick(v) for k, v in split.meta.items()})


def training_sample(train: EncodedSplit, size: int | None, validation_rows: int, seed: int) -> EncodedSplit | None:
    """A fixed random sample of the training rows (drawn once from `seed`); None when off."""
    n = min(len(train), *((validation_rows, DEFAULT_SAMPLES) if size is None else (size,)))
    if n <= 0:
        return None
    rows = np.sort(np.random.default_rng(seed).choice(len(train), size=n, replace=False))
    return take_rows(train, rows)


class TrainSampleCallback(Callback):
    """At each evaluation, scores the fixed training sample as validation is scored and logs it
    (split `train_sample`; no timing in it, so equal seeds give equal records). It must come before any callback
    that may stop training in on_evaluate, or the last evaluation would miss its training side."""

    def __init__(self, sample: EncodedSplit, task, batch_size: int, pad_id: int, loss_fn):
        self.sample, self.task, self.batch_size = sample, task, batch_size
        self.pad_id, self.loss_fn = pad_id, loss_fn

    def on_evaluate(self, state) -> None:
        acc = state.accelerator
        runner = TorchRunner(acc.unwrap_model(state.model), acc.device)
        metrics = evaluate(runner, self.sample, self.task, self.batch_size, self.pad_id, self.loss_fn, shard=acc)
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        state.history.append({"split": SPLIT, "step": state.step, "epoch": round(state.step / state.steps_per_epoch, 4),
                              **scalars})


def _lower(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def _by_step(rows: list[dict], metric: str) -> list[dict]:
    return list({r["step"]: r for r in rows if isinstance(r.get(metric), (int, float))}.values())


def convergence_figures(history: list[dict], metric: str, final: float | None) -> dict | None:
    """From a fit's history and its final validation `metric`: the first evaluation that
    reached 95% of the final value (higher-is-better: value >= 0.95 x final; lower-is-better:
    value <= final / 0.95), in steps and training seconds; the best evaluation's step; and the
    train-validation gap at the last evaluation, signed so that positive means the training
    sample scores better than validation (overfitting). None without validation records."""
    val = _by_step([r for r in history if r["split"] == "validation"], metric)
    if not val:
        return None
    lower = _lower(metric)
    final = val[-1][metric] if final is None else final
    target = final / SHARE if lower else final * SHARE
    reached = next((r for r in val if (r[metric] <= target if lower else r[metric] >= target)), None)
    best = (min if lower else max)(val, key=lambda r: r[metric])
    out = {"metric": metric, "final": final, "target": target,
           "steps_to_95": reached["step"] if reached else None,
           "seconds_to_95": _seconds_at(history, reached["step"]) if reached else None,
           "best_step": best["step"], "best_value": best[metric]}
    train = {r["step"]: r for r in _by_step([r for r in history if r["split"] == SPLIT], metric)}
    last = val[-1]
    if last["step"] in train:
        train_value = train[last["step"]][metric]
        out |= {"train_metric": train_value, "validation_metric": last[metric],
                "train_validation_gap": (last[metric] - train_value) if lower else (train_value - last[metric])}
    return out


def _seconds_at(history: list[dict], step: int) -> float | None:
    """Training seconds at `step`, from the train-loss records (every log_every_steps and each
    epoch's end), linearly between the two around it: evaluation records carry no timing."""
    logged = {r["step"]: r["train_seconds"] for r in history
              if r["split"] == "train" and isinstance(r.get("train_seconds"), (int, float))}
    if not logged:
        return None
    steps = sorted(logged)
    return float(np.interp(step, [0, *steps], [0.0, *(logged[s] for s in steps)]))


# compare's three criteria: (label, key in metrics.json's convergence, lower is better)
RANKED = (("convergence: seconds to 95% of final", "seconds_to_95", True),
          ("generalization: train-validation gap", "train_validation_gap", True),
          ("final validation", "final", None))


def rank(values: list[float | None], lower: bool) -> list[int | None]:
    """1 for the best; ties share a rank; a missing value has none."""
    known = sorted({v for v in values if v is not None}, reverse=not lower)
    return [None if v is None else 1 + sum(1 for k in known if (k < v if lower else k > v)) for v in values]


def rankings(convergences: list[dict | None]) -> dict[str, list[int | None]]:
    """Each run's rank on convergence speed, generalization and final performance."""
    out = {}
    for label, key, lower in RANKED:
        values = [(c or {}).get(key) for c in convergences]
        if key == "train_validation_gap":
            values = [None if v is None else abs(v) for v in values]
        metric = next((c["metric"] for c in convergences if c), "")
        if lower is None:
            lower = _lower(metric)
            label = f"{label} {metric}"
        out[label] = rank(values, lower)
    return out
