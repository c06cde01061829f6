"""Optimizers by name, over parameter groups that keep weight decay off biases and norms."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from pretune.recipe import OptimizerConfig
from pretune.registry import Registry

optimizers: Registry[Callable[[list[dict], OptimizerConfig], torch.optim.Optimizer]] = Registry(
    "optimizer"
)


def decays(name: str, param: torch.Tensor) -> bool:
    """Weight decay pulls weights toward 0; for biases and norm gains that only hurts."""
    lowered = name.lower()
    return param.ndim >= 2 and "norm" not in lowered and not lowered.endswith("bias")


def param_groups(
    named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float
) -> list[dict]:
    """Split trainable parameters into a decayed and a non-decayed group (empty ones dropped)."""
    with_decay, without = [], []
    for name, param in named:
        if param.requires_grad:
            (with_decay if decays(name, param) else without).append(param)
    groups = [
        {"params": with_decay, "lr": lr, "weight_decay": weight_decay},
        {"params": without, "lr": lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def create_optimizer(groups: list[dict], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return optimizers.get(cfg.name)(groups, cfg)


@optimizers.register("sgd")
def _sgd(groups, cfg):
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


@optimizers.register("adam")
def _adam(groups, cfg):
    return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, foreach=True)


@optimizers.register("adamw")
def _adamw(groups, cfg):
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, foreach=True)


@optimizers.register("rmsprop")
def _rmsprop(groups, cfg):
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps)


@optimizers.register("adagrad")
def _adagrad(groups, cfg):
    return torch.optim.Adagrad(groups, lr=cfg.lr, eps=cfg.eps)
