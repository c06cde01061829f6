"""Losses by name: cross-entropy (smoothing, class weights), focal, BCE for multi-label, and
MSE / Huber for regression. Which ones fit, and the default, is the task's to say."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pretune.errors import PretuneError
from pretune.recipe import LossConfig
from pretune.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
losses: Registry[Callable[[LossConfig, torch.Tensor | None], LossFn]] = Registry("loss")


def create_loss(cfg: LossConfig, task, train_split) -> LossFn:
    """The recipe's loss (or the task's default), checked against the task, weighted from the
    training labels where the recipe asks, and shaped by the task (token tasks mask padding)."""
    name = cfg.name or task.default_loss
    losses.get(name)  # an unknown name lists the known ones
    if name not in task.losses:
        raise PretuneError(f"loss '{name}' does not fit a {task.name} task; use one of {', '.join(task.losses)}")
    weight = task.loss_weight(cfg, train_split)
    return task.shape_loss(losses.get(name)(cfg, weight))


@losses.register("cross_entropy")
def _cross_entropy(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    def loss(logits, labels):
        w = None if weight is None else weight.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=w, label_smoothing=cfg.label_smoothing)

    return loss


@losses.register("focal")
def _focal(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    """Focal loss (Lin et al. 2017): (1 - p_t)^gamma scales down the easy examples."""

    def loss(logits, labels):
        log_p = F.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
        per_example = -((1 - log_p.exp()) ** cfg.focal_gamma) * log_p
        if weight is None:
            return per_example.mean()
        w = weight.to(logits.device)[labels]
        return (w * per_example).sum() / w.sum()

    return loss


@losses.register("mse")
def _mse(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    def loss(logits, labels):
        return F.mse_loss(logits.float().squeeze(-1), labels.float())

    return loss


@losses.register("huber")
def _huber(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    """Squared near the target, linear beyond `huber_delta`: outliers pull less than with MSE."""

    def loss(logits, labels):
        return F.huber_loss(logits.float().squeeze(-1), labels.float(), delta=cfg.huber_delta)

    return loss


@losses.register("bce")
def _bce(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    """One sigmoid per label; `weight` is BCE's pos_weight (negatives / positives per label)."""

    def loss(logits, labels):
        w = None if weight is None else weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=w)

    return loss
