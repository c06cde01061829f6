"""Structured pruning's shapes: remove attention heads and feed-forward neurons from BERT-like
layers (the matrices shrink), and rebuild those shapes when a pruned model is loaded.

transformers 5 dropped `prune_heads`; its `prune_linear_layer` slices a Linear. A BERT layer
computes with whatever number of heads its query/key/value give it (`view(..., -1, head_size)`),
so sliced layers run as they are. `from_pretrained` builds full-size layers, though, so the
config records the kept sizes per layer in `config.pretune_pruning` = {"heads": [...],
"intermediate": [...]} and `restore_pruned_shapes` shrinks a freshly built model before its state
dict is loaded (models/load.py `load_saved_model` does this). When every layer keeps the
same number of neurons, `intermediate_size` is also set, so FFN-only pruning loads anywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from pretune.errors import PretuneError
from pretune.models.layers import encoder_layers

MARKER = "pretune_pruning"


def attention_parts(layer: nn.Module) -> tuple[nn.Module, nn.Linear, nn.Linear, nn.Linear]:
    """(self-attention module, its output projection, FFN up, FFN down) of a BERT-like layer."""
    try:
        return (layer.attention.self, layer.attention.output.dense, layer.intermediate.dense, layer.output.dense)
    except AttributeError:
        raise PretuneError(
            f"structured pruning supports BERT-like layers (attention.self, intermediate, output), "
            f"not {type(layer).__name__}") from None


def head_size_of(model: nn.Module) -> int:
    return model.config.hidden_size // model.config.num_attention_heads


def prune_layer(layer: nn.Module, keep_heads: list[int], keep_neurons: list[int], head_size: int) -> None:
    """Keep only heads `keep_heads` and FFN neurons `keep_neurons` (indices, any order)."""
    from transformers.pytorch_utils import prune_linear_layer

    attention, out_proj, up, down = attention_parts(layer)
    rows = torch.tensor([h * head_size + i for h in sorted(keep_heads) for i in range(head_size)], dtype=torch.long)
    for name in ("query", "key", "value"):
        setattr(attention, name, prune_linear_layer(getattr(attention, name), rows.to(out_proj.weight.device), dim=0))
    layer.attention.output.dense = prune_linear_layer(out_proj, rows.to(out_proj.weight.device), dim=1)
    attention.num_attention_heads = len(keep_heads)
    attention.all_head_size = len(keep_heads) * head_size
    neurons = torch.tensor(sorted(keep_neurons), dtype=torch.long, device=up.weight.device)
    layer.intermediate.dense = prune_linear_layer(up, neurons, dim=0)
    layer.output.dense = prune_linear_layer(down, neurons, dim=1)


def record(model: nn.Module) -> dict:
    """Write the kept sizes of every layer into the config (see module docstring); return them."""
    _, _, layers = encoder_layers(model)
    head_size = head_size_of(model)
    heads = [attention_parts(layer)[0].query.out_features // head_size for layer in layers]
    neurons = [attention_parts(layer)[2].out_features for layer in layers]
    marker = {"heads": heads, "intermediate": neurons}
    setattr(model.config, MARKER, marker)
    if len(set(neurons)) == 1:
        model.config.intermediate_size = neurons[0]
    return marker


def restore_pruned_shapes(model: nn.Module, config) -> bool:
    """Shrink a freshly built model to the sizes `config.pretune_pruning` records; False if none."""
    marker = getattr(config, MARKER, None)
    if not marker:
        return False
    _, _, layers = encoder_layers(model)
    head_size = head_size_of(model)
    for layer, heads, neurons in zip(layers, marker["heads"], marker["intermediate"], strict=True):
        prune_layer(layer, list(range(heads)), list(range(neurons)), head_size)
    return True
