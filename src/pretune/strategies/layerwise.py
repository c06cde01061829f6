"""Strategies that treat layers differently: freeze, llrd, gradual, bitfit."""

from __future__ import annotations

from torch import nn

from pretune.errors import PretuneError
from pretune.models.layers import feature_module
from pretune.strategies.base import ParamSetting, Strategy
from pretune.strategies.feature_cache import FeatureCacheCallback


class FreezeStrategy(Strategy):
    """Feature extraction: the backbone is frozen; the head (and the top k layers) train."""

    def plan(self, model: nn.Module) -> dict[str, ParamSetting]:
        layers = self.layers(model)
        k = self.cfg.train_top_layers
        trainable = set(layers.head).union(*layers.layers[len(layers.layers) - k:]) if k else set(layers.head)
        return {n: self.setting(n, p, n in trainable) for n, p in model.named_parameters()}

    def callbacks(self, model: nn.Module) -> list:
        # The cache needs the whole encoder frozen (train_top_layers 0), no per-group override
        # that unfreezes part of it, and a known encoder module to serve features in place of.
        if self.cfg.train_top_layers or not self.cfg.cache_features or self.cfg.groups:
            return []
        try:
            encoder = feature_module(model)
        except PretuneError:
            return []
        return [FeatureCacheCallback(encoder)]


class LLRDStrategy(Strategy):
    """Layer-wise learning-rate decay: the head at lr, the top layer at lr * decay, each layer
    below one more factor of decay, the embeddings lowest (lr * decay^(layers + 1))."""

    def plan(self, model: nn.Module) -> dict[str, ParamSetting]:
        depth = self.layers(model).depth_from_top()
        return {n: self.setting(n, p, True, self.cfg.decay ** depth[n]) for n, p in model.named_parameters()}


class BitFitStrategy(Strategy):
    """BitFit (Ben Zaken et al. 2021): only bias terms and the head train."""

    def plan(self, model: nn.Module) -> dict[str, ParamSetting]:
        head = set(self.layers(model).head)
        return {n: self.setting(n, p, n in head or n.endswith("bias")) for n, p in model.named_parameters()}


class GradualStrategy(Strategy):
    """Gradual unfreezing (ULMFiT): the head first, then one more layer group from the top every
    N epochs (or steps), the embeddings last. Every parameter is in the optimizer from the start;
    a frozen one has no gradient, so the optimizer leaves it (and its weight decay) alone."""

    def stages(self, model: nn.Module) -> list[list[str]]:
        """Groups in unfreezing order: head, top layer, ..., bottom layer, embeddings."""
        m = self.layers(model)
        return [m.head, *reversed(m.layers), m.embeddings]

    def callbacks(self, model: nn.Module) -> list:
        return [GradualUnfreezeCallback(self.stages(model), self.cfg.unfreeze_every_epochs,
                                        self.cfg.unfreeze_every_steps)]


class GradualUnfreezeCallback:
    """The number of unfrozen groups is a pure function of (epoch, step): a resume lands on it."""

    def __init__(self, stages: list[list[str]], every_epochs: int | None, every_steps: int | None):
        self.stages, self.every_epochs, self.every_steps = stages, every_epochs, every_steps
        self.unfrozen = 0

    def unfrozen_groups(self, epoch: int, step: int) -> int:
        done = step // self.every_steps if self.every_steps else epoch // self.every_epochs
        return min(len(self.stages), 1 + done)

    def _apply(self, state) -> None:
        count = self.unfrozen_groups(state.epoch, state.step)
        if count == self.unfrozen:
            return
        params = dict(state.accelerator.unwrap_model(state.model).named_parameters())
        for i, names in enumerate(self.stages):
            for name in names:
                params[name].requires_grad_(i < count)
        self.unfrozen = count

    on_fit_start = on_epoch_start = on_batch_end = _apply
