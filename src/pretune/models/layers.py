"""Layer grouping: which parameters are the embeddings, each encoder layer, and the head.

Known Hugging Face families (text encoders; ResNet / ConvNeXt stages and ViT layers for images)
are found by their model_type; a module may say its own groups (`pretune_layer_groups()`, as the
EfficientNet wrapper of models/vision.py does); any other model (a plain nn.Module included)
needs `model.layer_prefixes`. An unknown structure is an error, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from pretune.errors import PretuneError

# model_type -> (embeddings module, encoder layer ModuleList), relative to model.base_model.
KNOWN_FAMILIES = {
    "bert": ("embeddings", "encoder.layer"),
    "roberta": ("embeddings", "encoder.layer"),
    "xlm-roberta": ("embeddings", "encoder.layer"),
    "camembert": ("embeddings", "encoder.layer"),
    "electra": ("embeddings", "encoder.layer"),
    "deberta": ("embeddings", "encoder.layer"),
    "deberta-v2": ("embeddings", "encoder.layer"),
    "mpnet": ("embeddings", "encoder.layer"),
    "distilbert": ("embeddings", "transformer.layer"),
    # Image models: a CNN's "layers" are its stages (the stem is the embeddings).
    "resnet": ("embedder", "encoder.stages"),
    "convnext": ("embeddings", "encoder.stages"),
    "vit": ("embeddings", "encoder.layer"),
}


@dataclass
class LayerMap:
    """Parameter names by role; `layers` runs bottom to top."""

    embeddings: list[str]
    layers: list[list[str]]
    head: list[str]

    def depth_from_top(self) -> dict[str, int]:
        """0 for the head, 1 for the top layer, ..., len(layers) + 1 for the embeddings."""
        depth = {name: 0 for name in self.head}
        for i, names in enumerate(reversed(self.layers)):
            depth |= {name: i + 1 for name in names}
        depth |= {name: len(self.layers) + 1 for name in self.embeddings}
        return depth


def encoder_layers(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent module, attribute name, the ModuleList of encoder layers) of a known family."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in KNOWN_FAMILIES:
        raise PretuneError(
            f"pretune does not know the layer structure of {model_type or type(model).__name__}; "
            f"known: {', '.join(sorted(KNOWN_FAMILIES))}; set model.layer_prefixes for others"
        )
    path = KNOWN_FAMILIES[model_type][1].split(".")
    parent = model.base_model
    for attr in path[:-1]:
        parent = getattr(parent, attr)
    return parent, path[-1], getattr(parent, path[-1])


def feature_module(model: nn.Module) -> nn.Module:
    """The module whose output is the frozen body's features (freeze's feature cache serves it)."""
    own = getattr(model, "pretune_feature_module", None)
    if own is not None:
        return own()
    return encoder_layers(model)[0]


def find_layers(model: nn.Module, prefixes: list[str] | None = None) -> LayerMap:
    names = [n for n, _ in model.named_parameters()]
    if prefixes:
        return _from_prefixes(names, prefixes)
    own = getattr(model, "pretune_layer_groups", None)
    if own is not None:
        return _from_prefixes(names, own())
    _, _, layer_list = encoder_layers(model)
    base = model.base_model
    base_prefix = next(n for n, m in model.named_modules() if m is base)
    base_prefix = f"{base_prefix}." if base_prefix else ""
    embeddings_attr = KNOWN_FAMILIES[model.config.model_type][0]
    layer_path = next(n for n, m in model.named_modules() if m is layer_list)
    embeddings = [n for n in names if n.startswith(f"{base_prefix}{embeddings_attr}.")]
    layers = [[n for n in names if n.startswith(f"{layer_path}.{i}.")] for i in range(len(layer_list))]
    taken = set(embeddings).union(*layers)
    return LayerMap(embeddings, layers, [n for n in names if n not in taken])


def _from_prefixes(names: list[str], prefixes: list[str | list[str]]) -> LayerMap:
    """One group per entry; an entry may list several prefixes (a stem's conv and its norm)."""
    groups = []
    for entry in prefixes:
        group = [n for n in names
                 if any(n == p or n.startswith(f"{p}.") for p in ([entry] if isinstance(entry, str) else entry))]
        if not group:
            raise PretuneError(f"model.layer_prefixes: '{entry}' matches no parameter")
        groups.append(group)
    taken = set().union(*groups)
    return LayerMap(groups[0], groups[1:], [n for n in names if n not in taken])
