"""Optimizers by name, over parameter groups that keep weight decay off biases and norms."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from pretune.recipe import OptimizerConfig
from pretune.registry import Registry
from pretune.strategies.base import decays

optimizers: Registry[Callable[[list[dict], OptimizerConfig], torch.optim.Optimizer]] = Registry(
    "optimizer"
)


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


def _fused_or_foreach(cls, groups, **kwargs):
    """The fused kernel (one pass over each tensor, on CPU and CUDA) where the parameters allow
    it, else foreach; transformers' Trainer defaults to it too. benchmarks/fit_throughput.py's
    pretune-same vs plain rows (fused vs foreach, otherwise equal) show what it buys."""
    try:
        return cls(groups, fused=True, **kwargs)
    except (RuntimeError, ValueError):  # a device or dtype the fused kernel does not take
        return cls(groups, foreach=True, **kwargs)


@optimizers.register("adam")
def _adam(groups, cfg):
    return _fused_or_foreach(torch.optim.Adam, groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


@optimizers.register("adamw")
def _adamw(groups, cfg):
    return _fused_or_foreach(torch.optim.AdamW, groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


@optimizers.register("rmsprop")
def _rmsprop(groups, cfg):
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps)


@optimizers.register("adagrad")
def _adagrad(groups, cfg):
    return torch.optim.Adagrad(groups, lr=cfg.lr, eps=cfg.eps)
