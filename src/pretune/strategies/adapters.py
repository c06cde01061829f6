"""LoRA through the peft library: low-rank adapters on the attention projections.

The classification head trains and is saved with the adapters (peft's SEQ_CLS task puts it in
modules_to_save; forgetting that is peft#310's pitfall). With `merge: true` the adapters are
folded into the weights on save, so the result loads with from_pretrained like any model.
"""

from __future__ import annotations

from torch import nn

from pretune.errors import MissingExtraError, PretuneError
from pretune.models.layers import find_layers
from pretune.strategies.base import ParamSetting, Strategy

# peft's own per-architecture defaults (query and value, as in the LoRA paper) come first; these
# fill the encoders its table leaves out.
EXTRA_TARGETS = {"camembert": ["query", "value"], "mpnet": ["q", "v"], "distilbert": ["q_lin", "v_lin"]}


def default_targets(model_type: str | None) -> list[str] | None:
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    return PEFT_TARGETS.get(model_type) or EXTRA_TARGETS.get(model_type)


class LoraStrategy(Strategy):
    def wrap(self, model: nn.Module) -> nn.Module:
        try:
            from peft import LoraConfig, TaskType, get_peft_model
        except ImportError:
            raise MissingExtraError("peft", "adapters") from None
        lora = self.cfg.lora
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        targets = lora.target_modules or default_targets(model_type)
        if targets is None:
            raise PretuneError(
                f"no default LoRA target modules for {model_type or type(model).__name__}; "
                "set strategy.lora.target_modules")
        # The head: everything outside the encoder layers and embeddings (classifier, pooler).
        head_modules = sorted({n.rsplit(".", 1)[0] for n in find_layers(model, self.model_cfg.layer_prefixes).head})
        task_type = TaskType.TOKEN_CLS if "TokenClassification" in type(model).__name__ else TaskType.SEQ_CLS
        config = LoraConfig(task_type=task_type, r=lora.rank, lora_alpha=lora.alpha,
                            lora_dropout=lora.dropout, target_modules=targets,
                            modules_to_save=head_modules)
        try:
            return get_peft_model(model, config)
        except ValueError as e:
            raise PretuneError(f"LoRA: {str(e).splitlines()[0]}") from None

    def plan(self, model: nn.Module) -> dict[str, ParamSetting]:
        # peft has already frozen everything but the adapters and the head copies.
        return {n: self.setting(n, p, p.requires_grad) for n, p in model.named_parameters()}

    def save(self, model: nn.Module, directory) -> None:
        if self.cfg.lora.merge:
            super().save(model.merge_and_unload(), directory)
            return
        # Adapters (and the head) only, beside the labelled config: transformers' peft
        # integration loads the base from adapter_config.json, then the adapters.
        model.save_pretrained(directory)
        model.base_model.model.config.save_pretrained(directory)
