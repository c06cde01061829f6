"""Channel-pruned convolutional models on disk: which layers lost channels, and how to rebuild
those shapes on a freshly built model before its weights load.

Channel pruning (compress/prune_channels.py, with torch-pruning) shrinks Conv2d / BatchNorm2d /
Linear layers in place, so the architecture rebuilt from a config no longer matches the saved
weights. The weights stay in safetensors; the config records the pruned layers' sizes in
`config.pretune_channels` = {module name: {"in_channels": .., "out_channels": .., "groups": ..}}
(BatchNorm: {"num_features": ..}; Linear: {"in_features": .., "out_features": ..}), only for the
layers that changed. `restore_channel_shapes` resizes those layers of a fresh model (empty
tensors of the recorded shapes, which the saved weights then fill), so loading needs neither
torch-pruning nor pickle.
"""

from __future__ import annotations

import torch
from torch import nn

MARKER = "pretune_channels"
SIZES = {nn.Conv2d: ("in_channels", "out_channels", "groups"), nn.BatchNorm2d: ("num_features",),
         nn.Linear: ("in_features", "out_features")}


def _kind(module: nn.Module) -> type | None:
    return next((kind for kind in SIZES if isinstance(module, kind)), None)


def channel_sizes(model: nn.Module) -> dict[str, dict[str, int]]:
    """The size attributes of every Conv2d, BatchNorm2d and Linear layer, by module name."""
    return {name: {a: int(getattr(m, a)) for a in SIZES[kind]}
            for name, m in model.named_modules() if (kind := _kind(m)) is not None}


def record_channels(model: nn.Module, before: dict[str, dict[str, int]]) -> dict:
    """Write the layers whose sizes differ from `before` into the model's config; return them."""
    changed = {name: sizes for name, sizes in channel_sizes(model).items() if before.get(name) != sizes}
    setattr(model.config, MARKER, changed)
    return changed


@torch.no_grad()
def restore_channel_shapes(model: nn.Module, config) -> bool:
    """Resize a freshly built model's layers to the sizes `config.pretune_channels` records;
    False when it records none. The weights are placeholders until a state dict loads."""
    marker = getattr(config, MARKER, None)
    if not marker:
        return False
    modules = dict(model.named_modules())
    for name, sizes in marker.items():
        module = modules[name]
        for attr, value in sizes.items():
            setattr(module, attr, value)
        for tensor_name, shape in _shapes(module).items():
            old = getattr(module, tensor_name, None)
            if old is None:
                continue
            new = torch.empty(shape, dtype=old.dtype, device=old.device)
            if isinstance(old, nn.Parameter):
                setattr(module, tensor_name, nn.Parameter(new, requires_grad=old.requires_grad))
            else:
                setattr(module, tensor_name, new)  # a registered buffer stays a buffer
    return True


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    if isinstance(module, nn.Conv2d):
        out = module.out_channels
        return {"weight": (out, module.in_channels // module.groups, *module.kernel_size), "bias": (out,)}
    if isinstance(module, nn.BatchNorm2d):
        n = module.num_features
        return {"weight": (n,), "bias": (n,), "running_mean": (n,), "running_var": (n,)}
    return {"weight": (module.out_features, module.in_features), "bias": (module.out_features,)}
