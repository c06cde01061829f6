"""How a pipeline with a time limit spends its time, decided before any work from what this machine
measures on this data.

Measured: a probe fit of a few optimizer steps and one validation pass on rows drawn from the
training split (so at the data's real lengths), with the recipe's model, batch size and
max_length: the seconds to set a fit up, per optimizer step and per inference batch.

Decided, from those figures and the split sizes (each a line on the terminal and a key of the saved
recipe; where each stage must end as `pipeline.shares`):
- search: how many trials fit in SEARCH_SHARE of the time; fewer than MIN_TRIALS: no search;
- fit: the recipe's epochs when they fit what is left after the search and the cheapest
  compression chain, else fewer (fractional) epochs; when even half an epoch does not fit beside
  the cheapest chain, no compression;
- compress: the recipe's chains, in their order, while their estimated time fits what is left;
- spare time: with `pipeline.max_epochs` (the presets set it) and no search, what the kept chains
  leave goes to more whole epochs of the fit, up to that many, evaluations scaled alike; the fit
  keeps its best validation weights (`train.keep_best`), so a longer fit cannot end worse on
  validation than a shorter one would have;
- report and release: a reserve (clock.reserve_of).
Estimates are deliberately plain (steps x seconds per step); the clock, not the estimate, is the
wall: a stage that runs long is stopped at its mark.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pretune.errors import PretuneError
from pretune.pipeline.clock import reserve_of
from pretune.recipe import Recipe

PROBE_STEPS = 4
SEARCH_SHARE = 0.4
MIN_TRIALS = 3
MIN_FIT_STEPS = 10
MIN_COMPRESSED_EPOCHS = 0.5  # the least training a model gets before the plan also compresses it
# A compression step's work beyond the training it does (export, quantization with and without
# fusions, vocabulary cut), and a variant's measurement in its own process (start, load, timing
# rounds), in units of the probe fit's set-up time: both load a model and run it, so they slow down
# with the machine as it does. The first try, in seconds (30 s for int8, 15 s per measurement),
# ran past a 3-minute limit by 41 s on a machine loaded 8-fold: int8 took 119 s there.
STEP_UNITS = {"quantize": 4.0, "export": 2.0, "trim-vocab": 1.0, "distill": 1.0, "prune": 1.0}
MEASURE_UNITS = 2.0
MIN_UNIT = 5.0
# A distilled student of half the teacher's depth costs its own step plus the teacher's forward pass:
# about 0.75 of a teacher step.
STUDENT_STEP = 0.75


@dataclass
class Measured:
    setup_seconds: float
    step_seconds: float
    batch_seconds: float  # one inference batch of eval_batch_size
    rows: dict  # split -> rows


@dataclass
class Decision:
    lines: list[str]
    changes: dict  # dotted recipe key -> value
    marks: dict  # stage -> spent seconds by which it must end
    estimates: dict = field(default_factory=dict)  # compression step -> seconds


def measure(recipe: Recipe, quiet: bool = True) -> Measured:
    """A few optimizer steps and one validation pass of the recipe's model on its own data."""
    from pretune.data.prepare import load_frames
    from pretune.tasks import create_task
    from pretune.train.fit import fit

    task = create_task(recipe.data)
    frames = load_frames(recipe.data, task.stratify)
    rows = {split: len(frame) for split, frame in frames.items()}
    batch, eval_batch = recipe.train.batch_size, recipe.train.eval_batch_size
    probe = recipe.updated({
        "train.max_steps": PROBE_STEPS, "train.epochs": 1, "train.evaluations": None, "train.eval_every_steps": None,
        "train.early_stopping.patience": None, "train.keep_best": None,
        "data.max_train_samples": min(rows["train"], PROBE_STEPS * batch),
        "data.max_eval_samples": min(rows["validation"], 2 * eval_batch), "report": False,
        "tracking": {}, "search": {}})
    timer = _Timer()
    where = Path(tempfile.mkdtemp(prefix="pretune-plan-"))
    try:
        started = time.time()
        fit(probe, where / "probe", callbacks=[timer], lean=True, quiet=quiet)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    step, evaluation = timer.seconds()
    batches = math.ceil(min(rows["validation"], 2 * eval_batch) / eval_batch)
    return Measured(timer.fit_start - started, step, evaluation / batches, rows)


class _Timer:
    def __init__(self):
        self.fit_start: float = 0.0
        self.steps: list[float] = []
        self.evaluated: float | None = None

    def on_fit_start(self, state) -> None:
        self.fit_start = time.time()

    def on_batch_end(self, state) -> None:
        self.steps.append(time.time())

    def on_evaluate(self, state) -> None:
        self.evaluated = self.evaluated or time.time()

    def seconds(self) -> tuple[float, float]:
        """(one optimizer step, the validation pass). An evaluation due at a step runs before that
        step's on_batch_end, so the step ends after it are not intervals of training alone."""
        if self.evaluated is None or not self.steps:
            raise PretuneError("the time plan's probe fit made no step to time: is the training split empty?")
        before = [t for t in self.steps if t <= self.evaluated]
        trained_after = len(before) < len(self.steps)  # the last step trained, then evaluated
        if len(before) >= 2:
            step = (before[-1] - before[0]) / (len(before) - 1)
        else:  # a split of one or two batches: the first step (warm-up included) is all there is
            step = (before[0] if before else self.evaluated) - self.fit_start
        last = before[-1] if before else self.fit_start
        return step, max(self.evaluated - last - (step if trained_after else 0.0), 0.0)


def decide(recipe: Recipe, m: Measured, limit: float, stages: list[str]) -> Decision:
    """How `limit` seconds (what is left of the limit) are spent: see the module docstring."""
    train, batch = recipe.train, recipe.train.batch_size
    epoch = math.ceil(m.rows["train"] / batch) * m.step_seconds
    evaluation = math.ceil(m.rows["validation"] / train.eval_batch_size) * m.batch_seconds
    test = math.ceil(m.rows["test"] / train.eval_batch_size) * m.batch_seconds

    def fit_cost(epochs: float, evaluations: int) -> float:
        return m.setup_seconds + epochs * epoch + (evaluations + 1) * evaluation + test

    reserve = reserve_of(limit)
    avail = limit - reserve
    lines = [f"plan: measured here: {m.step_seconds:.2f} s per training step (batch {batch}), "
             f"{m.batch_seconds:.2f} s per inference batch ({train.eval_batch_size}), {m.setup_seconds:.0f} s to set "
             f"a fit up; train {m.rows['train']:,} rows, validation {m.rows['validation']:,}, test {m.rows['test']:,}"]
    changes: dict = {"pipeline.planned": True}
    unit = max(m.setup_seconds, MIN_UNIT)
    measuring = MEASURE_UNITS * unit + test  # one variant's row: the original's is measured too
    estimates, chains = _chain_costs(recipe, epoch, unit, measuring) if "compress" in stages else ({}, [])
    # With the original's row; without compression, the release measures the fine-tuned model once.
    cheapest = _added(chains[0], [], estimates) + measuring if chains else measuring
    marks, spent = {}, 0.0
    if "search" in stages:
        trial = fit_cost(_trial_epochs(recipe), recipe.search.evaluations)
        trials = min(recipe.search.trials, int(SEARCH_SHARE * avail // trial))
        if trials >= MIN_TRIALS:
            spent = trials * trial
            changes["search.trials"] = trials
            lines.append(f"plan: search: {trials} trials of ~{_t(trial)} each, {_t(spent)} "
                         f"({_share(spent, limit)})")
        else:
            changes["search"] = None  # the section goes: no search stage
            lines.append(f"plan: search: none (a trial takes ~{_t(trial)}: fewer than {MIN_TRIALS} fit in "
                         f"{SEARCH_SHARE:.0%} of {_t(limit)})")
        marks["search"] = spent
    smallest = fit_cost(min(max(MIN_FIT_STEPS * batch / m.rows["train"], MIN_COMPRESSED_EPOCHS), train.epochs), 1)
    if chains and smallest + cheapest > avail - spent:
        # The fit comes first: compressing a model trained on a sliver of its data gains nothing, so
        # without room for both, no compression (the fine-tuned model is released).
        dropped = f"plan: compress: none (its cheapest chain, ~{_t(cheapest)}, does not fit beside the fit)"
        changes["compress"], chains, cheapest = None, [], measuring
    else:
        dropped = None
    fit_budget = avail - spent - cheapest
    epochs, evaluations = train.epochs, _evaluations(train)
    if fit_cost(epochs, evaluations) > fit_budget and evaluations > 1:
        evaluations = 1  # validation passes go first: each costs what many steps do
        changes["train.evaluations"] = 1
    if fit_cost(epochs, evaluations) > fit_budget:
        epochs = round(max((fit_budget - fit_cost(0, evaluations)) / epoch, 0.0), 2)
        if epochs * m.rows["train"] / batch < MIN_FIT_STEPS:
            need = fit_cost(MIN_FIT_STEPS * batch / m.rows["train"], evaluations) + cheapest + reserve
            raise PretuneError(f"a time limit of {_t(limit)} is too short here: {MIN_FIT_STEPS} training steps, a "
                               f"validation and a test pass need ~{_t(need)} "
                               f"(measured); give a longer --time-limit or fewer rows (data.max_train_samples)")
        changes["train.epochs"] = epochs
    fit = fit_cost(epochs, evaluations)
    kept, used = _kept_chains(chains, estimates, measuring, avail - spent - fit)
    more = _spare_epochs(recipe, "search.trials" in changes, epochs, avail - spent - fit - used,
                         epoch + evaluations / epochs * evaluation + _distill_per_epoch(recipe, kept, epoch))
    if more:
        evaluations = math.ceil(evaluations * (epochs + more) / epochs)
        epochs += more
        fit = fit_cost(epochs, evaluations)
        changes.update({"train.epochs": epochs, "train.evaluations": evaluations})
    lines.append(f"plan: fit: {epochs:g} epoch(s) on {m.rows['train']:,} rows "
                 f"({math.ceil(epochs * m.rows['train'] / batch):,} steps), ~{_t(fit)} ({_share(fit, limit)})"
                 + (f"; the recipe's {train.epochs:g} do not fit" if epochs < train.epochs else "")
                 + (f"; {more:g} more than the recipe's, in time the plan leaves (up to pipeline.max_epochs "
                    f"{recipe.pipeline.max_epochs:g}; the best validation weights are kept)" if more else ""))
    spent += fit
    marks["fit"] = spent
    if dropped:
        lines.append(dropped)
    if chains:
        changes["compress.variants"] = kept
        changes["compress.steps"] = None
        left_out = [chain for chain in chains if chain not in kept]
        named = "; ".join(" -> ".join(c) for c in left_out)
        lines.append(f"plan: compress: {'; '.join(' -> '.join(c) for c in kept)}, ~{_t(used)} "
                     f"({_share(used, limit)})" + (f"; left out (do not fit): {named}" if left_out else ""))
        marks["compress"] = avail
    release = f"{_t(reserve)} reserved" + ("" if chains else f", and ~{_t(measuring)} to measure the fine-tuned model")
    lines.append(f"plan: report and release: {release}; the limit is {_t(limit)}")
    return Decision(lines, changes, marks, estimates)


def applied(written: dict, changes: dict) -> dict:
    """The recipe as written with the decision's changes (a section set to None is removed)."""
    raw = {k: v for k, v in written.items() if changes.get(k, ...) is not None}
    updates = {k: v for k, v in changes.items() if v is not None or "." in k}
    return Recipe.from_dict(raw).updated(updates).model_dump(mode="json", exclude_unset=True)


def _chain_costs(recipe: Recipe, epoch: float, unit: float, measuring: float) -> tuple[dict, list]:
    """Seconds per step kind (and `measure`: one row of the table), and the chains of the tree."""
    from pretune.compress.tree import chains_of
    from pretune.tasks import create_task

    cfg = recipe.compress
    step_seconds = {
        "distill": (cfg.distill.epochs or recipe.train.epochs) * epoch * STUDENT_STEP + STEP_UNITS["distill"] * unit,
        "prune": cfg.prune.recovery_epochs * cfg.prune.rounds * epoch + STEP_UNITS["prune"] * unit,
    }
    estimates = {name: round(step_seconds.get(name, STEP_UNITS[name] * unit), 1) for name in STEP_UNITS}
    estimates["measure"] = round(measuring, 1)
    return estimates, [list(chain) for chain in chains_of(cfg, create_task(recipe.data).inputs)]


def _added(chain: list[str], kept: list[list[str]], estimates: dict) -> float:
    """What a chain adds to the kept ones: its nodes not already made as a kept chain's prefix
    (shared prefixes run once, as in the compression tree), each with its row of the table."""
    made = {tuple(c[: i + 1]) for c in kept for i in range(len(c))}
    return sum(estimates.get(step, 0.0) + estimates["measure"]
               for i, step in enumerate(chain) if tuple(chain[: i + 1]) not in made)


def _kept_chains(chains: list[list[str]], estimates: dict, measuring: float,
                 room: float) -> tuple[list[list[str]], float]:
    """The chains, in order, while they fit `room` (the first always), and their seconds with
    `measuring`, the original's row of the table (without chains, the fine-tuned model's one
    measurement)."""
    kept, used = [], measuring
    for chain in chains:
        cost = _added(chain, kept, estimates)
        if used + cost <= room or not kept:
            kept.append(chain)
            used += cost
    return kept, used


def _spare_epochs(recipe: Recipe, searched: bool, epochs: float, spare: float, per_epoch: float) -> int:
    """Whole epochs added to the fit in `spare` seconds, each costing `per_epoch`: none after a
    search (its best trial chose the epochs), without `pipeline.max_epochs`, or without
    `train.keep_best` (a longer fit could then end worse than the recipe's)."""
    cap = recipe.pipeline.max_epochs
    if searched or cap is None or recipe.train.keep_best is None or epochs < recipe.train.epochs:
        return 0
    return max(0, min(int(cap - epochs), int(spare // per_epoch)))


def _distill_per_epoch(recipe: Recipe, kept: list[list[str]], epoch: float) -> float:
    """What one more teacher epoch adds to the kept chains: a distillation whose epochs follow
    the teacher's (`compress.distill.epochs` unset) trains one more epoch too."""
    if recipe.compress.distill.epochs or not any("distill" in c for c in kept):
        return 0.0
    return epoch * STUDENT_STEP


def _trial_epochs(recipe: Recipe) -> float:
    entry = recipe.search.space.get("train.epochs")
    if entry is not None and entry.choice:
        return sum(entry.choice) / len(entry.choice)
    if entry is not None and (entry.int_ or entry.uniform):
        low, high = entry.int_ or entry.uniform
        return (low + high) / 2
    return recipe.train.epochs


def _evaluations(train) -> int:
    return train.evaluations or 1


def _share(seconds: float, limit: float) -> str:
    return f"{seconds / limit:.0%} of the limit"


def _t(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.1f} min"
