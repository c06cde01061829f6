"""The pipeline's time limit as a wall: one clock for the whole pipeline, and each stage bound to the
point of the clock where it must end, checked at the stage's own natural boundaries:

- search: no trial starts after the stage's end (optuna's timeout), and a running trial's fit
  stops at it (a callback raising StopTraining: the trial completes with what it has);
- fit: stops at it after the current optimizer step (same callback), then its test pass and model;
- compress: a node whose estimated time no longer fits is skipped with its subtree (the tree asks
  `allows(step)` before each node), and the finished ones are chosen among;
- report and release: always run, in the time reserved for them.

A stage that ended because of the clock is recorded as `stopped-at-limit` in pipeline.json. The
seconds spent are kept there too (`time.spent`), so a killed pipeline resumes with what is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from pretune.errors import PretuneError
from pretune.train.callbacks import StopTraining

STOPPED = "stopped-at-limit"
# Where each stage must end, as shares of the limit, when no measured plan says otherwise (a recipe
# that is already planned, or a plan written by an older pretune): report and release keep RESERVE.
DEFAULT_MARKS = {"search": 0.35, "fit": 0.7, "compress": 1.0}
RESERVE_SHARE, MIN_RESERVE = 0.05, 20.0


def parse_limit(value: str | float | None) -> float | None:
    """Seconds of a time limit written as 90s, 15m, 2h, or a number of seconds."""
    from pretune.search.plan import parse_duration

    try:
        return parse_duration(value)
    except PretuneError:
        raise PretuneError(f"time limit '{value}' is not a duration like 90s, 15m, 2h") from None


def reserve_of(limit: float) -> float:
    """Seconds kept for the report and the release (and the stage that overran a little)."""
    return min(max(MIN_RESERVE, RESERVE_SHARE * limit), 0.25 * limit)


@dataclass
class Clock:
    """Seconds spent by earlier attempts plus this process's; `marks`: for each stage, the spent
    seconds at which it must be done (a stage that ends early leaves its time to the next)."""

    limit: float
    spent_before: float = 0.0
    marks: dict = field(default_factory=dict)
    estimates: dict = field(default_factory=dict)  # compression step -> seconds, from the plan
    started: float = field(default_factory=time.time)
    fired: set = field(default_factory=set)  # stages the clock ended
    on_tick: Callable[[], None] | None = None

    @property
    def spent(self) -> float:
        return self.spent_before + time.time() - self.started

    @property
    def left(self) -> float:
        return self.limit - self.spent

    def deadline(self, stage: str) -> float:
        """The time.time() at which `stage` must end."""
        reserve = reserve_of(self.limit)
        mark = self.marks.get(stage, DEFAULT_MARKS.get(stage, 1.0) * (self.limit - reserve))
        return time.time() + min(mark, self.limit - reserve) - self.spent

    def callback(self, stage: str) -> DeadlineCallback:
        return DeadlineCallback(self.deadline(stage), lambda: self.fired.add(stage), self.tick)

    def allows(self, stage: str, step: str) -> bool:
        """Whether a compression step's estimated seconds still fit before the stage's end, with
        its own row of the table and the original's (measured after the nodes)."""
        needed = self.estimates.get(step, 0.0) + 2 * self.estimates.get("measure", 0.0)
        fits = time.time() + needed <= self.deadline(stage)
        if not fits:
            self.fired.add(stage)
        return fits

    def bound(self, verbs, stage: str):
        """The verbs as `stage` calls them, each bound to the stage's end (see the module docstring)."""
        from pretune.pipeline.stages import Verbs

        if stage == "search":
            seconds = max(self.deadline(stage) - time.time(), 1.0)
            return Verbs(verbs.fit, partial(verbs.search, timeout=seconds, callbacks=[self.callback(stage)]),
                         verbs.compress, verbs.report)
        if stage == "fit":
            return Verbs(partial(verbs.fit, callbacks=[self.callback(stage)]), verbs.search, verbs.compress,
                         verbs.report)
        if stage == "compress":
            return Verbs(verbs.fit, verbs.search, partial(verbs.compress, allows=partial(self.allows, stage)),
                         verbs.report)
        return verbs

    def stopped(self, stage: str, ctx=None) -> bool:
        """Whether the clock ended `stage`: a fit stopped, a node skipped, or a search whose time
        ran out (optuna then starts no trial)."""
        if stage == "compress" and ctx is not None and (ctx.compression or {}).get("skipped"):
            return True
        return stage in self.fired or (stage == "search" and time.time() >= self.deadline(stage))

    def tick(self) -> None:
        """Called at each evaluation inside a stage: `on_tick` (the pipeline keeps the seconds spent
        in pipeline.json, so that a killed pipeline resumes with what is left)."""
        if self.on_tick is not None:
            self.on_tick()

    def state(self) -> dict:
        return {"limit": self.limit, "spent": round(self.spent, 2), "left": round(max(self.left, 0.0), 2)}


SAVE_EVERY = 10.0  # seconds: while a fit runs, the time spent is saved at least this often


class DeadlineCallback:
    """Stops a fit (StopTraining: it completes, with its test pass and model) after the first
    optimizer step or evaluation past `deadline` (a time.time() value). `on_evaluation` (the
    clock's tick: pipeline.json keeps the time spent) runs at each evaluation and, between them,
    after a step at least SAVE_EVERY seconds after the last: a kill loses at most that much."""

    def __init__(self, deadline: float, on_fire=None, on_evaluation=None):
        self.deadline = deadline
        self.on_fire = on_fire
        self.on_evaluation = on_evaluation
        self._ticked = time.time()

    def _tick(self) -> None:
        if self.on_evaluation is not None:
            self.on_evaluation()
        self._ticked = time.time()

    def _check(self, state) -> None:
        if time.time() >= self.deadline:
            if self.on_fire is not None:
                self.on_fire()
            state.stop_reason = "time limit: stopped at the pipeline stage's share of the time"
            raise StopTraining(state.stop_reason)

    def on_batch_end(self, state) -> None:
        if time.time() - self._ticked >= SAVE_EVERY:
            self._tick()
        self._check(state)

    def on_evaluate(self, state) -> None:
        self._tick()
        self._check(state)
