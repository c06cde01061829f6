"""Fine-tuning strategies: which parameters train, at which learning rate, and when.

    full     every parameter (the default)
    freeze   feature extraction: the head (and the top k layers) only
    llrd     layer-wise learning-rate decay
    gradual  gradual unfreezing from the top (ULMFiT)
    lora     low-rank adapters through peft
    bitfit   biases and the head only
    setfit   contrastive pairs for the body, then the head (few labels)
"""

from __future__ import annotations

from pretune.recipe import ModelConfig, OptimizerConfig, StrategyConfig
from pretune.registry import Registry
from pretune.strategies.adapters import LoraStrategy
from pretune.strategies.base import ParamSetting, Strategy
from pretune.strategies.layerwise import BitFitStrategy, FreezeStrategy, GradualStrategy, LLRDStrategy
from pretune.strategies.setfit import SetFitStrategy

strategies: Registry[type[Strategy]] = Registry("strategy")
for _name, _cls in {"full": Strategy, "freeze": FreezeStrategy, "llrd": LLRDStrategy,
                    "gradual": GradualStrategy, "lora": LoraStrategy, "bitfit": BitFitStrategy,
                    "setfit": SetFitStrategy}.items():
    strategies.register(_name)(_cls)


def create_strategy(cfg: StrategyConfig, optimizer: OptimizerConfig, model_cfg: ModelConfig) -> Strategy:
    return strategies.get(cfg.name)(cfg, optimizer, model_cfg)


__all__ = ["ParamSetting", "Strategy", "create_strategy", "strategies"]
