"""`prune`: structured (attention heads and FFN neurons physically removed, so the matrices
shrink and the model runs faster) or unstructured magnitude pruning (weights zeroed, made
permanent; sparsity alone gives no CPU speed-up with dense kernels).

Structured importance is first-order (gradient x activation, Michel et al. 2019 for heads): for a
head or neuron with output a, |sum over tokens of a * dL/da| estimates the loss change of removing
it; summed over examples of `score_batches` training batches. Each layer loses the same fraction,
the least important first (every layer keeps at least one head and one neuron).
Recovery fine-tuning goes through the public `fit` with the pruned model passed in; magnitude
pruning keeps its zeros through training with a callback that re-applies the masks after every
optimizer step, and prunes gradually over `rounds` (cubic schedule, Zhu & Gupta 2017).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
from torch import nn

from pretune.compress.variant import (
    finish_variant,
    is_image,
    load_data,
    load_preprocessor_of,
    load_torch_model,
    task_of,
    write_variant,
)
from pretune.data import collate, train_batches
from pretune.models.layers import encoder_layers
from pretune.models.pruning import attention_parts, head_size_of, prune_layer, record
from pretune.predictor import Run
from pretune.recipe import CompressConfig, PruneConfig, Recipe

MATRICES = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense")


def prune_step(parent: Run, cfg: CompressConfig, out: Path) -> Run:
    pc = cfg.prune
    task = task_of(parent)
    if is_image(task):  # convolution channels, not heads and neurons: compress/prune_channels.py
        from pretune.compress.prune_channels import prune_channels_step

        return prune_channels_step(parent, cfg, out)
    model, tokenizer = load_torch_model(parent, "prune", task), load_preprocessor_of(parent)
    settings = pc.model_dump()
    if pc.method == "structured":
        heads, neurons = importance(model, parent, task, tokenizer, pc.score_batches)
        notes = prune_structured(model, heads, neurons, pc.heads, pc.neurons)
        return recover(parent, model, tokenizer, pc, out, settings, notes, pc.recovery_epochs, callbacks=[])
    rounds = pc.rounds
    with tempfile.TemporaryDirectory(dir=Path(out).parent if Path(out).parent.exists() else None) as tmp:
        for i in range(1, rounds + 1):
            target = pc.sparsity * (1 - (1 - i / rounds) ** 3)
            masks = magnitude_masks(model, target, pc.scope)
            apply_masks(model, masks)
            notes = {"sparsity": sparsity(model), "rounds": rounds}
            last = i == rounds
            where = Path(out) if last else Path(tmp) / f"round-{i}"
            run = recover(parent, model, tokenizer, pc, where, settings, notes, pc.recovery_epochs / rounds,
                           callbacks=[MaskCallback(masks)])
            if not last:
                model = load_torch_model(run, "prune", task)
    return run


def recover(parent: Run, model, tokenizer, pc: PruneConfig, out: Path, settings: dict, notes: dict,
            epochs: float, callbacks: list, train_all: bool = False) -> Run:
    """Fine-tune the pruned model with the parent's recipe (fewer epochs, lower lr) through `fit`;
    `train_all`: with the full strategy, whatever the parent's."""
    def save(model_dir: Path) -> None:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)

    if epochs <= 0:
        return write_variant(out, parent, "prune", settings, save, notes=notes)
    from pretune.train.fit import fit

    recipe = recovery_recipe(parent.recipe, parent.model_path, epochs, pc.lr, train_all)
    run = fit(recipe, out, model=model, tokenizer=tokenizer, callbacks=callbacks, quiet=True)
    if "sparsity" in notes:
        notes = {**notes, "sparsity": sparsity(model)}
    return finish_variant(out, parent, "prune", settings, {**notes, "recovery_epochs": epochs}, extra=run.metrics)


def recovery_recipe(recipe: Recipe, model_dir: Path, epochs: float, lr: float | None,
                    train_all: bool = False) -> Recipe:
    raw = recipe.model_dump(mode="json")
    if train_all:  # image runs: every layer adapts; the weights fit ends with are the ones saved
        raw["strategy"] = {"name": "full"}
        raw["train"]["keep_best"] = None
    raw["model"]["source"] = str(model_dir)
    raw["model"]["surgery"] = {}
    raw["train"]["epochs"] = epochs
    raw["train"]["max_steps"] = None
    raw["train"]["optimizer"]["lr"] = lr or recipe.train.optimizer.lr / 2
    raw["train"]["checkpoint_every_steps"] = None
    return Recipe.from_dict(raw)


def importance(model: nn.Module, run: Run, task, tokenizer, batches: int) -> tuple[list, list]:
    """Per layer: head scores [heads] and FFN neuron scores [neurons], from training batches."""
    data = load_data(run, task)
    split = task.encode(data.splits["train"], tokenizer, run.recipe.data.max_length)
    _, _, layers = encoder_layers(model)
    head_size = head_size_of(model)
    heads = [torch.zeros(attention_parts(layer)[1].in_features // head_size) for layer in layers]
    neurons = [torch.zeros(attention_parts(layer)[2].out_features) for layer in layers]
    saved: dict[tuple[str, int], torch.Tensor] = {}

    def keep(kind: str, i: int):
        def hook(_module, inputs):
            inputs[0].retain_grad()
            saved[(kind, i)] = inputs[0]
        return hook

    handles = []
    for i, layer in enumerate(layers):
        _, out_proj, _, down = attention_parts(layer)
        handles += [out_proj.register_forward_pre_hook(keep("heads", i)),
                    down.register_forward_pre_hook(keep("neurons", i))]
    was_training = model.training
    model.eval()  # no dropout: score the model as it predicts
    from pretune.train.losses import create_loss

    loss_fn = create_loss(run.recipe.train.loss, task, split)
    try:
        order = train_batches(split.lengths, 32, run.recipe.seed, 0, False)[:batches]
        for indices in order:
            batch = collate(split, indices, tokenizer.pad_token_id or 0)
            labels = batch.pop("labels")
            loss = loss_fn(model(**batch).logits, labels)
            model.zero_grad(set_to_none=True)
            loss.backward()
            for (kind, i), act in saved.items():
                contribution = (act * act.grad).sum(dim=1)  # [batch, width]: over tokens
                if kind == "heads":
                    heads[i] += contribution.view(len(indices), -1, head_size).sum(-1).abs().sum(0).detach()
                else:
                    neurons[i] += contribution.abs().sum(0).detach()
            saved.clear()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return heads, neurons


def prune_structured(model: nn.Module, heads: list[torch.Tensor], neurons: list[torch.Tensor],
                     head_fraction: float, neuron_fraction: float) -> dict:
    """Remove the lowest-scored heads / neurons of each layer; record the sizes in the config."""
    _, _, layers = encoder_layers(model)
    head_size = head_size_of(model)
    before = {"heads": sum(len(h) for h in heads), "neurons": sum(len(n) for n in neurons)}
    removed = {}
    for i, layer in enumerate(layers):
        keep_h = _top(heads[i], head_fraction)
        keep_n = _top(neurons[i], neuron_fraction)
        removed[f"layer.{i}"] = sorted(set(range(len(heads[i]))) - set(keep_h))
        prune_layer(layer, keep_h, keep_n, head_size)
    marker = record(model)
    return {"heads": {"before": before["heads"], "after": sum(marker["heads"])},
            "neurons": {"before": before["neurons"], "after": sum(marker["intermediate"])},
            "removed_heads": removed}


def _top(scores: torch.Tensor, fraction: float) -> list[int]:
    keep = max(1, len(scores) - math.floor(len(scores) * fraction + 1e-9))
    return sorted(torch.argsort(scores, descending=True)[:keep].tolist())


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


