"""What every strategy shares: a per-parameter plan (trainable, lr, weight decay) turned into
optimizer groups, with the recipe's per-group overrides applied on top.

A strategy is a small class: `wrap(model)` may replace the model (adapters), `plan(model)`
says how each parameter trains, `callbacks(model)` may change that during training (gradual
unfreezing), and `save(model, directory)` writes the final model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from pretune.errors import PretuneError
from pretune.models.layers import LayerMap, find_layers
from pretune.models.surgery import untie_shared_layers
from pretune.recipe import GroupOverride, ModelConfig, OptimizerConfig, StrategyConfig


def decays(name: str, param) -> bool:
    """Weight decay pulls weights toward 0; for biases and norm gains that only hurts."""
    lowered = name.lower()
    return param.ndim >= 2 and "norm" not in lowered and not lowered.endswith("bias")


@dataclass
class ParamSetting:
    trainable: bool
    lr: float
    weight_decay: float


class Strategy:
    """Base: every parameter trains at the base rate (the `full` strategy)."""

    def __init__(self, cfg: StrategyConfig, optimizer: OptimizerConfig, model_cfg: ModelConfig):
        self.cfg, self.optimizer, self.model_cfg = cfg, optimizer, model_cfg

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def layers(self, model: nn.Module) -> LayerMap:
        return find_layers(model, self.model_cfg.layer_prefixes)

    def plan(self, model: nn.Module) -> dict[str, ParamSetting]:
        return {name: self.setting(name, p, True) for name, p in model.named_parameters()}

    def setting(self, name: str, param, trainable: bool, lr_scale: float = 1.0) -> ParamSetting:
        wd = self.optimizer.weight_decay if decays(name, param) else 0.0
        return ParamSetting(trainable, self.optimizer.lr * lr_scale, wd)

    def callbacks(self, model: nn.Module) -> list:
        return []

    def save(self, model: nn.Module, directory) -> None:
        """Write the final model in Hugging Face format (safetensors)."""
        if not hasattr(model, "save_pretrained"):  # a plain nn.Module: its weights only
            from safetensors.torch import save_model

            save_model(model, f"{directory}/model.safetensors")
            return
        untie_shared_layers(model)  # training is over; from_pretrained cannot rebuild a tie
        model.save_pretrained(directory)

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Apply the plan and the overrides: set requires_grad, group by (lr, weight decay)."""
        plan = apply_overrides(self.plan(model), self.cfg.groups)
        params = dict(model.named_parameters())
        groups: dict[tuple[float, float], list] = {}
        for name, setting in plan.items():
            params[name].requires_grad_(setting.trainable)
            if setting.trainable:
                groups.setdefault((setting.lr, setting.weight_decay), []).append(params[name])
        if not groups:
            raise PretuneError("the strategy and overrides leave no parameter to train")
        # Frozen groups stay out of the optimizer; gradual unfreezing adds its own up front.
        return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def apply_overrides(plan: dict[str, ParamSetting], overrides: list[GroupOverride]) -> dict[str, ParamSetting]:
    """Later overrides win; a regex that matches no parameter name is an error."""
    for i, override in enumerate(overrides):
        try:
            pattern = re.compile(override.match)
        except re.error as e:
            raise PretuneError(f"strategy.groups[{i}].match is not a valid regex: {e}") from None
        hits = [name for name in plan if pattern.search(name)]
        if not hits:
            raise PretuneError(
                f"strategy.groups[{i}].match '{override.match}' matches no parameter "
                f"(names look like '{next(iter(plan))}')"
            )
        for name in hits:
            s = plan[name]
            plan[name] = ParamSetting(
                s.trainable if override.trainable is None else override.trainable,
                s.lr if override.lr is None else override.lr,
                s.weight_decay if override.weight_decay is None else override.weight_decay,
            )
    return plan
