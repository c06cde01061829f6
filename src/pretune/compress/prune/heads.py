"""`prune` of a text run, structured: attention heads and FFN neurons physically removed, so the
matrices shrink and the model runs faster (`prune.method magnitude`: magnitude.py).

Importance is first-order (gradient x activation, Michel et al. 2019 for heads): for a head or
neuron with output a, |sum over tokens of a * dL/da| estimates the loss change of removing it;
summed over examples of `score_batches` training batches. Each layer loses the same fraction,
the least important first (every layer keeps at least one head and one neuron).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from pretune.compress import base
from pretune.compress.loaded import LoadedRun
from pretune.compress.prune.recover import recover
from pretune.data import collate, train_batches
from pretune.models.layers import encoder_layers
from pretune.models.pruning import attention_parts, head_size_of, prune_layer, record
from pretune.recipe import CompressConfig


@base.register("prune", "text", settings=lambda cfg: cfg.prune)
def prune_text(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    pc = cfg.prune
    if pc.method == "magnitude":
        from pretune.compress.prune.magnitude import prune_magnitude

        return prune_magnitude(parent, pc, out)
    model = parent.model("prune")
    heads, neurons = importance(model, parent, pc.score_batches)
    notes = prune_structured(model, heads, neurons, pc.heads, pc.neurons)
    return recover(parent, model, pc, out, notes, pc.recovery_epochs, callbacks=[])


def importance(model: nn.Module, parent: LoadedRun, batches: int) -> tuple[list, list]:
    """Per layer: head scores [heads] and FFN neuron scores [neurons], from training batches."""
    split = parent.encoded("train")
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

    loss_fn = create_loss(parent.recipe.train.loss, parent.task, split, parent.loss)
    try:
        order = train_batches(split.lengths, 32, parent.recipe.seed, 0, False)[:batches]
        for indices in order:
            batch = collate(split, indices, parent.pad_id)
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
