"""`prune.method magnitude` on a text run: the smallest encoder weights zeroed and kept at zero
(sparsity alone gives no CPU speed-up with dense kernels). Recovery keeps the zeros with a
callback that re-applies the masks after every optimizer step, and prunes gradually over
`rounds` (cubic schedule, Zhu & Gupta 2017)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pretune.compress.loaded import LoadedRun
from pretune.compress.prune.recover import recover
from pretune.compress.variant import scratch
from pretune.recipe import PruneConfig

MATRICES = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense")


def prune_magnitude(parent: LoadedRun, pc: PruneConfig, out: Path) -> LoadedRun:
    model, rounds = parent.model("prune"), pc.rounds
    with scratch(parent) as tmp:
        for i in range(1, rounds + 1):
            target = pc.sparsity * (1 - (1 - i / rounds) ** 3)
            masks = magnitude_masks(model, target, pc.scope)
            apply_masks(model, masks)
            last = i == rounds
            node = recover(parent, model, pc, Path(out) if last else tmp / f"round-{i}",
                           {"sparsity": sparsity(model), "rounds": rounds}, pc.recovery_epochs / rounds,
                           callbacks=[MaskCallback(masks)], after_fit=lambda m: {"sparsity": sparsity(m)})
            if not last:
                model = node.model("prune")
    return node


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The encoder's matrix weights (embeddings, norms, biases and the head stay dense)."""
    return {f"{name}.weight": module.weight for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.endswith(MATRICES) and ".layer." in name}


@torch.no_grad()
def magnitude_masks(model: nn.Module, target: float, scope: str) -> dict[str, torch.Tensor]:
    weights = prunable(model)
    if scope == "layer":
        return {name: _mask_above(w.abs(), _threshold(w.abs().flatten(), target)) for name, w in weights.items()}
    threshold = _threshold(torch.cat([w.abs().flatten() for w in weights.values()]), target)
    return {name: _mask_above(w.abs(), threshold) for name, w in weights.items()}


def _threshold(values: torch.Tensor, target: float) -> float:
    k = int(len(values) * target)
    return float(values.kthvalue(k).values) if k > 0 else -1.0


def _mask_above(values: torch.Tensor, threshold: float) -> torch.Tensor:
    return (values > threshold).to(values.dtype)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    for name, weight in prunable(model).items():
        weight.mul_(masks[name].to(weight.device))


def sparsity(model: nn.Module) -> float:
    weights = list(prunable(model).values())
    return float(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))


class MaskCallback:
    """Keeps pruned weights at zero through fine-tuning: re-applied after every optimizer step."""

    def __init__(self, masks: dict[str, torch.Tensor]):
        self.masks = masks

    def _apply(self, state) -> None:
        model = state.accelerator.unwrap_model(state.model) if state.accelerator else state.model
        apply_masks(model, self.masks)

    def on_fit_start(self, state) -> None:
        self._apply(state)

    def on_batch_end(self, state) -> None:
        self._apply(state)
