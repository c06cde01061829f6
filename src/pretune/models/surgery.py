"""Model structure changes (`model.surgery`): keep fewer layers or grow more (num_layers above
the model's count: copies of the top layers, models/growth.py), re-initialise the top ones,
share weights between layers, put an MLP on top as the classifier.

Changes run in this order, each on the result of the one before: keep_layers / num_layers,
reinit_top_layers (counted from the top of the kept or grown layers), share_layers, head.

What survives `save_pretrained` + `AutoModelForSequenceClassification.from_pretrained`:
- dropped layers: yes. The config's layer count is updated, so the smaller model is rebuilt.
- re-initialised layers: yes (they are ordinary weights).
- shared layers: only after `untie_shared_layers(model)`. safetensors refuses to save one tensor
  under two names unless transformers knows the tie, and from_pretrained could not re-create an
  ad-hoc tie anyway. Untying copies each shared layer back into place: the saved model gives the
  same logits and loads anywhere, but is no longer shared (full parameter count on disk).
  Checkpoints (safetensors `save_model`) keep the sharing as it is: that path de-duplicates.
- MLP head: no. No Hugging Face classifier config describes a hidden layer (BERT's classifier is
  always one Linear; RoBERTa's head has a fixed dense width), so a plain from_pretrained builds a
  Linear, drops the MLP's weights and initialises the head at random. apply_surgery records the
  head in `config.pretune_head`; a loader calls `restore_head(model, model.config)` on the freshly
  built model before loading the state dict.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from pretune.errors import PretuneError
from pretune.models import growth
from pretune.models.layers import encoder_layers
from pretune.recipe import HeadConfig, SurgeryConfig

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}
# Config / module fields that hold the layer count (distilbert: n_layers); only the one whose
# value equals the current count is changed, so an unrelated field is never touched.
LAYER_COUNT_FIELDS = ("num_hidden_layers", "n_layers", "num_layers")
# BERT-like and most image models, RoBERTa/ELECTRA/MPNet-like, then HF ResNet / RegNet (Flatten, Linear)
HEAD_PATHS = ("classifier", "classifier.out_proj", "classifier.1")


def apply_surgery(model: nn.Module, cfg: SurgeryConfig, layer_prefixes: list[str] | None = None) -> list[dict]:
    """Change `model` in place as `cfg` says; one {change, parameters, trainable} row per change.

    `layer_prefixes` (model.layer_prefixes) locates the layers of an architecture pretune does
    not know: entries 1.. must name every entry of one nn.ModuleList, in order.
    """
    rows: list[dict] = []
    head_path = _head_path(model, HEAD_PATHS) if cfg.head.hidden_size is not None else None
    if cfg.keep_layers is not None or cfg.num_layers is not None or cfg.reinit_top_layers or cfg.share_layers:
        # Resolve the list once and check every setting before changing anything, so a bad
        # setting never leaves a half-operated model behind.
        parent, layers = _layer_list(model, layer_prefixes)
        total = len(layers)
        grow = cfg.num_layers is not None and cfg.num_layers > total and cfg.keep_layers is None
        keep = list(range(total)) if grow else _kept_indices(cfg, total)
        final = cfg.num_layers if grow else len(keep)
        _check_count("reinit_top_layers", cfg.reinit_top_layers, final)
        _check_count("share_layers", cfg.share_layers or 0, final)
        if grow:
            copies, sources = growth.stacked_copies(layers, cfg.num_layers)
            layers.extend(copies)
            for i in range(total, len(layers)):
                _renumber(layers[i], i)
            _set_layer_count(model, parent, total, len(layers), sources)
            rows.append(_row(model, growth.describe(total, len(layers), sources)))
        elif cfg.keep_layers is not None or cfg.num_layers is not None:
            _keep(model, parent, layers, keep)
            rows.append(_row(model, f"keep layers {keep} of {total}"))
        if cfg.reinit_top_layers:
            top = list(range(len(layers) - cfg.reinit_top_layers, len(layers)))
            for i in top:
                _reinit(model, layers[i])
            rows.append(_row(model, f"re-initialise top layers {top}"))
        if cfg.share_layers:
            runs = _share(layers, cfg.share_layers)
            rows.append(_row(model, f"share weights within layer runs {runs}"))
    if head_path is not None:
        shape = _replace_head(model, cfg.head, head_path)
        rows.append(_row(model, f"MLP head {shape} ({cfg.head.activation}, dropout {cfg.head.dropout})"))
    return rows


def untie_shared_layers(model: nn.Module) -> int:
    """Give every repeated entry of every nn.ModuleList its own copy; return how many were copied.

    Call right before `save_pretrained` (sharing then ends: train no further with this model).
    Outputs do not change. A model without shared layers is left as it is.
    """
    copied = 0
    for module in list(model.modules()):
        if not isinstance(module, nn.ModuleList):
            continue
        seen: set[int] = set()
        for i, entry in enumerate(list(module)):
            if id(entry) in seen:
                module[i] = copy.deepcopy(entry)
                _renumber(module[i], i)
                copied += 1
            seen.add(id(entry))
    return copied


def restore_head(model: nn.Module, config) -> bool:
    """Rebuild the MLP head recorded in `config.pretune_head`; False (no change) when none is.

    Call on a freshly built model (e.g. `from_config`) before its state dict is loaded, so the
    MLP's saved weights have somewhere to go.
    """
    saved = getattr(config, "pretune_head", None)
    if not saved:
        return False
    head = HeadConfig(**{k: saved[k] for k in ("hidden_size", "dropout", "activation")})
    _replace_head(model, head, _head_path(model, (saved["module"],)))
    return True


def evenly_spaced(total: int, n: int) -> list[int]:
    """Indices floor(i * total / n) for i < n: starts at layer 0, 6 -> 3 keeps [0, 2, 4]."""
    return [i * total // n for i in range(n)]


def _kept_indices(cfg: SurgeryConfig, total: int) -> list[int]:
    if cfg.keep_layers is not None and cfg.num_layers is not None:
        raise PretuneError("model.surgery: set keep_layers or num_layers, not both")
    if cfg.num_layers is not None:
        return evenly_spaced(total, cfg.num_layers)
    if cfg.keep_layers is None:
        return list(range(total))
    keep = list(cfg.keep_layers)
    key = "model.surgery.keep_layers"
    if not keep:
        raise PretuneError(f"{key} is empty; keep at least one layer")
    bad = [i for i in keep if not 0 <= i < total]
    if bad:
        raise PretuneError(f"{key}: {bad} out of range; the model has layers 0..{total - 1}")
    if len(set(keep)) != len(keep):
        raise PretuneError(f"{key}: {keep} has duplicates")
    if keep != sorted(keep):
        # Reordering layers is never what a user means by "keep"; say so instead of sorting.
        raise PretuneError(f"{key}: {keep} must be in increasing order")
    return keep


def _check_count(key: str, value: int, layers: int) -> None:
    if value > layers:
        raise PretuneError(f"model.surgery.{key} is {value} but the model has {layers} layers")


def _keep(model: nn.Module, parent: nn.Module, layers: nn.ModuleList, keep: list[int]) -> None:
    total = len(layers)
    kept = [layers[i] for i in keep]
    # Mutate the list itself, so anything holding a reference to it sees the change.
    del layers[:]
    layers.extend(kept)
    for i, layer in enumerate(layers):
        _renumber(layer, i)
    _set_layer_count(model, parent, total, len(keep), keep)


def _set_layer_count(model: nn.Module, parent: nn.Module, old: int, new: int, origins: list[int]) -> None:
    """The config's (and the layer list owner's) layer count; `origins`: the old layer each new
    one came from, for configs that keep a per-layer list (layer_types: attention windows)."""
    config = getattr(model, "config", None)
    for holder in (config, parent):
        for field in LAYER_COUNT_FIELDS:
            if getattr(holder, field, None) == old:
                setattr(holder, field, new)
    kinds = getattr(config, "layer_types", None)
    if isinstance(kinds, list) and len(kinds) == old:
        config.layer_types = [kinds[i] for i in origins] if new < old else kinds + [kinds[i] for i in origins]


def _renumber(layer: nn.Module, index: int) -> None:
    # Recent transformers give attention modules a layer_idx (cache indexing); keep it equal to
    # the layer's position so a kept layer 4 that is now third says 2.
    for module in layer.modules():
        if getattr(module, "layer_idx", None) is not None:
            module.layer_idx = index


@torch.no_grad()
def _reinit(model: nn.Module, layer: nn.Module) -> None:
    init = getattr(model, "_init_weights", None)
    for module in layer.modules():
        # from_pretrained marks loaded tensors `_is_hf_initialized`, and transformers' init
        # functions skip marked tensors: without clearing the marks, _init_weights does nothing.
        for tensor in [module, *module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if getattr(tensor, "_is_hf_initialized", False):
                del tensor._is_hf_initialized
        if init is not None:
            init(module)  # the model's own scheme (e.g. BERT: normal(0, initializer_range))
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()


def _share(layers: nn.ModuleList, size: int) -> list[list[int]]:
    runs = [list(range(start, min(start + size, len(layers)))) for start in range(0, len(layers), size)]
    for run in runs:
        for i in run[1:]:
            layers[i] = layers[run[0]]  # the same object: one set of weights, used len(run) times
    return runs


def _head_path(model: nn.Module, paths: tuple[str, ...]) -> str:
    modules = dict(model.named_modules())
    path = next((p for p in paths if isinstance(modules.get(p), nn.Linear)), None)
    if path is None:
        raise PretuneError(
            f"model.surgery.head: no linear classifier at {' or '.join(paths)} in {type(model).__name__}")
    return path


def _replace_head(model: nn.Module, cfg: HeadConfig, path: str) -> str:
    modules = dict(model.named_modules())
    old = modules[path]
    mlp = nn.Sequential(nn.Linear(old.in_features, cfg.hidden_size), ACTIVATIONS[cfg.activation](),
                        nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden_size, old.out_features))
    # Match the replaced head: device, dtype, and train/eval mode (else dropout runs in eval).
    mlp.to(device=old.weight.device, dtype=old.weight.dtype).train(old.training)
    init = getattr(model, "_init_weights", None)
    if init is not None:
        with torch.no_grad():
            mlp.apply(init)  # same init as the fresh linear head it replaces
    owner, _, attr = path.rpartition(".")
    setattr(modules[owner], attr, mlp)
    config = getattr(model, "config", None)
    if config is not None:
        config.pretune_head = {**cfg.model_dump(), "module": path}
    return f"{old.in_features} -> {cfg.hidden_size} -> {old.out_features}"


def _layer_list(model: nn.Module, prefixes: list[str] | None) -> tuple[nn.Module, nn.ModuleList]:
    """(module holding the list, the nn.ModuleList of layers)."""
    if not prefixes:
        parent, _, layers = encoder_layers(model)
        return parent, layers
    names = prefixes[1:]
    modules = dict(model.named_modules())
    owners = {name.rpartition(".")[0] for name in names}
    owner = owners.pop() if len(owners) == 1 else None
    layers = modules.get(owner) if owner else None
    if not isinstance(layers, nn.ModuleList) or names != [f"{owner}.{i}" for i in range(len(layers))]:
        raise PretuneError(
            "model.surgery needs model.layer_prefixes[1:] to name every entry of one nn.ModuleList "
            "in order (e.g. encoder.layers.0, encoder.layers.1, ...)")
    return modules[owner.rpartition(".")[0]], layers


def _row(model: nn.Module, change: str) -> dict:
    # model.parameters() yields a shared parameter once, so sharing shows as a smaller count.
    params = list(model.parameters())
    return {"change": change, "parameters": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad)}
