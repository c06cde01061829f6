"""One trial = one `fit` of the base recipe with the trial's sample applied, in its own Run
directory (`trial-0007/`). The trial reports its metric at each validation pass through a
callback; a pruner's verdict or a non-finite loss cancels the fit at that evaluation.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from pretune.recipe import Recipe
from pretune.search.space import Space, trial_base
from pretune.train.callbacks import CancelTraining
from pretune.train.fit import fit

TRAIN_SECONDS = "train_seconds"
MODEL_PARAMETERS = "model_parameters"  # each trial's model size: what a model choice in the space costs


def trial_dir(study_dir: Path, number: int) -> Path:
    return study_dir / f"trial-{number:04d}"


class TrialFailed(Exception):
    """A trial that cannot give a value (non-finite loss or metric): failed, the study goes on."""


class SurplusTrial(TrialFailed):
    """Two workers started the last trial at once: the later one is not run."""


class ReportCallback:
    """Reports the watched metric to optuna at each evaluation and cancels the fit when pruned.

    The step reported is the evaluation's place in the trial's budget (1 .. evaluations), so
    trials of different lengths compare at equal fractions of their training."""

    def __init__(self, trial: optuna.Trial, metric: str | None, evaluations: int):
        self.trial, self.metric, self.evaluations = trial, metric, evaluations
        self.failure: str | None = None
        self.pruned_at: int | None = None
        self.reported: set[int] = set()

    def on_evaluate(self, state) -> None:
        loss = state.last_loss
        if loss is not None and not math.isfinite(loss):
            self.failure = f"train loss became {loss} by step {state.step}"
            raise CancelTraining(self.failure)
        if self.metric is None:
            return
        value = metric_of(state.last_eval, self.metric)
        if not math.isfinite(value):
            self.failure = f"validation {self.metric} became {value} at step {state.step}"
            raise CancelTraining(self.failure)
        slot = state.step * self.evaluations // max(1, state.total_steps)
        if slot < 1 or slot in self.reported:  # an epoch-end pass in the same slot as the last one
            return
        self.reported.add(slot)
        self.trial.report(value, slot)
        if self.trial.should_prune():
            self.pruned_at = slot
            raise CancelTraining(f"pruned at evaluation {slot} of {self.evaluations}")


def metric_of(metrics: dict, name: str) -> float:
    if name not in metrics:
        raise KeyError(f"metric '{name}' not reported; the validation metrics are "
                       f"{', '.join(k for k, v in metrics.items() if isinstance(v, (int, float)))}")
    return float(metrics[name])


# The objective marks its trial with the trial's own number: optuna's retry of a dead worker's
# trial copies that trial's user attributes, so a mark without the number would say that the
# retry started when it never did (a retry popped by a worker killed before it ran then hung the
# study: seen in CI, a resumed pipeline waiting in its search stage).
STARTED = "started_as"


def objective_began(trial: FrozenTrial) -> bool:
    """Whether this trial's objective began (its own mark, not one inherited from a retried trial)."""
    return trial.user_attrs.get(STARTED) == trial.number


class Objective:
    """Callable for `study.optimize`: sample, fit, return the metric value(s)."""

    def __init__(self, base: Recipe, space: Space, metrics: list[str], study_dir: Path, keep: str,
                 evaluations: int, over_budget: Callable[[optuna.Trial], bool], callbacks: list, loss=None):
        self.base = trial_base(base)
        self.space, self.metrics, self.study_dir = space, metrics, study_dir
        self.keep, self.evaluations, self.over_budget = keep, evaluations, over_budget
        self.callbacks, self.loss = callbacks, loss

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        # A beat before the mark, so a marked trial always has one: optuna's heartbeat thread
        # beats first only if it wins the race with this thread, and a trial killed between the
        # mark and that beat was seen by neither optuna's stale check (no beat) nor
        # workers._fail_unstarted (marked); the others waited on it forever.
        storage = trial.study._storage  # optuna offers no public call: its storage's own, as its thread does
        if getattr(storage, "get_heartbeat_interval", lambda: None)():
            storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr(STARTED, trial.number)
        if self.over_budget(trial):
            return self._fail(trial, SurplusTrial("not run: the study already has all its trials"))
        try:
            params = self.space.sample(trial)
            # The loop turns `evaluations` into an interval from the steps it counts itself.
            overrides = {**params, "train.evaluations": self.evaluations, "train.eval_every_steps": None}
            trial.set_user_attr("overrides", overrides)
            recipe = self.base.updated(overrides)
            out = trial_dir(self.study_dir, trial.number)
            shutil.rmtree(out, ignore_errors=True)  # a half-written try of this very trial
            single = len(self.metrics) == 1 and self.metrics[0] != TRAIN_SECONDS
            reporter = ReportCallback(trial, self.metrics[0] if single else None, self.evaluations)
            run = fit(recipe, out, callbacks=[reporter, *self.callbacks], quiet=True, lean=self.keep != "all",
                      save_model=self.keep != "none", loss=self.loss)
            metrics = run.metrics
            if self.keep == "all" and metrics["status"] == "completed":
                from pretune.plots import plot_run

                plot_run(run)
        except Exception as e:  # noqa: BLE001 - any error fails this trial only, with its reason
            return self._fail(trial, e)
        train = metrics["train"]
        trial.set_user_attr(TRAIN_SECONDS, train[TRAIN_SECONDS])
        trial.set_user_attr("steps", train["steps"])
        trial.set_user_attr(MODEL_PARAMETERS, metrics.get("model", {}).get("parameters"))
        if reporter.failure:
            return self._fail(trial, TrialFailed(reporter.failure))
        if metrics.get("status") == "cancelled":
            trial.set_user_attr("pruned_at", reporter.pruned_at)
            raise optuna.TrialPruned(train.get("stop_reason") or "pruned")
        try:
            values = [train[TRAIN_SECONDS] if m == TRAIN_SECONDS else metric_of(metrics["validation"], m)
                      for m in self.metrics]
        except KeyError as e:
            return self._fail(trial, e)
        if not all(math.isfinite(v) for v in values):
            return self._fail(trial, TrialFailed(f"final {', '.join(self.metrics)} = {values}"))
        return values[0] if len(values) == 1 else values

    def _fail(self, trial: optuna.Trial, error: Exception):
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        trial.set_user_attr("fail_reason", f"{type(error).__name__}: {reason}"[:500])
        raise error
