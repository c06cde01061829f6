"""Callbacks: plain objects the loop calls at a fixed list of events.

Events, in order: on_fit_start, then per epoch on_epoch_start; per micro-batch
on_batch_start (`state.batch_indices`: the training rows in it; `state.batch`: its inputs) and on_outputs (after the
forward pass and the task loss, before backward: `state.batch`, `state.logits`, `state.loss`,
which the callback may replace); on_batch_end (after each optimizer step), on_evaluate (after
each validation pass; one due at a step comes before that step's on_batch_end), on_epoch_end;
finally on_fit_end, which runs even when a step raises.
Each receives the loop's `TrainState`. A callback stops training by raising `StopTraining`
(the run completes: test pass, saved model) or cancels it by raising `CancelTraining` (a search
pruner: the run is marked cancelled, nothing more is computed or saved). Raised in on_evaluate
at a step, either also skips that step's on_batch_end (no checkpoint there).
Any object with some of these methods is a callback; subclassing `Callback` is optional.
"""

from __future__ import annotations

from pretune.evaluate import is_better
from pretune.recipe import EarlyStoppingConfig

EVENTS = ("on_fit_start", "on_epoch_start", "on_batch_start", "on_outputs", "on_batch_end", "on_evaluate",
          "on_epoch_end", "on_fit_end")


class StopTraining(Exception):
    """Raised by a callback to end training cleanly after the current step."""


class CancelTraining(StopTraining):
    """Raised by a callback to abandon the run (a pruned search trial): no test pass, no model."""


class Callback:
    # on_batch_start and on_outputs are left out on purpose: the loop skips the bookkeeping of
    # these per-batch events unless some callback defines them.
    def on_fit_start(self, state) -> None: ...
    def on_epoch_start(self, state) -> None: ...
    def on_batch_end(self, state) -> None: ...
    def on_evaluate(self, state) -> None: ...
    def on_epoch_end(self, state) -> None: ...
    def on_fit_end(self, state) -> None: ...


def call(callbacks: list, event: str, state) -> None:
    for cb in callbacks:
        handler = getattr(cb, event, None)
        if handler is not None:
            handler(state)


class EarlyStoppingCallback(Callback):
    """Stop when the watched validation metric has not improved for `patience` evaluations."""

    def __init__(self, cfg: EarlyStoppingConfig):
        self.cfg = cfg
        self.best: float | None = None
        self.bad_evals = 0

    def on_evaluate(self, state) -> None:
        value = state.last_eval.get(self.cfg.metric)
        if value is None:
            raise KeyError(
                f"early stopping metric '{self.cfg.metric}' not in {sorted(state.last_eval)}"
            )
        if is_better(self.cfg.metric, value, self.best, self.cfg.min_delta, self.cfg.mode):
            self.best, self.bad_evals = value, 0
        else:
            self.bad_evals += 1
        if self.bad_evals >= self.cfg.patience:
            state.stop_reason = f"early stopping: no gain in {self.cfg.metric} for {self.cfg.patience} evaluations"
            raise StopTraining(state.stop_reason)

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.bad_evals = d["best"], d["bad_evals"]
