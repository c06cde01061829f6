"""Learning-rate schedules: pure functions of the step, returning a multiplier of the peak lr.

Each decays over the steps after warm-up; warm-up (linear from 0) wraps any of them.
Being pure functions of the step, a resumed run lands on exactly the same rate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from torch.optim.lr_scheduler import LambdaLR

from pretune.recipe import ScheduleConfig
from pretune.registry import Registry

# (t, T, cfg) -> multiplier, where t counts steps after warm-up and T is their number.
schedules: Registry[Callable[[int, int, ScheduleConfig], float]] = Registry("schedule")


@schedules.register("constant")
def constant(t: int, T: int, cfg: ScheduleConfig) -> float:
    return 1.0


@schedules.register("step")
def step(t: int, T: int, cfg: ScheduleConfig) -> float:
    return cfg.gamma ** (t // cfg.step_size)


@schedules.register("multistep")
def multistep(t: int, T: int, cfg: ScheduleConfig) -> float:
    return cfg.gamma ** bisect.bisect_right(sorted(cfg.milestones), t)


@schedules.register("exponential")
def exponential(t: int, T: int, cfg: ScheduleConfig) -> float:
    return cfg.gamma ** (t / cfg.step_size)


@schedules.register("cosine")
def cosine(t: int, T: int, cfg: ScheduleConfig) -> float:
    progress = min(t / max(1, T), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@schedules.register("linear")
def linear(t: int, T: int, cfg: ScheduleConfig) -> float:
    return max(0.0, 1 - t / max(1, T))


@schedules.register("polynomial")
def polynomial(t: int, T: int, cfg: ScheduleConfig) -> float:
    """lr_t = lr_0 * (1 - t/T) ** gamma."""
    return max(0.0, 1 - t / max(1, T)) ** cfg.gamma


STLR_RATIO = 32  # ULMFiT: the lowest rate is 1/32 of the peak
ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV = 25.0, 1e4  # torch OneCycleLR defaults


def whole_cycle(fn):
    """Mark a schedule that shapes its own rise: it gets the raw step and all steps, and the
    recipe's warm-up (ratio or steps) sets the length of its rise."""
    fn.whole_cycle = True
    return fn


@schedules.register("slanted_triangular")
@whole_cycle
def slanted_triangular(step: int, T: int, cfg: ScheduleConfig) -> float:
    """ULMFiT (Howard & Ruder 2018): a short linear rise, then a long linear decay to lr/32."""
    rise = max(1, warmup_steps(cfg, T))
    p = step / rise if step < rise else 1 - (step - rise) / max(1, T - rise)
    return (1 + max(0.0, p) * (STLR_RATIO - 1)) / STLR_RATIO


@schedules.register("one_cycle")
@whole_cycle
def one_cycle(step: int, T: int, cfg: ScheduleConfig) -> float:
    """Smith's one-cycle policy, cosine-annealed like torch's OneCycleLR: lr/25 -> lr -> lr/25e4."""
    rise = max(1, warmup_steps(cfg, T))
    low, end = 1 / ONE_CYCLE_DIV, 1 / (ONE_CYCLE_DIV * ONE_CYCLE_FINAL_DIV)
    if step < rise:
        return low + (1 - low) * 0.5 * (1 - math.cos(math.pi * step / rise))
    progress = min(1.0, (step - rise) / max(1, T - rise))
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * progress))


def in_steps(cfg: ScheduleConfig, steps_per_epoch: int) -> ScheduleConfig:
    """The schedule with its epoch settings as optimizer steps: the one conversion, from the steps
    per epoch the loop counts (batches over every process, over gradient accumulation). Like
    step_size and milestones, the epochs count after warm-up; each is at least one step."""
    update: dict = {}
    if cfg.step_size_epochs is not None:
        update["step_size"] = max(1, round(cfg.step_size_epochs * steps_per_epoch))
    if cfg.milestones_epochs is not None:
        update["milestones"] = [max(1, round(m * steps_per_epoch)) for m in cfg.milestones_epochs]
    return cfg.model_copy(update=update) if update else cfg


def warmup_steps(cfg: ScheduleConfig, total_steps: int) -> int:
    if cfg.warmup_steps is not None:
        return min(cfg.warmup_steps, total_steps)
    return int(cfg.warmup_ratio * total_steps)


def lr_multiplier(cfg: ScheduleConfig, total_steps: int) -> Callable[[int], float]:
    decay = schedules.get(cfg.name)
    if getattr(decay, "whole_cycle", False):
        return lambda step: decay(step, total_steps, cfg)
    warm = warmup_steps(cfg, total_steps)

    def multiplier(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return decay(step - warm, total_steps - warm, cfg)

    return multiplier


def create_scheduler(optimizer, cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int | None = None
                     ) -> LambdaLR:
    """`steps_per_epoch`: what step_size_epochs / milestones_epochs convert with (see in_steps)."""
    if steps_per_epoch is None and (cfg.step_size_epochs is not None or cfg.milestones_epochs is not None):
        raise ValueError("a schedule in epochs needs the steps per epoch")
    return LambdaLR(optimizer, lr_multiplier(in_steps(cfg, steps_per_epoch) if steps_per_epoch else cfg,
                                             total_steps))
