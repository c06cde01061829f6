"""recipe.strategy: which parameters train, when, and at which learning rate."""

from __future__ import annotations

from pydantic import Field

from pretune.recipe.base import _Section


class GroupOverride(_Section):
    match: str = Field(..., description="regex searched in parameter names")
    lr: float | None = Field(None, gt=0, description="learning rate of the matched parameters")
    weight_decay: float | None = Field(None, ge=0, description="weight decay of the matched parameters")
    trainable: bool | None = Field(None, description="freeze (false) or unfreeze (true) them")


class LoraConfig(_Section):
    rank: int = Field(8, gt=0, description="LoRA rank r")
    alpha: float = Field(16, gt=0, description="LoRA scaling alpha")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA path")
    target_modules: list[str] | None = Field(None, description="null: per-architecture default")
    merge: bool = Field(True, description="merge adapters into a plain model on save")


class SetFitConfig(_Section):
    pairs: int = Field(20, gt=0, description="pairs per training row and kind (same / other label; SetFit's "
                       "num_iterations)")
    epochs: int = Field(1, gt=0, description="passes over the pairs")
    batch_size: int = Field(16, gt=0, description="pairs per step")
    lr: float = Field(2e-5, gt=0, description="body learning rate of the pair phase")


class StrategyConfig(_Section):
    name: str = Field("full", description="full, freeze, llrd, gradual, lora, bitfit, setfit")
    train_top_layers: int = Field(0, ge=0, description="freeze: also train the top k encoder layers")
    cache_features: bool = Field(
        True, description="freeze (train_top_layers 0): compute the frozen encoder's output once per row "
        "and train the head on it from the second epoch on")
    decay: float = Field(0.9, gt=0, le=1, description="llrd: lr multiplier per layer down from the head")
    unfreeze_every_epochs: int | None = Field(1, gt=0, description="gradual: epochs between unfreezes")
    unfreeze_every_steps: int | None = Field(None, gt=0, description="gradual: steps between unfreezes")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    setfit: SetFitConfig = Field(default_factory=SetFitConfig, description="setfit: the contrastive pair phase")
    groups: list[GroupOverride] = Field(default_factory=list, description="per-parameter overrides")
