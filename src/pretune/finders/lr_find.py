"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates"; fastai's `lr_find`).

A throwaway copy of the recipe's model trains for `steps` optimizer steps while the learning
rate grows exponentially from `min_lr` to `max_lr`; the loss is recorded, smoothed, and the
sweep stops once the smoothed loss exceeds 4x its minimum. The suggestion is the rate where the
smoothed loss falls fastest; the rate of the minimum loss divided by 10 is the alternative.

Know its limits: on pretrained transformers, fine-tuned with warm-up, the range test tends to
suggest rates that are too high (the loss of a pretrained model falls fastest where it is
already starting to forget what it knew). Treat the suggestion as an upper bound; 2e-5..1e-4 is
the usual range for BERT fine-tuning.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pretune import atomic, plots
from pretune.data.encode import collate, train_batches
from pretune.errors import PretuneError
from pretune.evaluate import logits_of
from pretune.recipe import Recipe, as_recipe
from pretune.train.loop import create_accelerator
from pretune.train.setup import FitParts, prepare_fit

BETA = 0.98  # fastai's smoothing: the average remembers roughly the last 50 steps
DIVERGE = 4.0  # the loss has blown up once the smoothed loss is this many times its minimum
EDGE = 0.1  # share of points at each end left out of the steepest-descent search: the start is
# noisy (the bias-corrected average rests on few points) and the end is the blow-up itself
LIMITS = ("warning: on pretrained transformers with warm-up the range test tends to suggest rates "
          "that are too high; treat it as an upper bound (2e-5..1e-4 is the usual range for BERT "
          "fine-tuning)")


@dataclass
class LRFindResult:
    lrs: list[float]  # the recipe's base rate at each step; other groups keep their ratio to it
    losses: list[float]  # mean training loss of each optimizer step
    smoothed: list[float]  # bias-corrected exponential moving average of `losses`
    suggested_lr: float
    alternative_lr: float  # lr of the minimum smoothed loss, divided by 10
    rule: str  # which rule gave `suggested_lr`, in a sentence
    stopped_early: bool  # the smoothed loss exceeded DIVERGE x its minimum before `steps`
    plot: Path | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["plot"] = str(self.plot) if self.plot else None
        # JSON has no NaN or infinity: a diverged last loss is written as null.
        for key in ("losses", "smoothed"):
            d[key] = [v if math.isfinite(v) else None for v in d[key]]
        return d


def find_lr(
    recipe: Recipe | dict | str | Path, steps: int = 200, min_lr: float = 1e-7, max_lr: float = 1.0,
    out: str | Path | None = None,
) -> LRFindResult:
    """Run the range test on the recipe's model and data; write lr_find.png/.json into `out`."""
    recipe = as_recipe(recipe)
    if steps < 10:
        raise PretuneError(f"--steps must be at least 10 for a usable loss curve, got {steps}")
    if not 0 < min_lr < max_lr:
        raise PretuneError(f"the range needs 0 < --min-lr < --max-lr, got {min_lr:g} and {max_lr:g}")
    parts = prepare_fit(recipe)
    lrs, losses, smoothed, stopped = range_test(parts, lr_sweep(min_lr, max_lr, steps))
    suggested, alternative, rule = suggest(lrs, smoothed)
    result = LRFindResult(lrs, losses, smoothed, suggested, alternative, rule, stopped)
    if out is not None:
        out = Path(out)
        result.plot = out / "lr_find.png"
        plots.lr_range_test(result, result.plot, DIVERGE)
        atomic.write_json(out / "lr_find.json", result.to_dict())
    return result


def lr_sweep(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """Exponential growth: a constant ratio between consecutive steps, min_lr first, max_lr last."""
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))


def range_test(parts: FitParts, sweep: np.ndarray) -> tuple[list[float], list[float], list[float], bool]:
    tc = parts.recipe.train
    acc = create_accelerator(tc)
    model, optimizer = acc.prepare(parts.model, parts.optimizer_factory()(parts.model))
    # Scale every group by lr / base so that the ratios the strategy set (llrd, per-group
    # overrides) hold throughout; the reported lr is then the recipe's train.optimizer.lr.
    scales = [group["lr"] / tc.optimizer.lr for group in optimizer.param_groups]
    batches = _endless_batches(parts, acc)
    train = parts.encoded["train"]
    model.train()
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    for i, lr in enumerate(sweep):
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] = float(lr) * scale
        step_loss = 0.0
        for _ in range(tc.gradient_accumulation_steps):
            batch = {k: v.to(acc.device) for k, v in collate(train, next(batches), parts.pad_id).items()}
            labels = batch.pop("labels")
            with acc.autocast():
                loss = parts.loss_fn(logits_of(model(**batch)), labels)
            acc.backward(loss / tc.gradient_accumulation_steps)
            step_loss += loss.item() / tc.gradient_accumulation_steps
        if tc.max_grad_norm is not None:  # clipping moves the divergence point: sweep as the fit trains
            acc.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lrs.append(float(lr))
        losses.append(step_loss)
        average = BETA * average + (1 - BETA) * step_loss
        smoothed.append(average / (1 - BETA ** (i + 1)))
        best = min(best, smoothed[-1])
        if not math.isfinite(step_loss) or smoothed[-1] > DIVERGE * best:
            acc.free_memory()
            return lrs, losses, smoothed, True
    acc.free_memory()  # the model is thrown away: let accelerate drop its references too
    return lrs, losses, smoothed, False


def _endless_batches(parts: FitParts, acc):
    """The fit's batches in the fit's order; when a short dataset runs out, the next epoch's."""
    recipe = parts.recipe
    lengths = parts.encoded["train"].lengths
    for epoch in itertools.count():
        batches = train_batches(lengths, recipe.train.batch_size, recipe.seed, epoch,
                                recipe.data.group_by_length, acc.process_index, acc.num_processes)
        if not batches:
            raise PretuneError("the training split has no full batch for this number of processes")
        yield from batches


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, float, str]:
    """(suggested lr, min-loss lr / 10, the rule used): steepest descent when there is one."""
    lr, loss = np.asarray(lrs), np.asarray(smoothed)
    finite = np.isfinite(loss)
    n = len(loss) if finite.all() else int(np.argmin(finite))  # up to the first non-finite loss
    lr, loss = lr[:n], loss[:n]
    if n == 0:
        raise PretuneError("the loss was not finite from the first step; lower --min-lr")
    lowest = int(np.argmin(loss))
    alternative = float(lr[lowest] / 10)
    alt_text = f"the alternative is the lr of the minimum loss / 10 = {alternative:.2e}"
    skip = max(1, round(EDGE * n))
    # Past its minimum the loss is diverging, and its wiggles there can be steep too: look for
    # the descent that leads to the minimum.
    end = min(n - skip, lowest + 1)
    if end - skip >= 3:
        # d(loss)/d(log10 lr): the x axis of the plot, so "steepest" is what the eye sees there.
        slope = np.gradient(loss, np.log10(lr))[skip:end]
        i = int(np.argmin(slope))
        if slope[i] < 0:
            return float(lr[skip + i]), alternative, (
                f"steepest descent of the smoothed loss before its minimum ({slope[i]:.3g} per decade "
                f"of lr; first and last {skip} of {n} points ignored); {alt_text}")
    # No falling stretch to find: fall back on the minimum, kept inside the swept range.
    clipped = max(alternative, float(lr[0]))
    return clipped, alternative, (
        f"the smoothed loss has no falling stretch over {n} points, so this is the lr of the minimum "
        f"loss / 10{' (raised to min_lr)' if clipped > alternative else ''}; widen the range or add steps")
