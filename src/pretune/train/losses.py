"""Losses by name: cross-entropy (smoothing, class weights), focal, and MSE for regression."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pretune.errors import PretuneError
from pretune.recipe import LossConfig
from pretune.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
losses: Registry[Callable[[LossConfig, torch.Tensor | None], LossFn]] = Registry("loss")

REGRESSION_LOSSES = {"mse"}


def class_weights(cfg: LossConfig, label_counts: np.ndarray | None) -> torch.Tensor | None:
    """'balanced' weights n / (k * count_c), as scikit-learn computes them; or the given list."""
    if cfg.class_weights is None or label_counts is None:
        return None
    k = len(label_counts)
    if cfg.class_weights == "balanced":
        counts = np.maximum(label_counts, 1)
        return torch.tensor(counts.sum() / (k * counts), dtype=torch.float32)
    if len(cfg.class_weights) != k:
        raise PretuneError(
            f"train.loss.class_weights has {len(cfg.class_weights)} values for {k} classes"
        )
    return torch.tensor(cfg.class_weights, dtype=torch.float32)


def create_loss(cfg: LossConfig, task: str, label_counts: np.ndarray | None = None) -> LossFn:
    if (task == "regression") != (cfg.name in REGRESSION_LOSSES):
        raise PretuneError(f"loss '{cfg.name}' does not fit a {task} task")
    return losses.get(cfg.name)(cfg, class_weights(cfg, label_counts))


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
